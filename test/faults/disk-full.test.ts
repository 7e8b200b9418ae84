// A real full disk: a 4 MiB tmpfs mounted by the test (needs root; skipped
// otherwise), a real node on it, writes until the file system is full. Writes
// must fail with a clear error reply, reads keep working, nothing
// acknowledged is lost (also across a restart), and writes resume once space
// is freed.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import t from 'tap';
import { eventually, startNode, tempDir } from '../e2e/harness.js';

const isRoot = process.getuid?.() === 0;

t.test('disk full on a small tmpfs', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const mnt = tempDir('dkv-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  t.teardown(() => {
    try {
      execFileSync('umount', ['-l', mnt]);
    } catch {
      /* already gone */
    }
  });
  const filler = path.join(mnt, 'filler');
  fs.writeFileSync(filler, Buffer.alloc(1024 * 1024));
  const dataDir = path.join(mnt, 'data');
  let node = await startNode({ dataDir, args: ['--segment-bytes-max', '256kb', '--fsync', 'always'] });
  let client = new Redis({ port: node.port, maxRetriesPerRequest: 0 });
  t.teardown(() => node.stop('SIGKILL'));

  const acked = new Map<string, string>();
  let refusal: Error | undefined;
  for (let i = 0; i < 20_000 && refusal === undefined; i++) {
    const v = `value-${i}-${'x'.repeat(200)}`;
    try {
      await client.set(`k${i}`, v);
      acked.set(`k${i}`, v);
    } catch (err) {
      refusal = err as Error;
    }
  }
  t.ok(refusal, `writes refused after ${acked.size} acknowledged`);
  t.match(refusal?.message, /^MISCONF .*ENOSPC/, `clear error: ${refusal?.message}`);
  await t.rejects(client.set('another', 'x'), /MISCONF/, 'and refused while the disk is full');
  const sample = [...acked.keys()].filter((_, i) => i % 50 === 0);
  t.same(await client.mget(sample), sample.map((k) => acked.get(k)!), 'reads keep working');
  t.equal(await client.ping(), 'PONG', 'the node keeps running');

  fs.unlinkSync(filler);
  await eventually(
    () => client.set('after', 'space freed').then(() => true, () => false),
    15000,
    'writes to resume once space is freed',
  );
  acked.set('after', 'space freed');

  client.disconnect();
  await node.stop();
  node = await startNode({ dataDir, args: ['--segment-bytes-max', '256kb', '--fsync', 'always'] });
  client = new Redis({ port: node.port, maxRetriesPerRequest: 0 });
  const keys = [...acked.keys()];
  const values = await client.mget(keys);
  t.equal(keys.filter((k, i) => values[i] !== acked.get(k)).length, 0, `all ${keys.length} acknowledged writes after a restart`);
  client.disconnect();
});
