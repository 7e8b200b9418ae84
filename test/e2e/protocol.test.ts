// The client protocol over raw sockets against a real node: inline commands,
// pipelining, requests split at every byte, protocol errors (answered, then
// the connection closed, other clients untouched), the limits for clients
// that have not authenticated, AUTH / HELLO AUTH / RESET, QUIT, and a client
// that never reads its replies (the node must stop reading from it, keep its
// memory bounded and keep serving everybody else).

import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { type NodeProcess, startNode } from './harness.js';
import { Conn, encode } from './resp-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- Without a password -----------------------------------------------------------------

let node: NodeProcess;
let secured: NodeProcess;

t.before(async () => {
  [node, secured] = await Promise.all([startNode(), startNode({ args: ['--requirepass', 'secret'] })]);
});

t.teardown(async () => {
  await Promise.all([node?.stop('SIGKILL'), secured?.stop('SIGKILL')]);
  for (const n of [node, secured]) if (n) fs.rmSync(n.dataDir, { recursive: true, force: true });
});

t.test('inline commands', async (t) => {
  const c = await Conn.connect(node.port);
  await c.write('PING\r\n');
  t.equal(await c.reply(), '+PONG\r\n', 'inline PING');
  await c.write('PING\n');
  t.equal(await c.reply(), '+PONG\r\n', 'inline PING without CR');
  await c.write('SET "inline key" \'a value with spaces\'\r\n');
  t.equal(await c.reply(), '+OK\r\n', 'inline SET with quotes');
  t.equal(await c.call('GET', 'inline key'), '$19\r\na value with spaces\r\n', 'quoted key and value kept whole');
  await c.write('SET esc "tab\\there\\x41\\n"\r\nGET esc\r\n');
  t.equal(await c.reply(), '+OK\r\n');
  t.equal(await c.reply(), '$10\r\ntab\thereA\n\r\n', 'escapes in double quotes');
  await c.write('\r\n\r\n   ECHO    "two  spaces"   \r\n');
  t.equal(await c.reply(), '$11\r\ntwo  spaces\r\n', 'empty lines ignored, extra spaces split away');
  await c.write('SET "unbalanced\r\n');
  t.equal(await c.untilClosed(), '-ERR Protocol error: unbalanced quotes in request\r\n', 'unbalanced quotes: protocol error, closed');
});

t.test('10,000 pipelined commands in one write are answered in order', async (t) => {
  const c = await Conn.connect(node.port);
  const n = 10_000;
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) parts.push(Buffer.from(`INCR pipe:counter\r\n`)); // inline mixed in
    else if (i % 4 === 1) parts.push(encode(['SET', `pipe:${i}`, `v${i}`]));
    else if (i % 4 === 2) parts.push(encode(['GET', `pipe:${i - 1}`]));
    else parts.push(encode(['ECHO', `e${i}`]));
  }
  const all = Buffer.concat(parts);
  const t0 = Date.now();
  await c.write(all);
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const r = await c.reply(20000);
    const want =
      i % 4 === 0 ? `:${i / 4 + 1}\r\n` : i % 4 === 1 ? '+OK\r\n' : i % 4 === 2 ? `$${String(`v${i - 1}`).length}\r\nv${i - 1}\r\n` : `$${String(`e${i}`).length}\r\ne${i}\r\n`;
    if (r !== want && bad++ < 5) t.fail(`reply ${i}: ${JSON.stringify(r)} != ${JSON.stringify(want)}`);
  }
  t.equal(bad, 0, `${n} replies (${all.length} request bytes in one write) in order in ${Date.now() - t0} ms`);
  t.equal(c.rest(), '', 'nothing extra');
  c.close();
});

t.test('a command split at every byte across writes', async (t) => {
  const c = await Conn.connect(node.port);
  c.sock.setNoDelay(true);
  const value = Buffer.from('split\r\nvalue\x00\xff', 'latin1');
  const req = Buffer.concat([encode(['SET', 'split:key', value]), Buffer.from('GET split:key\r\n'), encode(['STRLEN', 'split:key'])]);
  for (let i = 0; i < req.length; i++) {
    await c.write(req.subarray(i, i + 1));
    await sleep(1);
  }
  t.equal(await c.reply(), '+OK\r\n');
  t.equal(await c.reply(), `$${value.length}\r\n${value.toString('latin1')}\r\n`, 'value intact');
  t.equal(await c.reply(), `:${value.length}\r\n`);
  c.close();
});

t.test('protocol errors: answered, connection closed, other clients unaffected', async (t) => {
  const bystander = await Conn.connect(node.port);
  t.equal(await bystander.call('SET', 'bystander', 'still here'), '+OK\r\n');
  const cases: Array<[string, string | Buffer, string]> = [
    ['invalid multibulk length', '*abc\r\n', 'invalid multibulk length'],
    ["expected '$'", '*1\r\n+x\r\n', "expected '$', got '+'"],
    ['bulk length over the limit', '*1\r\n$600000000\r\n', 'invalid bulk length'],
    ['negative bulk length', '*2\r\n$3\r\nGET\r\n$-3\r\n', 'invalid bulk length'],
    ['too big inline request', Buffer.alloc(70 * 1024, 'a'), 'too big inline request'],
    ['multibulk count over the limit', '*2000000000\r\n', 'invalid multibulk length'],
  ];
  for (const [name, bytes, message] of cases) {
    const c = await Conn.connect(node.port);
    // A good command first: its reply must still arrive before the error.
    await c.write(Buffer.concat([Buffer.from('PING\r\n'), Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)]));
    const got = await c.untilClosed();
    t.equal(got, `+PONG\r\n-ERR Protocol error: ${message}\r\n`, `${name}: earlier reply, then the error, then closed`);
    t.equal(await bystander.call('GET', 'bystander'), '$10\r\nstill here\r\n', `${name}: another client is served`);
  }
  // Bytes after the bad frame are never executed.
  const c = await Conn.connect(node.port);
  await c.write('*1\r\n+x\r\n*3\r\n$3\r\nSET\r\n$9\r\nbystander\r\n$6\r\nhacked\r\n');
  await c.untilClosed();
  t.equal(await bystander.call('GET', 'bystander'), '$10\r\nstill here\r\n', 'nothing after a protocol error runs');
  bystander.close();
});

t.test('QUIT answers +OK then closes, ignoring what follows', async (t) => {
  const c = await Conn.connect(node.port);
  await c.write('PING\r\nQUIT\r\nSET after-quit 1\r\n');
  t.equal(await c.untilClosed(), '+PONG\r\n+OK\r\n');
  const d = await Conn.connect(node.port);
  t.equal(await d.call('EXISTS', 'after-quit'), ':0\r\n', 'the command after QUIT did not run');
  d.close();
});

// --- With --requirepass -------------------------------------------------------------

t.test('requirepass: NOAUTH, unauthenticated limits, AUTH, HELLO AUTH, RESET', async (t) => {
  const c = await Conn.connect(secured.port);
  t.equal(await c.call('GET', 'x'), '-NOAUTH Authentication required.\r\n', 'GET before AUTH');
  t.equal(await c.call('SET', 'x', 'y'), '-NOAUTH Authentication required.\r\n', 'SET before AUTH');
  t.equal(await c.call('PING'), '-NOAUTH Authentication required.\r\n', 'PING before AUTH');
  t.equal(await c.call('NOSUCHCOMMAND'), "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: \r\n", 'unknown command before AUTH');
  t.equal(await c.call('AUTH', 'wrong'), '-WRONGPASS invalid username-password pair or user is disabled.\r\n', 'AUTH wrong');
  t.equal(await c.call('AUTH', 'default', 'wrong'), '-WRONGPASS invalid username-password pair or user is disabled.\r\n', 'AUTH default wrong');
  t.equal(await c.call('AUTH', 'bob', 'secret'), '-WRONGPASS invalid username-password pair or user is disabled.\r\n', 'AUTH other user');
  t.match(await c.call('HELLO', 3), /^-NOAUTH HELLO must be called with the client already authenticated/, 'HELLO 3 without AUTH');
  t.equal(await c.call('HELLO', 3, 'AUTH', 'default', 'wrong'), '-WRONGPASS invalid username-password pair or user is disabled.\r\n', 'HELLO AUTH wrong');
  t.equal(await c.call('GET', 'x'), '-NOAUTH Authentication required.\r\n', 'still not authenticated');
  t.equal(await c.call('AUTH', 'secret'), '+OK\r\n', 'AUTH right');
  t.equal(await c.call('SET', 'x', 'y'), '+OK\r\n');
  t.equal(await c.call('GET', 'x'), '$1\r\ny\r\n');
  // An authenticated client may send big requests.
  const big = Buffer.alloc(100 * 1024, 'b');
  t.equal(await c.call('SET', 'big', big), '+OK\r\n', '100 KB bulk after AUTH');
  t.equal(await c.call('MSET', ...Array.from({ length: 20 }, (_, i) => `k${i}`)), '+OK\r\n', '21 arguments after AUTH');
  t.equal(await c.call('RESET'), '+RESET\r\n');
  t.equal(await c.call('GET', 'x'), '-NOAUTH Authentication required.\r\n', 'RESET makes the client unauthenticated again');
  // After RESET the unauthenticated limits apply again.
  await c.write(encode(['SET', 'big', big]));
  t.equal(await c.untilClosed(), '-ERR Protocol error: unauthenticated bulk length\r\n', 'big bulk after RESET refused');

  const h = await Conn.connect(secured.port);
  const hello = await h.call('HELLO', 3, 'AUTH', 'default', 'secret', 'SETNAME', 'hello-client');
  t.match(hello, /^%7\r\n/, 'HELLO 3 AUTH default secret answers a RESP3 map');
  t.match(hello, /\$5\r\nproto\r\n:3\r\n/, 'proto 3');
  t.equal(await h.call('GET', 'x'), '$1\r\ny\r\n', 'authenticated by HELLO');
  t.equal(await h.call('GET', 'nope'), '_\r\n', 'and speaking RESP3');
  t.equal(await h.call('CLIENT', 'GETNAME'), '$12\r\nhello-client\r\n');
  t.equal(await h.call('RESET'), '+RESET\r\n');
  t.equal(await h.call('GET', 'nope'), '-NOAUTH Authentication required.\r\n');
  t.equal(await h.call('AUTH', 'default', 'secret'), '+OK\r\n', 'AUTH default <pass>');
  t.equal(await h.call('GET', 'nope'), '$-1\r\n', 'RESET went back to RESP2');
  h.close();
});

t.test('requirepass: unauthenticated clients are held to small requests', async (t) => {
  const ok = await Conn.connect(secured.port);
  t.equal(await ok.call('AUTH', 'secret'), '+OK\r\n');
  const cases: Array<[string, Buffer, string]> = [
    ['20 arguments', encode(['MSET', ...Array.from({ length: 19 }, (_, i) => `a${i}`)]), 'unauthenticated multibulk length'],
    ['100 KB bulk', encode(['AUTH', Buffer.alloc(100 * 1024, 'p')]), 'unauthenticated bulk length'],
    ['100 KB bulk, header alone', Buffer.from(`*2\r\n$4\r\nAUTH\r\n$${100 * 1024}\r\n`), 'unauthenticated bulk length'],
    ['a 100 KB inline line is still over the inline limit', Buffer.alloc(100 * 1024, 'x'), 'too big inline request'],
  ];
  for (const [name, bytes, message] of cases) {
    const c = await Conn.connect(secured.port);
    await c.write(bytes);
    t.equal(await c.untilClosed(), `-ERR Protocol error: ${message}\r\n`, `${name}: refused and closed`);
    t.equal(await ok.call('PING'), '+PONG\r\n', `${name}: an authenticated client is unaffected`);
  }
  // 10 arguments and 16 KB bulks are still fine before AUTH (a long password, say).
  const c = await Conn.connect(secured.port);
  t.equal(await c.call('AUTH', Buffer.alloc(16 * 1024, 'p')), '-WRONGPASS invalid username-password pair or user is disabled.\r\n', '16 KB AUTH argument accepted (and wrong)');
  t.match(await c.call('HELLO', 3, 'AUTH', 'default', 'secret', 'SETNAME', 'x'), /^%7\r\n/, 'HELLO with 7 arguments before AUTH is fine');
  t.equal(await c.call('SET', 'after-hello', Buffer.alloc(100 * 1024, 'z')), '+OK\r\n', 'and lifts the limits');
  c.close();
  ok.close();
});

// --- A client that never reads --------------------------------------------------------------

function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : NaN;
}

async function commandsProcessed(c: Conn): Promise<number> {
  const info = await c.call('INFO', 'stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1]);
}

t.test('a client that never reads its replies is paused; memory stays bounded; others are served', async (t) => {
  const other = await Conn.connect(node.port);
  const value = Buffer.alloc(10 * 1024, 'v');
  t.equal(await other.call('SET', 'slow:value', value), '+OK\r\n');
  const rssBefore = rssBytes(node.proc.pid!);

  // The slow client: a raw socket that never reads.
  const slow = net.connect(node.port, '127.0.0.1');
  slow.on('error', () => {});
  await new Promise<void>((resolve) => slow.once('connect', () => resolve()));
  slow.pause();
  const n = 200_000;
  const get = encode(['GET', 'slow:value']);
  const before = await commandsProcessed(other);
  // 200k GETs (6.6 MB of requests, 2 GB of replies) in a few big writes, never reading.
  const batch = Buffer.concat(Array.from({ length: 10_000 }, () => get));
  for (let i = 0; i < n / 10_000; i++) slow.write(batch);

  // Meanwhile the other client keeps being served promptly.
  let worst = 0;
  let maxRss = 0;
  for (let i = 0; i < 30; i++) {
    const t0 = Date.now();
    const r = await other.call('PING');
    worst = Math.max(worst, Date.now() - t0);
    if (r !== '+PONG\r\n') t.fail(`PING got ${r}`);
    maxRss = Math.max(maxRss, rssBytes(node.proc.pid!));
    await sleep(50);
  }
  const mid = await commandsProcessed(other);
  await sleep(500);
  const after = await commandsProcessed(other);
  t.ok(worst < 1000, `another client answered within ${worst} ms while the slow client is stuck`);
  t.ok(maxRss < 600 * 1024 * 1024, `node RSS stayed at ${(maxRss / 1048576).toFixed(0)} MB (< 600 MB; was ${(rssBefore / 1048576).toFixed(0)} MB)`);
  const slowDone = mid - before - 31; // minus the other client's PINGs and INFOs
  t.ok(slowDone < n / 2, `the node stopped reading the slow client after ${slowDone} of ${n} GETs`);
  t.ok(after - mid <= 2, `and does not read more while it does not drain (${after - mid} commands in 500 ms, ours only)`);

  // CLIENT LIST shows the slow client's output buffer bounded too.
  const list = await other.call('CLIENT', 'LIST');
  const omems = [...list.matchAll(/omem=(\d+)/g)].map((m) => Number(m[1]));
  t.ok(Math.max(...omems) < 64 * 1024 * 1024, `largest output buffer ${Math.max(...omems)} bytes`);

  slow.destroy();
  await sleep(200);
  t.equal(await other.call('PING'), '+PONG\r\n', 'node fine after the slow client goes');
  t.equal(await other.call('STRLEN', 'slow:value'), `:${value.length}\r\n`);
  other.close();
});

t.test('-LOADING while a restarted node loads its data (best effort: needs the load to outlast the connect)', async (t) => {
  let n = await startNode();
  const c = await Conn.connect(n.port);
  const value = crypto.randomBytes(1024 * 1024); // incompressible, so the load reads every byte
  const keys = 250;
  for (let i = 0; i < keys; i++) void c.write(encode(['SET', `load:${i}`, value]));
  for (let i = 0; i < keys; i++) if ((await c.reply(30000)) !== '+OK\r\n') t.fail(`SET ${i}`);
  c.close();
  t.equal(await n.stop('SIGTERM'), 0);
  n = await startNode({ dataDir: n.dataDir, waitFor: 'listening' });
  try {
    const d = await Conn.connect(n.port);
    const loading = '-LOADING Redis is loading the dataset in memory\r\n';
    let sawLoading = 0;
    let sawInfoLoading = false;
    let health503 = false;
    let writesRefused = 0;
    for (let i = 0; i < 2000; i++) {
      const health = await new Promise<number>((resolve) => {
        http.get({ host: '127.0.0.1', port: n.adminPort, path: '/health' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', () => resolve(0));
      });
      if (health === 503) health503 = true;
      const info = await d.call('INFO', 'persistence');
      if (!info.startsWith('$')) t.fail(`INFO during loading: ${info}`);
      if (/loading:1\r\n/.test(info)) sawInfoLoading = true;
      const got = await d.call('GET', 'load:7');
      if (got === loading) {
        sawLoading++;
        // A write right after: refused too, unless the load finished in between.
        const del = await d.call('DEL', 'load:never');
        if (del === loading) writesRefused++;
        else if (del !== ':0\r\n') t.fail(`DEL during loading: ${del}`);
        continue;
      }
      t.equal(got, `$${value.length}\r\n${value.toString('latin1')}\r\n`, 'after loading: the value');
      break;
    }
    if (sawLoading === 0) {
      t.comment('the node loaded its data before the first command arrived; -LOADING not observed');
    } else {
      t.pass(`${sawLoading} GETs answered -LOADING before the data was loaded`);
      t.ok(sawInfoLoading, 'INFO answers during loading, with loading:1');
      t.ok(writesRefused > 0 || sawLoading === 1, `writes answered -LOADING too (${writesRefused})`);
      t.ok(health503, 'GET /health answered 503 during loading');
    }
    t.equal(await d.call('DBSIZE'), `:${keys}\r\n`, 'every key loaded');
    d.close();
  } finally {
    await n.stop('SIGTERM');
    fs.rmSync(n.dataDir, { recursive: true, force: true });
  }
});

t.test('both nodes shut down cleanly on SIGTERM', async (t) => {
  const codes = await Promise.all([node.stop('SIGTERM'), secured.stop('SIGTERM')]);
  t.same(codes, [0, 0], 'exit code 0');
});
