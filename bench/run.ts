// `npm run bench`: Distri-KV and a real redis-server side by side in one run.
// Both persist the same way (an append-only log fsynced every second); the
// same redis-benchmark command is run against each, alternating, and the
// medians and the ratio ours/Redis are printed.
//
//   node dist/bench/run.js [--runs 3] [--requests 200000] [--clients 50] [--pipelines 1,16] [--tests set,get]

import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { freePort, run, startNode, tempDir } from '../test/e2e/harness.js';

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

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('runs', { type: 'number', default: 3 })
    .option('requests', { type: 'number', default: 200000 })
    .option('clients', { type: 'number', default: 50 })
    .option('pipelines', { type: 'string', default: '1,16' })
    .option('tests', { type: 'string', default: 'set,get' })
    .strict()
    .parseAsync();
  const pipelines = argv.pipelines.split(',').map(Number);
  const tests = argv.tests.split(',');
  const version = (await run('redis-server', ['--version'])).stdout.trim();
  console.log(`# Distri-KV vs ${version}`);
  console.log(`# redis-benchmark -c ${argv.clients} -n ${argv.requests} -t ${tests.join(',')} -P <p>, ${argv.runs} alternating runs each; medians`);
  const ours = await startOurs();
  const redis = await startRedis();
  const samples = new Map<string, { ours: Sample[]; redis: Sample[] }>();
  try {
    for (const p of pipelines) {
      for (let i = 0; i < argv.runs; i++) {
        for (const target of i % 2 === 0 ? [ours, redis] : [redis, ours]) {
          const res = await benchmark(target.port, ['-c', String(argv.clients), '-n', String(argv.requests), '-t', tests.join(','), '-P', String(p)]);
          for (const [test, s] of res) {
            const key = `${test} P${p}`;
            if (!samples.has(key)) samples.set(key, { ours: [], redis: [] });
            samples.get(key)![target === ours ? 'ours' : 'redis'].push(s);
          }
        }
      }
    }
  } finally {
    await ours.stop();
    await redis.stop();
  }
  console.log('');
  console.log('| test | distri-kv ops/s | redis ops/s | ratio | distri-kv p50/p99 ms | redis p50/p99 ms |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [key, s] of samples) {
    const o = median(s.ours.map((x) => x.rps));
    const r = median(s.redis.map((x) => x.rps));
    const lat = (xs: Sample[]) => `${median(xs.map((x) => x.p50)).toFixed(3)} / ${median(xs.map((x) => x.p99)).toFixed(3)}`;
    console.log(`| ${key} | ${fmt(o)} | ${fmt(r)} | ${(o / r).toFixed(2)} | ${lat(s.ours)} | ${lat(s.redis)} |`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
