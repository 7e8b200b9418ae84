import { SegmentStore } from '../dist/src/storage/store.js';
import { loadConfig } from '../dist/src/config.js';
import pino from 'pino';
import * as fs from 'node:fs';
const dir = fs.mkdtempSync('/tmp/st-');
const store = await SegmentStore.open({ dir, fsync: 'everysec', segmentBytesMax: 64 << 20, cacheBytes: 64 << 20, compressBytesMin: 1024, compressLevel: 3, compaction: true, compactionMinDeadRatio: 0.5, compactionRateMB: 64, tombstoneGraceSeconds: 3600, logger: pino({ level: 'warn' }) });
const K = 100000; const keys = Array.from({ length: K }, (_, i) => Buffer.from('key:' + String(i).padStart(12, '0')));
const val = Buffer.alloc(110, 7);
for (const k of keys) store.put(k, val, 0);
await new Promise((r) => setTimeout(r, 200));
for (let round = 0; round < 4; round++) {
  const N = 300000; let t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) { const k = keys[(Math.random() * K) | 0]; store.get(k); }
  const g = Number(process.hrtime.bigint() - t) / N;
  t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) { const k = keys[(Math.random() * K) | 0]; store.put(k, val, 0); if ((i & 1023) === 0) await new Promise((r) => setImmediate(r)); }
  const p = Number(process.hrtime.bigint() - t) / N;
  console.log(`get ${g.toFixed(0)} ns  put ${p.toFixed(0)} ns`);
}
await store.close?.(); fs.rmSync(dir, { recursive: true });
process.exit(0);
