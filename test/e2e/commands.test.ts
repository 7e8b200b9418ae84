// What the differential test cannot compare with Redis: expiry over time and
// across restarts, the INFO fields tools read, the shapes of COMMAND replies
// (redis-cli parses them), CONFIG SET requirepass, CLIENT LIST / KILL,
// FLUSHALL and persistence across SIGTERM + restart, and the admin sidecar.

import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { type NodeProcess, run, startNode } from './harness.js';
import { type Arg, Conn, encode } from './resp-client.js';

// --- A small RESP client that decodes replies ------------------------------------------

type Value = string | number | bigint | Buffer | null | Value[] | Map<string, Value> | { error: string } | { set: Value[] };

/** Parses one reply at pos: [value, end] or undefined if incomplete. */
function parse(buf: Buffer, pos: number): [Value, number] | undefined {
  if (pos >= buf.length) return undefined;
  const type = String.fromCharCode(buf[pos]!);
  const cr = buf.indexOf('\r\n', pos);
  if (cr < 0) return undefined;
  const line = buf.toString('latin1', pos + 1, cr);
  let p = cr + 2;
  switch (type) {
    case '+': return [line, p];
    case '-': return [{ error: line }, p];
    case ':': return [Number.isSafeInteger(Number(line)) ? Number(line) : BigInt(line), p];
    case '_': return [null, p];
    case ',': return [Number(line), p];
    case '#': return [line === 't' ? 1 : 0, p];
    case '$': case '=': {
      const n = Number(line);
      if (n < 0) return [null, p];
      if (buf.length < p + n + 2) return undefined;
      const body = buf.subarray(p, p + n);
      return [type === '=' ? body.subarray(4) : body, p + n + 2];
    }
    case '*': case '~': case '%': case '>': {
      const n = Number(line);
      if (n < 0) return [null, p];
      const out: Value[] = [];
      for (let i = 0; i < (type === '%' ? 2 * n : n); i++) {
        const r = parse(buf, p);
        if (!r) return undefined;
        out.push(r[0]);
        p = r[1];
      }
      if (type === '%') {
        const m = new Map<string, Value>();
        for (let i = 0; i < out.length; i += 2) m.set(String(out[i]), out[i + 1]!);
        return [m, p];
      }
      return [type === '~' ? { set: out } : out, p];
    }
    default:
      throw new Error(`bad reply byte ${type}`);
  }
}

/** The shared raw connection (resp-client.ts), with replies decoded into values. */
class Client {
  private constructor(private readonly conn: Conn) {}

  static async connect(port: number): Promise<Client> {
    return new Client(await Conn.connect(port));
  }

  get sock(): net.Socket {
    return this.conn.sock;
  }

  /** The next reply, decoded. */
  async reply(timeoutMs = 5000): Promise<Value> {
    return parse(await this.conn.replyBytes(timeoutMs), 0)![0];
  }

  call(...args: Arg[]): Promise<Value> {
    void this.conn.write(encode(args));
    return this.reply();
  }

  /** The reply's raw bytes, as latin1. */
  raw(...args: Arg[]): Promise<string> {
    return this.conn.call(...args);
  }

  /** Bulk replies as text. */
  async text(...args: Arg[]): Promise<string | null> {
    const v = await this.call(...args);
    if (v === null) return null;
    if (Buffer.isBuffer(v)) return v.toString();
    if (typeof v === 'string') return v;
    throw new Error(`${args[0]}: not text: ${JSON.stringify(v)}`);
  }

  waitClosed(timeoutMs = 2000): Promise<boolean> {
    return this.conn.waitClosed(timeoutMs);
  }

  close(): void {
    this.conn.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function httpGet(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function infoFields(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

// --- Tests ----------------------------------------------------------------------------------

let node: NodeProcess;

t.before(async () => {
  node = await startNode();
});

t.teardown(async () => {
  await node?.stop('SIGKILL');
  if (node) fs.rmSync(node.dataDir, { recursive: true, force: true });
});

/** Stops the node with SIGTERM (it must exit 0) and starts it again on the same data directory. */
async function restart(t: Test): Promise<void> {
  const code = await node.stop('SIGTERM');
  t.equal(code, 0, 'SIGTERM: exit code 0');
  node = await startNode({ dataDir: node.dataDir });
}

t.test('expiry happens, and expired keys stay gone across restarts', async (t) => {
  const c = await Client.connect(node.port);
  // Margins of hundreds of ms: CI machines are busy.
  t.equal(await c.call('SET', 'exp:px', 'v', 'PX', 600), 'OK');
  t.equal(await c.text('GET', 'exp:px'), 'v', 'readable before it expires');
  const pttl = (await c.call('PTTL', 'exp:px')) as number;
  t.ok(pttl > 0 && pttl <= 600, `PTTL ${pttl}`);
  t.equal(await c.call('SET', 'exp:later', 'v', 'PX', 2000), 'OK', 'a key that expires while the node is down');
  t.equal(await c.call('SET', 'exp:ex', 'v', 'EX', 1000), 'OK', 'a key that outlives the restart');
  t.equal(await c.call('SET', 'exp:none', 'v'), 'OK');
  t.equal(await c.call('PEXPIRE', 'exp:none', 150), 1);
  await sleep(700);
  t.equal(await c.call('GET', 'exp:px'), null, 'GET null after 700 ms');
  t.equal(await c.call('EXISTS', 'exp:px', 'exp:none'), 0, 'EXISTS 0 for both expired keys');
  t.equal(await c.call('TTL', 'exp:px'), -2, 'TTL -2');
  const keys = ((await c.call('KEYS', 'exp:*')) as Buffer[]).map(String).sort();
  t.same(keys, ['exp:ex', 'exp:later'], 'KEYS skips expired keys');
  // The background sweep deletes expired keys, so DBSIZE catches up.
  let dbsize = -1;
  for (let i = 0; i < 40 && dbsize !== 2; i++) {
    dbsize = (await c.call('DBSIZE')) as number;
    if (dbsize !== 2) await sleep(50);
  }
  t.equal(dbsize, 2, 'DBSIZE counts only the live keys once the sweep ran');
  c.close();

  await restart(t);
  await sleep(Math.max(0, 2100 - 700));
  const d = await Client.connect(node.port);
  t.equal(await d.call('GET', 'exp:px'), null, 'expired before the restart: still gone');
  t.equal(await d.call('GET', 'exp:none'), null, 'PEXPIREd before the restart: still gone');
  t.equal(await d.call('GET', 'exp:later'), null, 'expired while the node was down or after: gone');
  t.equal(await d.text('GET', 'exp:ex'), 'v', 'the key with time left survives');
  const ttl = (await d.call('TTL', 'exp:ex')) as number;
  t.ok(ttl > 960 && ttl <= 1000, `and keeps its TTL (${ttl})`);
  d.close();
});

t.test('INFO has the fields ioredis, redis-cli and others read', async (t) => {
  const c = await Client.connect(node.port);
  await c.call('FLUSHALL');
  t.equal(await c.call('CONFIG', 'RESETSTAT'), 'OK');
  for (let i = 0; i < 7; i++) await c.call('SET', `info:${i}`, 'v');
  await c.call('GET', 'info:1');
  await c.call('GET', 'info:missing');
  await c.call('GET');
  const all = infoFields(String(await c.text('INFO')));
  t.equal(all.get('loading'), '0', 'loading:0 (ioredis ready check)');
  t.match(all.get('redis_version'), /^\d+\.\d+\.\d+$/, 'redis_version (redis-cli)');
  t.equal(all.get('role'), 'master', 'role:master');
  t.equal(all.get('redis_mode'), 'standalone');
  t.ok(Number(all.get('connected_clients')) >= 1, 'connected_clients');
  t.ok(Number(all.get('uptime_in_seconds')) >= 0, 'uptime_in_seconds');
  t.ok(Number(all.get('used_memory')) > 0, 'used_memory');
  t.equal(all.get('db0'), 'keys=7,expires=0,avg_ttl=0', 'keyspace db0:keys=7');
  t.ok(Number(all.get('keyspace_hits')) >= 1 && Number(all.get('keyspace_misses')) >= 1, 'keyspace hits and misses counted');
  t.notOk(all.has('cmdstat_get'), 'commandstats is not a default section');

  const stats = infoFields(String(await c.text('INFO', 'commandstats')));
  t.match(stats.get('cmdstat_set'), /^calls=7,usec=\d+,usec_per_call=\d+\.\d{2},rejected_calls=0,failed_calls=0$/, 'cmdstat_set after 7 SETs');
  t.match(stats.get('cmdstat_get'), /^calls=2,.*rejected_calls=1,failed_calls=0$/, 'cmdstat_get: 2 calls, 1 rejected (wrong arity)');
  const server = String(await c.text('INFO', 'server'));
  t.match(server, /^# Server\r\n/, 'INFO server: one section');
  t.notMatch(server, /# Clients/, 'only that section');
  const multi = String(await c.text('INFO', 'server', 'clients'));
  t.match(multi, /# Server\r\n[\s\S]*# Clients\r\n/, 'INFO with two sections');
  const everything = infoFields(String(await c.text('INFO', 'everything')));
  t.ok(everything.has('cmdstat_info'), 'INFO everything includes commandstats');
  t.equal(await c.call('CONFIG', 'RESETSTAT'), 'OK');
  const after = infoFields(String(await c.text('INFO', 'commandstats')));
  t.notOk(after.has('cmdstat_set'), 'CONFIG RESETSTAT clears commandstats');
  await c.call('FLUSHALL');
  const empty = String(await c.text('INFO', 'keyspace'));
  t.equal(empty, '# Keyspace\r\n', 'an empty keyspace section when there are no keys');

  // RESP3: INFO is a verbatim string, which redis-cli and RESP3 clients accept.
  t.match(await c.raw('INFO', 'server'), /^\$\d+\r\n# Server\r\n/, 'RESP2 INFO is a bulk string');
  await c.call('HELLO', 3);
  t.match(await c.raw('INFO', 'server'), /^=\d+\r\ntxt:# Server\r\n/, 'RESP3 INFO is a txt verbatim string');
  c.close();
});

t.test('COMMAND, COMMAND COUNT, COMMAND INFO, COMMAND DOCS shapes', async (t) => {
  const c = await Client.connect(node.port);
  const all = (await c.call('COMMAND')) as Value[];
  const count = (await c.call('COMMAND', 'COUNT')) as number;
  t.equal(all.length, count, `COMMAND lists COMMAND COUNT (${count}) entries`);
  t.ok(count >= 45, 'all our commands');
  for (const e of all as Value[][]) {
    if (!(Array.isArray(e) && e.length >= 10 && Buffer.isBuffer(e[0]) && typeof e[1] === 'number' && Array.isArray(e[2]) && typeof e[3] === 'number')) {
      t.fail(`bad COMMAND entry ${JSON.stringify(e)}`);
    }
  }
  const names = (all as Value[][]).map((e) => String(e[0]));
  t.same(names.filter((n) => n !== n.toLowerCase()), [], 'names in lower case');
  t.same(names.length, new Set(names).size, 'no name twice');
  const [get] = (await c.call('COMMAND', 'INFO', 'get')) as Value[][];
  t.equal(String(get![0]), 'get');
  t.equal(get![1], 2, 'get arity 2');
  t.same((get![2] as Buffer[]).map(String).sort(), ['fast', 'readonly'], 'get flags');
  t.same([get![3], get![4], get![5]], [1, 1, 1], 'get key positions');
  t.same((get![6] as Buffer[]).map(String).sort(), ['@fast', '@read', '@string'], 'get ACL categories');
  const [mset] = (await c.call('COMMAND', 'INFO', 'MSET')) as Value[][];
  t.same([mset![1], mset![3], mset![4], mset![5]], [-3, 1, -1, 2], 'mset: arity -3, keys 1..-1 step 2');
  t.same(await c.call('COMMAND', 'INFO', 'nosuch'), [null], 'unknown command: null entry');
  const [clientInfo] = (await c.call('COMMAND', 'INFO', 'client')) as Value[][];
  const subs = (clientInfo![9] as Value[][]).map((s) => String(s[0]));
  t.ok(subs.includes('client|setname') && subs.includes('client|list'), 'client subcommands listed');
  const [setname] = (await c.call('COMMAND', 'INFO', 'client|setname')) as Value[][];
  t.equal(setname![1], 3, 'COMMAND INFO of a subcommand');

  const docs = (await c.call('COMMAND', 'DOCS', 'get')) as Value[];
  t.equal(docs.length, 2, 'COMMAND DOCS get: one name, one map (RESP2 flat)');
  t.equal(String(docs[0]), 'get');
  const fields = docs[1] as Value[];
  const doc = new Map<string, string>();
  for (let i = 0; i < fields.length; i += 2) doc.set(String(fields[i]), String(fields[i + 1]));
  t.equal(doc.get('group'), 'string');
  t.equal(doc.get('since'), '1.0.0');
  t.ok((doc.get('summary') ?? '').length > 0, 'a summary');
  const allDocs = (await c.call('COMMAND', 'DOCS')) as Value[];
  t.equal(allDocs.length, 2 * count, 'COMMAND DOCS documents every command');
  t.same(await c.call('COMMAND', 'DOCS', 'nosuch'), [], 'unknown names are left out');

  // Real redis-cli parses them without trouble.
  const cli = await run('redis-cli', ['-p', String(node.port), 'COMMAND', 'DOCS', 'get']);
  t.equal(cli.code, 0, 'redis-cli COMMAND DOCS get exits 0');
  t.match(cli.stdout, /summary/);
  const cliCount = await run('redis-cli', ['-p', String(node.port), 'COMMAND', 'COUNT']);
  t.equal(cliCount.stdout.trim(), String(count), 'redis-cli COMMAND COUNT');
  const cliCommand = await run('redis-cli', ['-p', String(node.port), 'COMMAND']);
  t.equal(cliCommand.code, 0, 'redis-cli COMMAND exits 0');
  c.close();
});

t.test('CONFIG SET requirepass takes effect for new connections', async (t) => {
  const admin = await Client.connect(node.port);
  const bystander = await Client.connect(node.port);
  t.equal(await admin.call('CONFIG', 'SET', 'requirepass', 'sesame'), 'OK');
  t.same(await admin.call('CONFIG', 'GET', 'requirepass'), [Buffer.from('requirepass'), Buffer.from('sesame')]);
  t.equal(await admin.call('PING'), 'PONG', 'the connection that set it stays authenticated');
  t.equal(await bystander.call('SET', 'rp', 'x'), 'OK', 'so does one opened before');

  const fresh = await Client.connect(node.port);
  t.same(await fresh.call('GET', 'rp'), { error: 'NOAUTH Authentication required.' }, 'a new connection must AUTH');
  t.same(await fresh.call('AUTH', 'wrong'), { error: 'WRONGPASS invalid username-password pair or user is disabled.' });
  t.equal(await fresh.call('AUTH', 'sesame'), 'OK');
  t.equal(await fresh.text('GET', 'rp'), 'x');

  // A connection opened before the password, then RESET: unauthenticated, with the small-request limits.
  t.equal(await bystander.call('RESET'), 'RESET');
  t.same(await bystander.call('GET', 'rp'), { error: 'NOAUTH Authentication required.' }, 'RESET on an older connection: NOAUTH');
  bystander.sock.write(encode(['AUTH', Buffer.alloc(100 * 1024, 'p')]));
  await bystander.reply().catch(() => undefined);
  t.ok(await bystander.waitClosed(), 'and it is held to the unauthenticated limits');
  t.equal(await admin.call('PING'), 'PONG', 'the node is still up');

  const cli = await run('redis-cli', ['-p', String(node.port), '--no-auth-warning', '-a', 'sesame', 'GET', 'rp']);
  t.equal(cli.stdout.trim(), 'x', 'redis-cli -a works');

  t.equal(await admin.call('CONFIG', 'SET', 'requirepass', ''), 'OK', 'an empty password turns it off');
  const open = await Client.connect(node.port);
  t.equal(await open.text('GET', 'rp'), 'x', 'new connections need no AUTH again');
  t.same(await open.call('AUTH', 'x'), { error: 'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?' });
  for (const c of [admin, fresh, open]) c.close();
});

t.test('CLIENT LIST, SETNAME, SETINFO, KILL', async (t) => {
  const a = await Client.connect(node.port);
  const b = await Client.connect(node.port);
  t.equal(await a.call('CLIENT', 'SETNAME', 'alpha'), 'OK');
  t.equal(await b.call('CLIENT', 'SETNAME', 'beta'), 'OK');
  t.equal(await b.call('CLIENT', 'SETINFO', 'LIB-NAME', 'mylib'), 'OK');
  t.equal(await b.call('CLIENT', 'SETINFO', 'LIB-VER', '1.2.3'), 'OK');
  t.match(await b.call('CLIENT', 'SETINFO', 'LIB-NAME', 'has space'), { error: /cannot contain spaces/ });
  t.match(await b.call('CLIENT', 'SETINFO', 'BOGUS', 'x'), { error: /Unrecognized option/ });
  const idA = (await a.call('CLIENT', 'ID')) as number;
  const idB = (await b.call('CLIENT', 'ID')) as number;
  t.ok(idB > idA, 'ids increase');
  const list = String(await a.text('CLIENT', 'LIST'));
  const lines = list.trim().split('\n');
  const line = (id: number) => lines.find((l) => l.startsWith(`id=${id} `));
  t.match(line(idA), /^id=\d+ addr=127\.0\.0\.1:\d+ laddr=127\.0\.0\.1:\d+ fd=-?\d+ name=alpha age=\d+ idle=\d+ flags=N db=0 /, 'CLIENT LIST line for alpha');
  t.match(line(idA), / cmd=client\|list /, 'with its last command');
  t.match(line(idB), / name=beta .* lib-name=mylib lib-ver=1\.2\.3$/, 'beta with its library info');
  const only = String(await a.text('CLIENT', 'LIST', 'ID', idB));
  t.equal(only.trim().split('\n').length, 1, 'CLIENT LIST ID filters');
  t.match(String(await a.text('CLIENT', 'INFO')), new RegExp(`^id=${idA} .* name=alpha `));

  t.equal(await a.call('CLIENT', 'KILL', 'ID', idA), 0, 'CLIENT KILL ID <self> skips the caller (SKIPME yes)');
  t.equal(await a.call('CLIENT', 'KILL', 'ID', idB), 1, 'CLIENT KILL ID <other> kills 1');
  t.ok(await b.waitClosed(), 'the killed connection is closed');
  t.equal(await a.call('PING'), 'PONG', 'the killer is fine');
  const after = String(await a.text('CLIENT', 'LIST'));
  t.notMatch(after, /name=beta/, 'beta is gone from CLIENT LIST');
  const c = await Client.connect(node.port);
  const cAddr = /addr=(\S+)/.exec(String(await c.text('CLIENT', 'INFO')))![1]!;
  t.equal(await a.call('CLIENT', 'KILL', cAddr), 'OK', 'CLIENT KILL addr:port (old form)');
  t.ok(await c.waitClosed(), 'killed');
  t.equal(await a.call('CLIENT', 'KILL', 'ID', idA, 'SKIPME', 'no'), 1, 'SKIPME no kills the caller');
  t.ok(await a.waitClosed(), 'after its reply');
});

t.test('FLUSHALL empties the node and stays done after a restart', async (t) => {
  const c = await Client.connect(node.port);
  const pairs: string[] = [];
  for (let i = 0; i < 200; i++) pairs.push(`flush:${i}`, `v${i}`);
  t.equal(await c.call('MSET', ...pairs), 'OK');
  t.ok(((await c.call('DBSIZE')) as number) >= 200);
  t.equal(await c.call('FLUSHALL'), 'OK');
  t.equal(await c.call('DBSIZE'), 0, 'DBSIZE 0 after FLUSHALL');
  t.same(await c.call('KEYS', '*'), []);
  t.equal(await c.call('RANDOMKEY'), null);
  t.equal(await c.call('SET', 'after-flush', 'kept'), 'OK', 'a write after the flush');
  c.close();
  await restart(t);
  const d = await Client.connect(node.port);
  t.equal(await d.call('DBSIZE'), 1, 'after restart only the key written after FLUSHALL exists');
  t.equal(await d.text('GET', 'after-flush'), 'kept');
  t.equal(await d.call('GET', 'flush:1'), null, 'flushed keys do not come back');
  d.close();
});

t.test('persistence: what was acknowledged before SIGTERM is intact after restart', async (t) => {
  const c = await Client.connect(node.port);
  await c.call('FLUSHALL');
  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const compressible = Buffer.alloc(200 * 1024, 'abcdefgh');
  const expected = new Map<string, Buffer>();
  expected.set('p:bin', allBytes);
  expected.set('p:big', big);
  expected.set('p:compressible', compressible);
  expected.set('p:empty', Buffer.alloc(0));
  for (const [k, v] of expected) t.equal(await c.call('SET', k, v), 'OK');
  t.equal(await c.call('SET', allBytes, 'binary key'), 'OK');
  expected.set(allBytes.toString('latin1'), Buffer.from('binary key'));
  // Many small keys, some overwritten, some deleted, some counters.
  const pipe: Buffer[] = [];
  for (let i = 0; i < 5000; i++) pipe.push(encode(['SET', `p:k${i}`, `first${i}`]));
  for (let i = 0; i < 5000; i += 2) pipe.push(encode(['SET', `p:k${i}`, `second${i}`]));
  for (let i = 0; i < 5000; i += 5) pipe.push(encode(['DEL', `p:k${i}`]));
  for (let i = 0; i < 1000; i++) pipe.push(encode(['INCR', 'p:counter']));
  for (let i = 0; i < 10; i++) pipe.push(encode(['APPEND', 'p:appended', `part${i};`]));
  pipe.push(encode(['SET', 'p:ttl', 'v', 'EX', 5000]));
  pipe.push(encode(['INCRBYFLOAT', 'p:float', '0.1']), encode(['INCRBYFLOAT', 'p:float', '0.2']));
  c.sock.write(Buffer.concat(pipe));
  let errors = 0;
  for (let i = 0; i < 5000 + 2500 + 1000 + 1000 + 10 + 1 + 2; i++) {
    const r = await c.reply(20000);
    if (typeof r === 'object' && r !== null && 'error' in r) errors++;
  }
  t.equal(errors, 0, 'every pipelined write acknowledged');
  for (let i = 0; i < 5000; i++) {
    if (i % 5 === 0) continue;
    expected.set(`p:k${i}`, Buffer.from(i % 2 === 0 ? `second${i}` : `first${i}`));
  }
  expected.set('p:counter', Buffer.from('1000'));
  expected.set('p:appended', Buffer.from(Array.from({ length: 10 }, (_, i) => `part${i};`).join('')));
  expected.set('p:ttl', Buffer.from('v'));
  expected.set('p:float', Buffer.from('0.3'));
  const sizeBefore = await c.call('DBSIZE');
  c.close();

  await restart(t);
  const d = await Client.connect(node.port);
  t.equal(await d.call('DBSIZE'), sizeBefore, `DBSIZE ${String(sizeBefore)} after restart`);
  t.equal(await d.call('DBSIZE'), expected.size, 'exactly the expected keys');
  let wrong = 0;
  for (const [k, v] of expected) {
    const got = await d.call('GET', Buffer.from(k, 'latin1'));
    if (!Buffer.isBuffer(got) || !got.equals(v)) {
      if (wrong++ < 5) t.fail(`${JSON.stringify(k.slice(0, 40))}: got ${Buffer.isBuffer(got) ? `${got.length} bytes` : JSON.stringify(got)}`);
    }
  }
  t.equal(wrong, 0, `${expected.size} values intact`);
  t.equal(await d.call('EXISTS', 'p:k0', 'p:k5', 'p:k4995'), 0, 'deleted keys stay deleted');
  const ttl = (await d.call('TTL', 'p:ttl')) as number;
  t.ok(ttl > 4900 && ttl <= 5000, `TTL kept (${ttl})`);
  t.equal(await d.call('INCR', 'p:counter'), 1001, 'the counter continues');
  d.close();
});

t.test('admin sidecar: /health and /stats', async (t) => {
  const c = await Client.connect(node.port);
  await c.call('SET', 'admin:key', 'v');
  const info = infoFields(String(await c.text('INFO', 'server')));
  c.close();
  const health = await httpGet(node.adminPort, '/health');
  t.equal(health.status, 200, 'GET /health: 200');
  t.match(health.type, /application\/json/);
  const h = JSON.parse(health.body) as { node: string; status: string };
  t.same(h, { node: info.get('node_id'), status: 'ok' }, '{"node":<id>,"status":"ok"}');
  t.match(h.node, /^[0-9a-f]{8,}$/, 'node id');

  const stats = await httpGet(node.adminPort, '/stats');
  t.equal(stats.status, 200, 'GET /stats: 200');
  const s = JSON.parse(stats.body) as Record<string, Record<string, unknown>>;
  t.equal(s.server?.redis_version, info.get('redis_version'), 'stats.server.redis_version');
  t.equal(s.persistence?.loading, 0, 'stats.persistence.loading is a number');
  t.ok(typeof s.stats?.total_commands_processed === 'number' && (s.stats.total_commands_processed as number) > 0, 'stats.stats.total_commands_processed');
  t.match(String(s.keyspace?.db0), /^keys=\d+/, 'stats.keyspace.db0');
  t.ok(s.commandstats && Object.keys(s.commandstats).some((k) => k === 'cmdstat_set'), 'stats.commandstats');

  const missing = await httpGet(node.adminPort, '/nope');
  t.equal(missing.status, 404, 'unknown path: 404');
  const post = await httpGet(node.adminPort, '/health', 'POST');
  t.equal(post.status, 405, 'POST: 405');
  const head = await httpGet(node.adminPort, '/health', 'HEAD');
  t.equal(head.status, 200, 'HEAD /health: 200');
});

t.test('a node exits 0 on SIGTERM', async (t) => {
  t.equal(await node.stop('SIGTERM'), 0);
});
