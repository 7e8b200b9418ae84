// Pipelines that mix replies computed at once with replies that wait (cold
// reads from disk when the value cache is empty): every reply must come back
// in order and complete.

import t from 'tap';
import { Redis } from 'ioredis';
import { startNode } from './harness.js';

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
