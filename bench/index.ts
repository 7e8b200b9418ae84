// `npm run bench:index`: the compact index at scale, through the SegmentStore
// API (no network): load N keys (16-byte keys, 100-byte values) into a temp
// directory, then report RSS, the index's bytes per key, the load rate, the
// restart (reopen) time, and GET throughput for hot (cached) and cold
// (uncached: one pread each, from the OS page cache on this machine) keys.
//
//   node --expose-gc dist/bench/index.js [--keys 20000000] [--cache-bytes 268435456] [--dir DIR]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SegmentStore } from '../src/storage/store.js';
import type { StoreOptions } from '../src/storage/store.js';
import { cli, startNode } from '../test/e2e/harness.js';

const argv = yargs(hideBin(process.argv))
  .option('keys', { type: 'number', default: 20_000_000 })
  .option('value-bytes', { type: 'number', default: 100 })
  .option('cache-bytes', { type: 'number', default: 256 * 1024 * 1024, describe: 'hot cache budget while loading and for hot reads' })
  .option('hot-reads', { type: 'number', default: 2_000_000 })
  .option('cold-reads', { type: 'number', default: 300_000 })
  .option('cold-concurrency', { type: 'number', default: 32 })
  .option('dir', { type: 'string', describe: 'data directory (default: a temp dir, removed at the end)' })
  .strict()
  .parseSync();

const gc = (globalThis as { gc?: () => void }).gc;
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;

/** A 16-byte key: "k" and 15 digits. */
function keyOf(i: number, buf = Buffer.allocUnsafe(16)): Buffer {
  buf[0] = 0x6b;
  let x = i;
  for (let p = 15; p >= 1; p--) {
    buf[p] = 0x30 + (x % 10);
    x = Math.floor(x / 10);
  }
  return buf;
}

function memory(): string {
  gc?.();
  const m = process.memoryUsage();
  return `rss ${mib(m.rss)}, heap used ${mib(m.heapUsed)}, array buffers ${mib(m.arrayBuffers)}`;
}

function options(dir: string, cacheBytes: number): StoreOptions {
  return {
    dir,
    fsync: 'no',
    segmentBytesMax: 256 * 1024 * 1024,
    cacheBytes,
    compressBytesMin: 1024,
    compressLevel: 3,
    logger: pino({ level: 'warn' }),
  };
}

function flushed(store: SegmentStore): Promise<void> {
  return new Promise((resolve, reject) => store.whenDurable((err) => (err ? reject(err) : resolve())));
}

async function main(): Promise<void> {
  const n = argv.keys;
  const dir = argv.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dkv-bench-index-'));
  const temp = argv.dir === undefined;
  console.log(`# bench:index: ${n.toLocaleString('en-US')} keys of 16 bytes, values of ${argv['value-bytes']} bytes, cache ${mib(argv['cache-bytes'])}, dir ${dir}`);
  console.log(`# node ${process.version}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}, load average ${os.loadavg()[0]!.toFixed(2)}${gc ? '' : ' (run with --expose-gc for steadier RSS figures)'}`);
  console.log(`start: ${memory()}`);

  // --- load ---
  let store = await SegmentStore.open(options(dir, argv['cache-bytes']));
  const value = Buffer.alloc(argv['value-bytes'], 0x61);
  const key = Buffer.allocUnsafe(16);
  let t0 = performance.now();
  for (let i = 0; i < n; i++) {
    value.writeUInt32LE(i, 0);
    store.put(keyOf(i, key), value, 0);
    // Let the writer flush (one write per turn) so pending batches stay small.
    if (i % 50_000 === 49_999) await flushed(store);
  }
  await flushed(store);
  const loadS = (performance.now() - t0) / 1000;
  let s = store.stats();
  console.log(`load: ${(n / loadS).toFixed(0)} keys/s (${loadS.toFixed(1)} s), ${mib(s.diskBytes)} on disk`);
  console.log(`after load: ${memory()}`);
  console.log(`index: ${mib(s.indexBytes)} = ${(s.indexBytes / s.keys).toFixed(1)} bytes/key (${s.keys.toLocaleString('en-US')} keys), cache ${mib(s.cacheBytes)}`);

  // --- hot GETs: the most recently written keys are in the cache ---
  const hotSet = Math.min(n, 100_000);
  t0 = performance.now();
  let misses = 0;
  for (let r = 0; r < argv['hot-reads']; r++) {
    const i = n - 1 - (r % hotSet);
    const e = store.get(keyOf(i, key));
    if (e === undefined || e instanceof Promise) misses++;
  }
  const hotS = (performance.now() - t0) / 1000;
  console.log(`GET hot: ${(argv['hot-reads'] / hotS).toFixed(0)} gets/s (${argv['hot-reads'].toLocaleString('en-US')} gets over the last ${hotSet.toLocaleString('en-US')} keys; ${misses} not synchronous)`);
  // A node that has run for a while has a hint file for every sealed segment: let the background
  // hint writer (throttled to --compaction-rate-mb) catch up with the load before closing, as it
  // would on a node that is not loading at full speed. A clean shutdown writes at most
  // shutdownHintBytesMax of queued hints itself; the rest would be scanned at the restart.
  t0 = performance.now();
  while (store.stats().compaction.hintsWritten < store.stats().segments - 1 && performance.now() - t0 < 300_000) {
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`hint files caught up ${((performance.now() - t0) / 1000).toFixed(1)} s after the load (${store.stats().compaction.hintsWritten} written)`);
  await store.close();
  store = undefined as unknown as SegmentStore;
  gc?.();

  // --- restart ---
  t0 = performance.now();
  store = await SegmentStore.open(options(dir, 0));
  const reopenS = (performance.now() - t0) / 1000;
  s = store.stats();
  console.log(`restart: ${reopenS.toFixed(1)} s to reopen (${s.recovery.recordsRead.toLocaleString('en-US')} records in ${s.segments} segments: ${s.recovery.hintsUsed} from hint files, ${s.recovery.segmentsScanned} scanned; ${(s.recovery.recordsRead / reopenS).toFixed(0)} records/s)`);
  console.log(`after restart (cache off): ${memory()}, index ${(s.indexBytes / s.keys).toFixed(1)} bytes/key`);

  // --- cold GETs: cache off, so every get is one pread (the files are in the OS page cache) ---
  let x = 12345;
  const rand = () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 4294967296;
  };
  let done = 0;
  let wrong = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: argv['cold-concurrency'] }, async () => {
      while (done < argv['cold-reads']) {
        done++;
        const i = Math.floor(rand() * n);
        const e = await store.get(keyOf(i));
        if (e === undefined || e.value.readUInt32LE(0) !== i) wrong++;
      }
    }),
  );
  const coldS = (performance.now() - t0) / 1000;
  console.log(`GET cold: ${(done / coldS).toFixed(0)} gets/s (${done.toLocaleString('en-US')} random keys, ${argv['cold-concurrency']} in flight, ${wrong} wrong)`);
  s = store.stats();
  console.log(`key verification reads: ${s.keyVerifyReads}, false matches: ${s.falseMatches}`);
  await store.close();

  // --- a whole node restarting on this directory: process start to the first GET answered ---
  t0 = performance.now();
  const node = await startNode({ dataDir: dir, args: ['--log-level', 'info'], timeoutMs: 600_000 });
  const probe = keyOf(Math.floor(n / 2)).toString('latin1');
  const got = await cli(node.port, 'GET', probe);
  const nodeS = (performance.now() - t0) / 1000;
  console.log(`node restart: ${nodeS.toFixed(1)} s from spawning \`distri-kv start\` to the first GET answered (${n.toLocaleString('en-US')} keys; value ${got.length > 0 ? 'found' : 'MISSING'})`);
  await node.stop('SIGTERM');
  if (temp) fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
