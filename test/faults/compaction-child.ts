// The process the compaction crash test kills: it writes a deterministic
// stream of puts and deletes (op n is a function of n alone) into a store
// with tiny segments and an eager, unthrottled compactor, and prints
// `acked N` on fd 1 (synchronously, so a SIGKILL cannot lose a printed
// line) each time every op up to N is durable. Not a test file by itself.

import { writeSync } from 'node:fs';
import { pino } from 'pino';
import { SegmentStore } from '../../src/storage/store.js';
import { compactionOp } from './compaction-ops.js';

const [dir, startArg] = process.argv.slice(2);
const store = await SegmentStore.open({
  dir: dir!,
  fsync: 'always',
  segmentBytesMax: 16 * 1024,
  cacheBytes: 1 << 20,
  compressBytesMin: 1024,
  compressLevel: 1,
  logger: pino({ level: 'warn' }, pino.destination(2)),
  maintenance: true,
  compactionMinDeadRatio: 0.2,
  compactionRateMB: 0,
  compactionCheckIntervalMs: 5,
  tombstoneGraceSeconds: 0,
});

let n = Number(startArg);
for (;;) {
  const end = n + 40;
  for (; n < end; n++) {
    const op = compactionOp(n);
    if (op.value === undefined) store.delete(Buffer.from(op.key));
    else store.put(Buffer.from(op.key), Buffer.from(op.value), 0);
  }
  await new Promise<void>((resolve, reject) => store.whenDurable((err) => (err ? reject(err) : resolve())));
  writeSync(1, `acked ${n - 1}\n`);
}
