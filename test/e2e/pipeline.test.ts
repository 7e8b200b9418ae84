// Pipelines that mix replies computed at once with replies that wait (cold
// reads from disk when the value cache is empty): every reply must come back
// in order and complete.

import t from 'tap';
import * as net from 'node:net';
import { Redis } from 'ioredis';
import { startCluster, startNode } from './harness.js';

t.test('pipelined hot and cold commands reply in order', async (t) => {
  const node = await startNode({ args: ['--cache-bytes', '0', '--admin-port', '0'] });
  t.teardown(() => node.stop());
  const r = new Redis({ port: node.port });
  t.teardown(() => r.disconnect());
  for (let i = 0; i < 300; i++) await r.set(`p:${i}`, `value-${i}`);
  // Restart so nothing is cached: every GET below reads the disk (asynchronously).
  await node.stop();
  const again = await startNode({ dataDir: node.dataDir, args: ['--cache-bytes', '0', '--admin-port', '0'] });
  t.teardown(() => again.stop());
  const c = new Redis({ port: again.port });
  t.teardown(() => c.disconnect());
  const p = c.pipeline();
  for (let i = 0; i < 300; i++) {
    p.get(`p:${i}`); // cold: a Promise inside the server
    p.ping(`ping-${i}`); // hot: answered at once
    if (i % 10 === 0) p.incr(`n:${i}`);
  }
  const res = (await p.exec())!;
  let k = 0;
  for (let i = 0; i < 300; i++) {
    const [e1, v] = res[k++]!;
    const [e2, pong] = res[k++]!;
    if (e1 || e2 || v !== `value-${i}` || pong !== `ping-${i}`) {
      t.fail(`reply ${i} out of order or wrong: ${v} ${pong}`);
      return;
    }
    if (i % 10 === 0) t.equal(res[k++]![1], 1);
  }
  t.pass('all 600 replies in order');
  const concurrent = await Promise.all(Array.from({ length: 300 }, (_, i) => c.get(`p:${i}`)));
  t.same(concurrent, Array.from({ length: 300 }, (_, i) => `value-${i}`));
});

// A cluster command that waits (here a read at ALL with one owner stopped)
// must not hold up the commands behind it on other keys, and must hold up the
// ones on its own key: effects on each key stay in the order they were sent.
t.test('cluster pipelines overlap commands on different keys, never on the same key', async (t) => {
  const timeoutMs = 1500;
  const nodes = await startCluster(3, { args: ['--request-timeout-ms', String(timeoutMs), '--admin-port', '0'] });
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  const a = new Redis({ port: nodes[0]!.port });
  const b = new Redis({ port: nodes[0]!.port });
  t.teardown(() => {
    a.disconnect();
    b.disconnect();
  });
  await a.set('same', 'old');
  t.same(await a.call('CONSISTENCY', 'READ', 'ALL', 'WRITE', 'QUORUM'), ['n', 3, 'r', 3, 'w', 2]);
  nodes[2]!.proc.kill('SIGSTOP');
  t.teardown(() => nodes[2]!.proc.kill('SIGCONT'));

  /** Polls `key` on the other connection until it reads `want`; the ms it took, or Infinity. */
  const seen = async (key: string, want: string, withinMs: number): Promise<number> => {
    const t0 = Date.now();
    while (Date.now() - t0 < withinMs) {
      if ((await b.get(key)) === want) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, 20));
    }
    return Infinity;
  };

  // GET at ALL waits for the stopped node until the request times out; the SET of another key behind it does not.
  const t0 = Date.now();
  const other = a.pipeline().get('slow:1').set('fast:1', 'v').exec();
  const otherSeenMs = await seen('fast:1', 'v', timeoutMs * 3);
  const otherReplies = (await other)!;
  const otherDoneMs = Date.now() - t0;
  t.ok(otherSeenMs < timeoutMs / 2, `SET of another key took effect at once (${otherSeenMs} ms)`);
  t.ok(otherDoneMs >= timeoutMs * 0.9, `while the GET before it still waited (${otherDoneMs} ms)`);
  t.match(String(otherReplies[0]![0]), /TRYAGAIN/, 'the GET at ALL failed for want of the stopped owner');
  t.same(otherReplies[1], [null, 'OK'], 'and the SET replied after it, in order');

  // The same key: the SET waits until the GET before it has finished.
  const t1 = Date.now();
  const same = a.pipeline().get('same').set('same', 'new').exec();
  const sameSeenMs = await seen('same', 'new', timeoutMs * 3);
  await same;
  t.ok(sameSeenMs >= timeoutMs * 0.9, `SET of the same key took effect only after the GET before it (${sameSeenMs} ms, ${Date.now() - t1} ms in all)`);
});

// HELLO switches the protocol replies are encoded in: replies to commands
// pipelined before it keep the protocol they were computed in, as in Redis.
t.test('replies before a pipelined HELLO 3 stay RESP2', async (t) => {
  const node = await startNode({ args: ['--admin-port', '0'] });
  t.teardown(() => node.stop());
  const sock = net.connect(node.port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
  await new Promise((r) => sock.once('connect', r));
  const cmd = (...a: string[]) => `*${a.length}\r\n${a.map((x) => `$${x.length}\r\n${x}\r\n`).join('')}`;
  sock.write(cmd('SET', 'k', 'v') + cmd('GET', 'missing') + cmd('HELLO', '3') + cmd('GET', 'missing'));
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !got.endsWith('_\r\n')) await new Promise((r) => setTimeout(r, 20));
  t.ok(got.startsWith('+OK\r\n$-1\r\n%'), `SET and GET answered in RESP2, then the HELLO map: ${JSON.stringify(got.slice(0, 16))}`);
  t.ok(got.endsWith('_\r\n'), 'the GET after HELLO 3 answers a RESP3 null');
});
