// Real client libraries against a real node over real sockets: ioredis 5 and 6,
// node-redis 5 and 6, redis-py (Debian's python3-redis) and redis-cli. Each
// runs its own handshake (REFERENCE.md) and a workload of the string keyspace.

import t, { type Test } from 'tap';
import { Redis as IORedis5 } from 'ioredis5';
import { Redis as IORedis6 } from 'ioredis6';
import { createClient as createClient5 } from 'redis5';
import { createClient as createClient6 } from 'redis6';
import { type NodeProcess, run, startNode } from './harness.js';

let node: NodeProcess;
t.before(async () => {
  node = await startNode({ args: ['--log-level', 'info'] });
});

type Call = (...args: Array<string | Buffer | number>) => Promise<unknown>;

/** The same checks through any client, given a raw command call. */
async function workload(t: Test, call: Call, p: string): Promise<void> {
  t.equal(await call('SET', `${p}:a`, 'hello'), 'OK');
  t.equal(String(await call('GET', `${p}:a`)), 'hello');
  t.equal(await call('GET', `${p}:missing`), null);
  t.equal(await call('APPEND', `${p}:a`, ' world'), 11);
  t.equal(String(await call('GETRANGE', `${p}:a`, 0, 4)), 'hello');
  t.equal(await call('STRLEN', `${p}:a`), 11);
  t.equal(await call('INCR', `${p}:n`), 1);
  t.equal(await call('INCRBY', `${p}:n`, 41), 42);
  t.equal(await call('DECR', `${p}:n`), 41);
  t.equal(String(await call('INCRBYFLOAT', `${p}:f`, '1.5')), '1.5');
  t.equal(await call('MSET', `${p}:m1`, 'x', `${p}:m2`, 'y'), 'OK');
  t.same((await call('MGET', `${p}:m1`, `${p}:m2`, `${p}:none`)) as unknown[], ['x', 'y', null].map((v) => v));
  t.equal(await call('EXISTS', `${p}:m1`, `${p}:m2`, `${p}:none`), 2);
  t.equal(await call('SET', `${p}:e`, 'v', 'EX', 100), 'OK');
  const ttl = (await call('TTL', `${p}:e`)) as number;
  t.ok(ttl > 98 && ttl <= 100, `ttl ${ttl}`);
  t.equal(await call('PERSIST', `${p}:e`), 1);
  t.equal(await call('TTL', `${p}:e`), -1);
  t.equal(await call('SET', `${p}:a`, 'new', 'NX'), null);
  t.equal(await call('SET', `${p}:nx`, 'v', 'NX'), 'OK');
  t.equal(String(await call('GETSET', `${p}:nx`, 'w')), 'v');
  t.equal(String(await call('GETDEL', `${p}:nx`)), 'w');
  t.equal(await call('DEL', `${p}:m1`, `${p}:m2`, `${p}:none`), 2);
  t.equal(await call('TYPE', `${p}:a`), 'string');
  t.equal(await call('TYPE', `${p}:none`), 'none');
  await t.rejects(call('INCR', `${p}:a`), /ERR value is not an integer or out of range/);
  await t.rejects(call('GET'), /wrong number of arguments for 'get' command/);
  await t.rejects(call('NOSUCHCOMMAND', 'x'), /ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x'/);
  // Binary safety: every byte value in key and value.
  const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  t.equal(await call('SET', Buffer.concat([Buffer.from(p), bin]), bin), 'OK');
}

t.test('ioredis 5 (RESP2)', async (t) => {
  const r = new IORedis5({ port: node.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  await r.connect();
  await workload(t, (...a) => r.call(String(a[0]), ...a.slice(1)), 'io5');
  const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  t.same(await r.getBuffer(Buffer.concat([Buffer.from('io5'), bin])), bin, 'binary value round trip');
  const pipe = r.pipeline();
  for (let i = 0; i < 100; i++) pipe.set(`io5:p${i}`, String(i));
  for (let i = 0; i < 100; i++) pipe.get(`io5:p${i}`);
  const results = (await pipe.exec())!;
  t.equal(results.length, 200);
  t.equal(results[150]![1], '50');
  const seen = new Set<string>();
  await new Promise<void>((resolve) => {
    r.scanStream({ match: 'io5:p*', count: 7 })
      .on('data', (keys: string[]) => keys.forEach((k) => seen.add(k)))
      .on('end', () => resolve());
  });
  t.equal(seen.size, 100, 'scanStream sees every key');
  t.equal(await r.dbsize() > 100, true);
  await r.quit();
});

t.test('ioredis 6 (RESP3 via HELLO 3)', async (t) => {
  const r = new IORedis6({ port: node.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  await r.connect();
  await workload(t, (...a) => r.call(String(a[0]), ...a.slice(1)), 'io6');
  const info = (await r.call('CLIENT', 'INFO')) as string;
  t.match(info, /resp=3/, 'connection runs RESP3');
  t.match(info, /lib-name=ioredis/, 'CLIENT SETINFO recorded');
  await r.quit();
});

t.test('node-redis 5 (RESP2)', async (t) => {
  const c = createClient5({ socket: { port: node.port, reconnectStrategy: false } });
  c.on('error', () => {});
  await c.connect();
  await workload(t, (...a) => c.sendCommand(a.map((x) => (Buffer.isBuffer(x) ? x : String(x)))), 'nr5');
  t.equal(await c.set('nr5:x', 'y'), 'OK');
  t.equal(await c.get('nr5:x'), 'y');
  const multi = await c.multi().set('nr5:t', '1').incr('nr5:t').execAsPipeline();
  t.same(multi, ['OK', 2]);
  await c.quit();
});

t.test('node-redis 6 (RESP3)', async (t) => {
  const c = createClient6({ socket: { port: node.port, reconnectStrategy: false }, RESP: 3 });
  c.on('error', () => {});
  await c.connect();
  await workload(t, (...a) => c.sendCommand(a.map((x) => (Buffer.isBuffer(x) ? x : String(x)))), 'nr6');
  t.equal(await c.set('nr6:x', 'y'), 'OK');
  t.equal(await c.get('nr6:x'), 'y');
  t.match(String(await c.sendCommand(['CLIENT', 'INFO'])), /resp=3/);
  await c.close();
});

t.test('redis-py (Debian python3-redis)', async (t) => {
  const script = `
import redis, sys
r = redis.Redis(host='127.0.0.1', port=${node.port})
assert r.ping() is True
assert r.set('py:a', b'\\x00\\xffbin') is True
assert r.get('py:a') == b'\\x00\\xffbin'
assert r.incr('py:n') == 1
assert r.incrby('py:n', 9) == 10
assert r.mset({'py:x': '1', 'py:y': '2'}) is True
assert r.mget(['py:x', 'py:y', 'py:z']) == [b'1', b'2', None]
assert r.set('py:e', 'v', ex=50) is True
assert 48 <= r.ttl('py:e') <= 50
assert r.delete('py:x', 'py:y') == 2
assert r.exists('py:a') == 1
p = r.pipeline(transaction=False)
for i in range(50): p.set('py:p%d' % i, i)
assert all(p.execute())
assert sorted(r.scan_iter(match='py:p*', count=5)) == sorted(('py:p%d' % i).encode() for i in range(50))
info = r.info()
assert info['loading'] == 0 and info['role'] == 'master', info
try:
    r.execute_command('INCR', 'py:a')
    sys.exit('INCR on a non-number did not fail')
except redis.ResponseError as e:
    assert 'not an integer' in str(e)
print('ok')
`;
  const res = await run('/usr/bin/python3', ['-c', script]);
  t.equal(res.stderr, '', 'no python errors');
  t.equal(res.stdout.trim(), 'ok');
});

t.test('redis-cli', async (t) => {
  const cli = (...args: string[]) => run('redis-cli', ['-p', String(node.port), ...args]);
  t.equal((await cli('SET', 'cli:a', 'hello world')).stdout.trim(), 'OK');
  t.equal((await cli('GET', 'cli:a')).stdout.trim(), 'hello world');
  t.equal((await cli('INCRBY', 'cli:n', '5')).stdout.trim(), '5');
  t.equal((await cli('GET', 'cli:none')).stdout.trim(), '');
  t.match((await cli('INFO', 'server')).stdout, /redis_version:7\./);
  t.match((await cli('NOPE')).stdout, /ERR unknown command 'NOPE'/);
  // Piped commands, as in `cat cmds | redis-cli`, and --pipe mass insertion.
  const piped = await run('redis-cli', ['-p', String(node.port)], { input: 'SET cli:p 1\nINCR cli:p\nGET cli:p\n' });
  t.equal(piped.stdout.trim().split('\n').join(','), 'OK,2,2');
  let proto = '';
  for (let i = 0; i < 1000; i++) proto += `*3\r\n$3\r\nSET\r\n$${`cli:m${i}`.length}\r\ncli:m${i}\r\n$1\r\nx\r\n`;
  const pipe = await run('redis-cli', ['-p', String(node.port), '--pipe'], { input: proto });
  t.match(pipe.stdout, /errors: 0, replies: 1000/);
  t.match((await cli('--scan', '--pattern', 'cli:m99*')).stdout.trim().split('\n').sort().join(','), 'cli:m99,cli:m990,cli:m991,cli:m992,cli:m993,cli:m994,cli:m995,cli:m996,cli:m997,cli:m998,cli:m999');
  // redis-cli prints RESP3 types when asked for them.
  t.match((await cli('-3', 'HELLO', '3')).stdout, /proto/);
});

t.test('redis-benchmark runs to the end without an error', async (t) => {
  const res = await run('redis-benchmark', ['-p', String(node.port), '-t', 'ping,set,get,incr,mset', '-n', '20000', '-q'], { timeoutMs: 120000 });
  t.equal(res.code, 0, `redis-benchmark exit code; stderr: ${res.stderr}`);
  for (const test of ['PING_INLINE', 'PING_MBULK', 'SET', 'GET', 'INCR', 'MSET']) {
    t.match(res.stdout, new RegExp(`${test}( \\(10 keys\\))?: [\\d.]+ requests per second`), `${test} completed`);
  }
});

t.test('SIGTERM: the node closes its clients, flushes and exits 0', async (t) => {
  t.equal(await node.stop('SIGTERM'), 0);
  t.ok(node.logs.some((l) => l.msg === 'shut down cleanly'), 'logged a clean shutdown');
});
