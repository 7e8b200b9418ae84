// `npm run bench`: Distri-KV and a real redis-server side by side in one run.
// Both persist the same way (an append-only log fsynced every second); the
// same redis-benchmark command is run against each, alternating, and the
// medians and the ratio ours/Redis are printed.
//
//   node dist/bench/run.js [--runs 3] [--requests 200000] [--clients 50] [--pipelines 1,16] [--tests set,get]
//                          [--keyspace N]  (random keys among N, redis-benchmark -r; default: its one key)
//                          [--floor]       (SET against bench/floor.ts too: what the machine allows, without our code)

import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { freePort, run, startCluster, startNode, tempDir } from '../test/e2e/harness.js';
import { startFloor } from './floor.js';

interface Sample {
  rps: number;
  p50: number;
  p99: number;
}

export interface Target {
  name: string;
  port: number;
  stop(): Promise<unknown>;
}

export async function startRedis(): Promise<Target> {
  const port = await freePort();
  const dir = tempDir('dkv-bench-redis-');
  const proc: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 100; i++) {
    const r = await run('redis-cli', ['-p', String(port), 'PING']).catch(() => undefined);
    if (r?.stdout.trim() === 'PONG') break;
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    name: 'redis',
    port,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((res) => proc.once('exit', res));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startOurs(extraArgs: string[] = []): Promise<Target> {
  const node = await startNode({ args: ['--fsync', 'everysec', '--admin-port', '0', '--log-level', 'info', ...extraArgs] });
  return {
    name: 'distri-kv',
    port: node.port,
    stop: async () => {
      await node.stop('SIGTERM');
      fs.rmSync(node.dataDir, { recursive: true, force: true });
    },
  };
}

/** One redis-benchmark run; returns per-test samples parsed from its CSV output. */
export async function benchmark(port: number | number[], args: string[]): Promise<Map<string, Sample>> {
  const ports = Array.isArray(port) ? port : [port];
  // Several ports: one redis-benchmark per port at once, their rates summed, latencies the worst.
  const outs = await Promise.all(ports.map((p) => run('redis-benchmark', ['-p', String(p), '--csv', ...args], { timeoutMs: 600000 })));
  const result = new Map<string, Sample>();
  for (const out of outs) {
    if (out.code !== 0) throw new Error(`redis-benchmark failed (${out.code}): ${out.stderr}${out.stdout.slice(-500)}`);
    for (const line of out.stdout.split('\n')) {
      const cols = line.split(',').map((c) => c.replace(/"/g, ''));
      if (cols.length < 7 || cols[0] === 'test') continue;
      const s = { rps: Number(cols[1]), p50: Number(cols[4]), p99: Number(cols[6]) };
      const prev = result.get(cols[0]!);
      result.set(cols[0]!, prev ? { rps: prev.rps + s.rps, p50: Math.max(prev.p50, s.p50), p99: Math.max(prev.p99, s.p99) } : s);
    }
  }
  return result;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** A 3-node cluster of ours (N=3, R=2, W=2), as the cluster benchmark runs it. */
export async function startOurCluster(): Promise<{ ports: number[]; stop(): Promise<unknown> }> {
  const nodes = await startCluster(3, { args: ['--fsync', 'everysec', '--replicas', '3', '--read-quorum', '2', '--write-quorum', '2', '--admin-port', '0'] });
  return { ports: nodes.map((n) => n.port), stop: () => Promise.all(nodes.map((n) => n.stop('SIGTERM'))) };
}

interface Row {
  key: string;
  ours: Sample[];
  other: Sample[];
}

function printTable(title: string, cols: [string, string], rows: Row[]): void {
  console.log('');
  console.log(`## ${title}`);
  console.log('');
  console.log(`| test | ${cols[0]} ops/s | ${cols[1]} ops/s | ratio | ${cols[0]} p50/p99 ms | ${cols[1]} p50/p99 ms |`);
  console.log('|---|---:|---:|---:|---:|---:|');
  const lat = (xs: Sample[]) => `${median(xs.map((x) => x.p50)).toFixed(3)} / ${median(xs.map((x) => x.p99)).toFixed(3)}`;
  for (const r of rows) {
    const o = median(r.ours.map((x) => x.rps));
    const b = median(r.other.map((x) => x.rps));
    console.log(`| ${r.key} | ${fmt(o)} | ${fmt(b)} | ${(o / b).toFixed(2)} | ${lat(r.ours)} | ${lat(r.other)} |`);
  }
}

/** Runs the same benchmark against two targets, alternating which goes first, and collects samples per test. */
async function sideBySide(
  runs: number,
  pipelines: number[],
  a: (p: number) => Promise<Map<string, Sample>>,
  b: (p: number) => Promise<Map<string, Sample>>,
): Promise<Row[]> {
  const rows = new Map<string, Row>();
  for (const p of pipelines) {
    for (let i = 0; i < runs; i++) {
      for (const which of i % 2 === 0 ? ['a', 'b'] : ['b', 'a']) {
        const res = await (which === 'a' ? a(p) : b(p));
        for (const [test, s] of res) {
          const key = `${test} P${p}`;
          if (!rows.has(key)) rows.set(key, { key, ours: [], other: [] });
          rows.get(key)![which === 'a' ? 'ours' : 'other'].push(s);
        }
      }
    }
  }
  return [...rows.values()];
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('runs', { type: 'number', default: 3 })
    .option('requests', { type: 'number', default: 200000 })
    .option('clients', { type: 'number', default: 50 })
    .option('pipelines', { type: 'string', default: '1,16' })
    .option('tests', { type: 'string', default: 'set,get' })
    .option('keyspace', { type: 'number', default: 0, describe: 'random keys among this many (redis-benchmark -r); 0: one key' })
    .option('single', { type: 'boolean', default: true, describe: 'run the single node vs redis part' })
    .option('cluster', { type: 'boolean', default: true, describe: 'run the cluster vs single node part' })
    .option('floor', { type: 'boolean', default: false, describe: 'also run SET against bench/floor.ts, the least three Node processes do for a replicated write' })
    .strict()
    .parseAsync();
  const pipelines = argv.pipelines.split(',').map(Number);
  const tests = argv.tests.split(',');
  const version = (await run('redis-server', ['--version'])).stdout.trim();
  console.log(`# Distri-KV vs ${version}`);
  const keyspace = argv.keyspace > 0 ? ['-r', String(argv.keyspace)] : [];
  console.log(`# redis-benchmark -c ${argv.clients} -n ${argv.requests} -t ${tests.join(',')} -P <p> ${keyspace.join(' ')}, ${argv.runs} alternating runs each; medians`);
  console.log(`# machine: ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}, load average ${os.loadavg()[0]!.toFixed(2)} at start`);
  const bench = (ports: number | number[], p: number, clients = argv.clients) =>
    benchmark(ports, ['-c', String(clients), '-n', String(argv.requests), '-t', tests.join(','), '-P', String(p), ...keyspace]);

  if (argv.single) {
    const ours = await startOurs();
    const redis = await startRedis();
    try {
      const rows = await sideBySide(argv.runs, pipelines, (p) => bench(ours.port, p), (p) => bench(redis.port, p));
      printTable('Single node: distri-kv vs redis-server (ratio = ours / redis)', ['distri-kv', 'redis'], rows);
    } finally {
      await ours.stop();
      await redis.stop();
    }
  }
  if (argv.cluster) {
    const single = await startOurs();
    const cluster = await startOurCluster();
    try {
      const oneNode = await sideBySide(argv.runs, pipelines, (p) => bench(cluster.ports[0]!, p), (p) => bench(single.port, p));
      printTable('3-node cluster (N=3 R=2 W=2) through one node vs one single node (ratio = cluster / single)', ['cluster', 'single'], oneNode);
      // Spread: one redis-benchmark per node at once, the 50 clients split among them; rates add up.
      const per = Math.ceil(argv.clients / cluster.ports.length);
      const spread = await sideBySide(argv.runs, pipelines, (p) => bench(cluster.ports, p, per), (p) => bench(single.port, p));
      printTable('3-node cluster spread over all nodes vs one single node (ratio = cluster / single)', ['cluster', 'single'], spread);
    } finally {
      await single.stop();
      await cluster.stop();
    }
  }
  if (argv.floor) {
    // What this machine allows three Node processes replicating a SET, next to the same single node.
    const single = await startOurs();
    const floor = await startFloor();
    const setOnly = (port: number, p: number) =>
      benchmark(port, ['-c', String(argv.clients), '-n', String(argv.requests), '-t', 'set', '-P', String(p), ...keyspace]);
    try {
      const rows = await sideBySide(argv.runs, pipelines, (p) => setOnly(floor.port, p), (p) => setOnly(single.port, p));
      printTable('Floor: 3 bare Node processes replicating SET (bench/floor.ts) vs one single node (ratio = floor / single)', ['floor', 'single'], rows);
    } finally {
      await single.stop();
      await floor.stop();
    }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
