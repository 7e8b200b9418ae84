// Limits a node enforces on its clients, over raw sockets against real nodes:
// the largest bulk (--bulk-bytes-max, CONFIG SET proto-max-bulk-len), strings
// grown past it by APPEND / SETRANGE, the number of connections
// (--clients-max, CONFIG SET maxclients), the store's key size limit, and the
// query buffer of one request (--query-buffer-bytes-max). Every refusal must
// be a clear reply, and the node must keep serving.

import t from 'tap';
import * as fs from 'node:fs';
import { type NodeProcess, startNode } from './harness.js';
import { type Arg, Conn, encode } from './resp-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;
const tooLong = '-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n';

let bulkNode: NodeProcess;
let clientsNode: NodeProcess;

t.before(async () => {
  [bulkNode, clientsNode] = await Promise.all([
    startNode({ args: ['--bulk-bytes-max', '1mb'] }),
    startNode({ args: ['--clients-max', '5', '--query-buffer-bytes-max', '1mb'] }),
  ]);
});

t.teardown(async () => {
  await Promise.all([bulkNode?.stop('SIGKILL'), clientsNode?.stop('SIGKILL')]);
  for (const n of [bulkNode, clientsNode]) if (n) fs.rmSync(n.dataDir, { recursive: true, force: true });
});

t.test('--bulk-bytes-max 1mb: bigger bulks are a protocol error', async (t) => {
  const c = await Conn.connect(bulkNode.port);
  t.equal(await c.call('CONFIG', 'GET', 'proto-max-bulk-len'), `*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n${MiB}\r\n`, 'CONFIG GET proto-max-bulk-len shows 1mb');
  t.equal(await c.call('SET', 'exactly', Buffer.alloc(MiB, 'a')), '+OK\r\n', 'a bulk of exactly 1 MiB is fine');
  t.equal(await c.call('STRLEN', 'exactly'), `:${MiB}\r\n`);

  const big = await Conn.connect(bulkNode.port);
  big.write(encode(['SET', 'big', Buffer.alloc(2 * MiB, 'b')]));
  t.equal(await big.untilClosed(), '-ERR Protocol error: invalid bulk length\r\n', '2 MB SET: protocol error, connection closed');
  const header = await Conn.connect(bulkNode.port);
  header.write(`*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$${MiB + 1}\r\n`);
  t.equal(await header.untilClosed(), '-ERR Protocol error: invalid bulk length\r\n', 'refused on the header alone, before the bytes arrive');
  t.equal(await c.call('EXISTS', 'big'), ':0\r\n', 'nothing stored');
  t.equal(await c.call('PING'), '+PONG\r\n', 'other clients unaffected');
  c.close();
});

t.test('APPEND and SETRANGE past bulk-bytes-max: string exceeds maximum allowed size', async (t) => {
  const c = await Conn.connect(bulkNode.port);
  t.equal(await c.call('SET', 's', Buffer.alloc(MiB - 10, 's')), '+OK\r\n');
  t.equal(await c.call('APPEND', 's', Buffer.alloc(10, 'x')), `:${MiB}\r\n`, 'APPEND up to exactly the limit');
  t.equal(await c.call('APPEND', 's', 'y'), tooLong, 'APPEND one byte past it');
  t.equal(await c.call('STRLEN', 's'), `:${MiB}\r\n`, 'value unchanged');
  t.equal(await c.call('SETRANGE', 's', MiB - 1, 'z'), `:${MiB}\r\n`, 'SETRANGE ending at the limit');
  t.equal(await c.call('SETRANGE', 's', MiB, 'z'), tooLong, 'SETRANGE one byte past it');
  t.equal(await c.call('SETRANGE', 'fresh', MiB, 'z'), tooLong, 'SETRANGE padding a new key past it');
  t.equal(await c.call('SETRANGE', 'fresh', 10 * MiB, ''), ':0\r\n', 'an empty SETRANGE changes nothing, whatever the offset (as Redis)');
  t.equal(await c.call('EXISTS', 'fresh'), ':0\r\n');
  t.equal(await c.call('SETRANGE', 's', '9223372036854775807', 'z'), tooLong, 'SETRANGE at the largest int64 offset');
  t.equal(await c.call('GETRANGE', 's', -1, -1), '$1\r\nz\r\n', 'node still serving');
  c.close();
});

t.test('CONFIG SET proto-max-bulk-len takes effect at once, on every connection', async (t) => {
  const c = await Conn.connect(bulkNode.port);
  const existing = await Conn.connect(bulkNode.port);
  t.equal(await existing.call('PING'), '+PONG\r\n');
  const v15 = Buffer.alloc(1.5 * MiB, 'm');
  t.equal(await c.call('CONFIG', 'SET', 'proto-max-bulk-len', '2mb'), '+OK\r\n', 'raised to 2mb');
  t.equal(await c.call('CONFIG', 'GET', 'proto-max-bulk-len'), `*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n${2 * MiB}\r\n`);
  t.equal(await c.call('SET', 'm1', v15), '+OK\r\n', '1.5 MB SET on the connection that changed it');
  t.equal(await existing.call('SET', 'm2', v15), '+OK\r\n', '1.5 MB SET on a connection opened before');
  const fresh = await Conn.connect(bulkNode.port);
  t.equal(await fresh.call('SET', 'm3', v15), '+OK\r\n', '1.5 MB SET on a new connection');
  t.equal(await c.call('APPEND', 'm1', v15), tooLong, 'APPEND to 3 MB is past the new limit');
  t.equal(await c.call('APPEND', 'm1', Buffer.alloc(0.5 * MiB, 'm')), `:${2 * MiB}\r\n`, 'APPEND to exactly 2 MB is fine');

  t.match(await c.call('CONFIG', 'SET', 'proto-max-bulk-len', '512'), /^-ERR CONFIG SET failed/, 'below the minimum: refused');
  t.match(await c.call('CONFIG', 'SET', 'proto-max-bulk-len', 'lots'), /^-ERR CONFIG SET failed/, 'not a size: refused');
  t.equal(await c.call('CONFIG', 'GET', 'proto-max-bulk-len'), `*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n${2 * MiB}\r\n`, 'unchanged by the refused values');

  t.equal(await c.call('CONFIG', 'SET', 'proto-max-bulk-len', '1mb'), '+OK\r\n', 'lowered back to 1mb');
  existing.write(encode(['SET', 'm4', v15]));
  t.equal(await existing.untilClosed(), '-ERR Protocol error: invalid bulk length\r\n', 'the lower limit applies to a connection opened before');
  t.equal(await fresh.call('GET', 'm4'), '$-1\r\n');
  t.equal(await fresh.call('STRLEN', 'm3'), `:${v15.length}\r\n`, 'values stored under the higher limit stay readable');
  c.close();
  fresh.close();
});

t.test('keys over the store limit (64 KiB) get a clear error and the node keeps serving', async (t) => {
  const c = await Conn.connect(bulkNode.port);
  const maxKey = Buffer.alloc(64 * 1024, 'k');
  const bigKey = Buffer.alloc(64 * 1024 + 1, 'k');
  t.equal(await c.call('SET', maxKey, 'v'), '+OK\r\n', 'a 64 KiB key is fine');
  t.equal(await c.call('GET', maxKey), '$1\r\nv\r\n');
  const limitError = /^-ERR key of 65537 bytes is over the limit of 65536 bytes\r\n$/;
  t.match(await c.call('SET', bigKey, 'v'), limitError, 'SET with a 64 KiB + 1 key');
  t.match(await c.call('SET', bigKey, 'v', 'NX'), limitError, 'SET NX');
  t.match(await c.call('APPEND', bigKey, 'v'), limitError, 'APPEND');
  t.match(await c.call('INCR', bigKey), limitError, 'INCR');
  t.match(await c.call('SETRANGE', bigKey, 5, 'v'), limitError, 'SETRANGE');
  t.match(await c.call('GETSET', bigKey, 'v'), limitError, 'GETSET');
  t.equal(await c.call('GET', bigKey), '$-1\r\n', 'GET of such a key: just missing');
  t.equal(await c.call('EXISTS', bigKey), ':0\r\n');
  t.equal(await c.call('DEL', bigKey), ':0\r\n');
  // Multi-key writes are all-or-nothing.
  t.match(await c.call('MSET', 'before', '1', bigKey, 'v', 'after', '2'), limitError, 'MSET with one key too big');
  t.equal(await c.call('EXISTS', 'before', 'after'), ':0\r\n', 'MSET wrote none of its keys');
  t.match(await c.call('MSETNX', 'before', '1', bigKey, 'v'), limitError, 'MSETNX with one key too big');
  t.equal(await c.call('EXISTS', 'before'), ':0\r\n', 'MSETNX wrote none of its keys');
  t.equal(await c.call('SET', 'ok', 'fine'), '+OK\r\n', 'the node keeps serving writes');
  t.equal(await c.call('DBSIZE'), await c.call('DBSIZE'));
  c.close();
});

t.test('--clients-max 5: the 6th connection is refused', async (t) => {
  const conns: Conn[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await Conn.connect(clientsNode.port);
    t.equal(await c.call('PING'), '+PONG\r\n', `connection ${i + 1} served`);
    conns.push(c);
  }
  const sixth = await Conn.connect(clientsNode.port);
  t.equal(await sixth.untilClosed(), '-ERR max number of clients reached\r\n', '6th: error, then closed');
  t.match(await conns[0]!.call('INFO', 'clients'), /connected_clients:5\r\n/, 'INFO: 5 connected');
  t.match(await conns[0]!.call('INFO', 'stats'), /rejected_connections:1\r\n/, 'INFO: 1 rejected');
  t.equal(await conns[4]!.call('GET', 'x'), '$-1\r\n', 'the first five still work');

  conns.pop()!.close();
  await sleep(200);
  const again = await Conn.connect(clientsNode.port);
  t.equal(await again.call('PING'), '+PONG\r\n', 'a slot freed by a closed connection can be used');
  conns.push(again);

  t.equal(await conns[0]!.call('CONFIG', 'SET', 'maxclients', '6'), '+OK\r\n', 'CONFIG SET maxclients 6');
  const extra = await Conn.connect(clientsNode.port);
  t.equal(await extra.call('PING'), '+PONG\r\n', 'now a 6th connection is served');
  const seventh = await Conn.connect(clientsNode.port);
  t.equal(await seventh.untilClosed(), '-ERR max number of clients reached\r\n', 'and a 7th refused');
  // Room again for the next test, which connects before these closes are noticed.
  t.equal(await conns[0]!.call('CONFIG', 'SET', 'maxclients', '100'), '+OK\r\n');
  for (const c of [...conns, extra]) c.close();
});

t.test('--query-buffer-bytes-max 1mb: a request bigger than that is refused', async (t) => {
  // 30 values of 64 KB: no single bulk is big, the request as a whole is ~2 MB.
  const args: Arg[] = ['MSET'];
  for (let i = 0; i < 30; i++) args.push(`q${i}`, Buffer.alloc(64 * 1024, "q"));
  const request = encode(args);
  // Arriving in pieces, as it would over a real network.
  const c = await Conn.connect(clientsNode.port);
  for (let off = 0; off < request.length && !c.closed; off += 16 * 1024) {
    c.write(request.subarray(off, off + 16 * 1024));
    await sleep(2);
  }
  t.match(await c.untilClosed(), /^-ERR Protocol error: query buffer limit exceeded\r\n$/, 'arriving in pieces: refused with a protocol error and closed');
  const d = await Conn.connect(clientsNode.port);
  t.equal(await d.call('EXISTS', 'q0'), ':0\r\n', 'nothing of it ran');
  // In one write, the whole request may already be in the parser's buffer: the limit holds all the same.
  const e = await Conn.connect(clientsNode.port);
  e.write(request);
  const oneWrite = await e.untilClosed().catch((err: Error) => err.message);
  t.match(oneWrite, /^-ERR Protocol error: query buffer limit exceeded\r\n$/, 'in one write: refused too');
  e.close();
  await d.call('DEL', ...args.filter((_, i) => i % 2 === 1));
  // Under the limit is fine.
  t.equal(await d.call('MSET', ...args.slice(1, 11)), '+OK\r\n', 'a 320 KB MSET is fine');
  d.close();
});
