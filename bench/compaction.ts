// `npm run bench:compaction`: what compaction costs and what it gives back.
//
// 1. Space, through the storage API: overwrite the same K keys (default 1M,
//    16-byte keys, 100-byte values) ten times, let compaction finish, and
//    compare the data directory with the live data.
// 2. Latency, over real sockets: a node with 1 MiB segments is filled with
//    overwrites so that there is plenty to compact; then redis-benchmark SET
//    runs with compaction off (--compaction no) and on (background
//    compaction, plus a BGREWRITEAOF at the start), alternating, and p99 is
//    compared. The measured SETs overwrite the same keys, so in "on" mode
//    segments keep going dead and being compacted while they run; the
//    output counts the compactions that finished during each run.
//
//   node dist/bench/compaction.js [--keys 1000000] [--runs 3] [--requests 200000] [--space false] [--latency false]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pino } from 'pino';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SegmentStore } from '../src/storage/store.js';
import { run, startNode, tempDir } from '../test/e2e/harness.js';
import { benchmark, median } from './run.js';

const argv = yargs(hideBin(process.argv))
  .option('keys', { type: 'number', default: 1_000_000 })
  .option('runs', { type: 'number', default: 3 })
  .option('requests', { type: 'number', default: 200_000 })
  .option('space', { type: 'boolean', default: true, describe: 'run the space part' })
  .option('latency', { type: 'boolean', default: true, describe: 'run the latency part' })
  .strict()
  .parseSync();

const dirBytes = (dir: string): number => fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
const mib = (n: number): string => (n / 1024 / 1024).toFixed(1);

async function space(): Promise<void> {
  const dir = tempDir('dkv-bench-compaction-');
  const store = await SegmentStore.open({
    dir,
    fsync: 'everysec',
    segmentBytesMax: 64 * 1024 * 1024,
    cacheBytes: 64 * 1024 * 1024,
    compressBytesMin: 1024,
    compressLevel: 3,
    logger: pino({ level: 'warn' }),
    compactionRateMB: 0,
  });
  const key = Buffer.alloc(16);
  const value = Buffer.alloc(100, 'v');
  const started = Date.now();
  let written = 0;
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < argv.keys; i++) {
      key.write(`key:${i.toString().padStart(12, '0')}`, 'latin1');
      value.write(`${round}`, 'latin1');
      store.put(key, value, 0);
      if (++written % 10_000 === 0) await new Promise<void>((r) => store.whenDurable(() => r()));
    }
  }
  await new Promise<void>((r) => store.whenDurable(() => r()));
  const loadedMs = Date.now() - started;
  const before = dirBytes(dir);
  // Let the background compactor finish what it qualifies for, then one full pass (BGREWRITEAOF).
  const t0 = Date.now();
  await store.compactNow();
  const compactMs = Date.now() - t0;
  const st = store.stats();
  const after = dirBytes(dir);
  console.log(`\nSpace: ${argv.keys.toLocaleString('en-US')} keys (16 B keys, 100 B values) overwritten 10 times`);
  console.log(`| figure | value |\n|---|---:|`);
  console.log(`| puts | ${written.toLocaleString('en-US')} in ${(loadedMs / 1000).toFixed(1)} s |`);
  console.log(`| live data (records the index points at) | ${mib(st.liveBytes)} MiB |`);
  console.log(`| directory before the final compaction (background compaction ran meanwhile) | ${mib(before)} MiB (${(before / st.liveBytes).toFixed(2)}x live) |`);
  console.log(`| directory after it | ${mib(after)} MiB (${(after / st.liveBytes).toFixed(2)}x live) |`);
  console.log(`| final compaction | ${(compactMs / 1000).toFixed(1)} s; ${st.compaction.compactions} compactions in all |`);
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

async function latency(): Promise<void> {
  const common = ['--fsync', 'everysec', '--admin-port', '0', '--segment-bytes-max', '1mb', '--log-level', 'info'];
  const results: Record<'off' | 'on', { p99: number[]; p50: number[]; rps: number[] }> = {
    off: { p99: [], p50: [], rps: [] },
    on: { p99: [], p50: [], rps: [] },
  };
  for (let r = 0; r < argv.runs; r++) {
    for (const mode of ['off', 'on'] as const) {
      const node = await startNode({ args: [...common, '--compaction', mode === 'on' ? 'yes' : 'no'] });
      // Fill: 300k overwrites of 30k keys = ~10x dead data for compaction to chew on.
      await run('redis-benchmark', ['-p', String(node.port), '-t', 'set', '-n', '300000', '-r', '30000', '-d', '100', '-P', '16', '-q'], { timeoutMs: 600000 });
      if (mode === 'on') await run('redis-cli', ['-p', String(node.port), 'BGREWRITEAOF']);
      const rewrites = async (): Promise<number> => Number(/aof_rewrites:(\d+)/.exec((await run('redis-cli', ['-p', String(node.port), 'INFO', 'persistence'])).stdout)?.[1]);
      const before = await rewrites();
      // The measured SETs overwrite the same 30k keys: in "on" mode, segments go dead and are compacted while they run.
      const s = (await benchmark(node.port, ['-t', 'set', '-n', String(argv.requests), '-r', '30000', '-d', '100', '-c', '50'])).get('SET')!;
      const during = (await rewrites()) - before;
      results[mode].p99.push(s.p99);
      results[mode].p50.push(s.p50);
      results[mode].rps.push(s.rps);
      console.log(`run ${r + 1} compaction ${mode}: ${Math.round(s.rps)} SET/s, p50 ${s.p50} ms, p99 ${s.p99} ms (${during} compactions finished during the run)`);
      await node.stop('SIGTERM');
      fs.rmSync(node.dataDir, { recursive: true, force: true });
    }
  }
  console.log(`\nSET latency with and without compaction (redis-benchmark -c 50 -d 100 -r 30000, medians of ${argv.runs})`);
  console.log(`| compaction | SET/s | p50 ms | p99 ms |\n|---|---:|---:|---:|`);
  for (const mode of ['off', 'on'] as const) {
    const m = results[mode];
    console.log(`| ${mode} | ${Math.round(median(m.rps)).toLocaleString('en-US')} | ${median(m.p50).toFixed(3)} | ${median(m.p99).toFixed(3)} |`);
  }
  console.log(`p99 ratio on/off: ${(median(results.on.p99) / median(results.off.p99)).toFixed(2)} (target <= 2)`);
}

if (argv.space) await space();
if (argv.latency) await latency();
