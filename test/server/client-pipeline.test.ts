// The client connection's pipelining bounds, against a stand-in server over a
// real socket: replies that finish behind a command in flight cannot leave
// before it, so past pipelinedMax of them the connection stops starting
// commands and reading, and everything still arrives, in order, once it ends;
// and replies of commands that finish together leave in one socket write.

import t, { type Test } from 'tap';
import * as net from 'node:net';
import { Client } from '../../src/server/client.js';
import type { CommandSpec } from '../../src/server/command.js';
import type { Server } from '../../src/server/server.js';
import { pipelinedMax } from '../../src/constants.js';

function spec(name: string, handler: CommandSpec['handler']): CommandSpec {
  return { name, arity: -2, flags: [], writes: false, firstKey: 1, lastKey: 1, step: 1, group: 'string', summary: '', since: '', complexity: '', acl: [], handler };
}

/** The parts of a Server a Client uses, serving `specs`. */
function standIn(specs: Map<string, CommandSpec>): Server {
  return {
    config: { requirepass: undefined },
    parserLimits: () => ({ bulkBytesMax: 1 << 29, argsMax: 1 << 20, inlineBytesMax: 1 << 16, queryBufferBytesMax: 1 << 30 }),
    markClock() {},
    lookup: (n: Buffer) => specs.get(n.toString().toLowerCase()),
    dispatch: (c: unknown, s: CommandSpec | undefined, a: Buffer[]) => s!.handler(c as never, a),
    whenDurable: (cb: (e: Error | null) => void) => cb(null),
    errorReply: (e: unknown) => e,
    log: { warn() {}, error() {} },
    onClientClosed() {},
  } as unknown as Server;
}

/** A Client of `stand` on a real socket, and the other end; `watch` sees the server side's socket first. */
async function connect(t: Test, stand: Server, watch?: (s: net.Socket) => void): Promise<{ socket: net.Socket; received: string }> {
  const srv = net.createServer((s) => {
    watch?.(s);
    new Client(stand, s, 1);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  const socket = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  const conn = { socket, received: '' };
  socket.on('data', (d: Buffer) => (conn.received += d.toString()));
  await new Promise((r) => socket.once('connect', r));
  return conn;
}

t.test('replies held behind a slow command are bounded; all arrive in order once it ends', async (t) => {
  let release: (() => void) | null = null;
  let started = 0;
  const specs = new Map<string, CommandSpec>([
    ['slow', spec('slow', () => new Promise((r) => (release = () => r('slow-done'))))],
    ['fast', spec('fast', (_c, a) => {
      started++;
      return a[1]!.toString();
    })],
  ]);
  const conn = await connect(t, standIn(specs));
  const sock = conn.socket;

  const n = 20_000;
  const cmd = (name: string, arg: string) => `*2\r\n$${name.length}\r\n${name}\r\n$${arg.length}\r\n${arg}\r\n`;
  sock.write(cmd('slow', 'a'));
  sock.write(Array.from({ length: n }, (_, i) => cmd('fast', String(i))).join(''));
  await new Promise((r) => setTimeout(r, 500));
  t.ok(started < pipelinedMax, `${started} commands started behind the slow one (limit ${pipelinedMax})`);
  t.equal(conn.received, '', 'nothing sent before the slow reply');

  release!();
  const want = 1 + n;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && conn.received.split('\r\n').length - 1 < want) await new Promise((r) => setTimeout(r, 20));
  const lines = conn.received.split('\r\n').slice(0, -1);
  t.equal(lines.length, want, 'every reply arrived');
  t.equal(lines[0], '+slow-done');
  t.ok(
    lines.slice(1).every((l, i) => l === `+${i}`),
    'in order',
  );
});

t.test('pipelined commands that finish together are answered in one socket write', async (t) => {
  // One replica answer settles a batch of commands at once, each in its own microtask.
  const waiting: Array<() => void> = [];
  const specs = new Map<string, CommandSpec>([['wait', spec('wait', (_c, a) => new Promise((r) => waiting.push(() => r(a[1]!.toString()))))]]);
  let writes = 0;
  const conn = await connect(t, standIn(specs), (s) => {
    const write = s.write.bind(s) as (...args: unknown[]) => boolean;
    s.write = ((...args: unknown[]) => {
      writes++;
      return write(...args);
    }) as typeof s.write;
  });
  const sock = conn.socket;

  const n = 16;
  const cmd = (arg: string) => `*2\r\n$4\r\nwait\r\n$${arg.length}\r\n${arg}\r\n`;
  sock.write(Array.from({ length: n }, (_, i) => cmd(`k${i}`)).join(''));
  const deadline = Date.now() + 5000;
  while (waiting.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.equal(waiting.length, n, 'all 16 in flight at once (different keys)');
  for (const release of waiting) release(); // all in one go, as one replica answer settles them
  const replies = (): string[] => conn.received.match(/k\d+/g) ?? [];
  while (replies().length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.same(replies(), Array.from({ length: n }, (_, i) => `k${i}`), 'every reply, in order');
  t.equal(writes, 1, 'in one write (it was one per reply)');
});
