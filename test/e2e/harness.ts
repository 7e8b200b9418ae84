// Starts real Distri-KV nodes as child processes, the way `npm start` does
// (node dist/src/cli.js start ...), each with its own temporary data
// directory, and reads their JSON logs to learn when they serve.

import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Repository root (this file runs from dist/test/e2e). */
export const root = path.resolve(here, '../../..');
export const cliPath = path.join(root, 'dist/src/cli.js');

export interface NodeProcess {
  proc: ChildProcess;
  port: number;
  adminPort: number;
  dataDir: string;
  /** The peer port, for cluster members started by startCluster. */
  clusterPort?: number;
  /** Every log line the node printed, parsed. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

const madeDirs: string[] = [];
// Temporary data directories go when the test process ends (nodes are gone by then).
process.on('exit', () => {
  for (const d of madeDirs) fs.rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'dkv-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/** A port nobody listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  dataDir?: string;
  /** Client port (default: a free one). */
  port?: number;
  /** Wait for "serving" (default) or only for "listening". */
  waitFor?: 'serving' | 'listening';
  timeoutMs?: number;
}

/**
 * startNode; a port chosen by freePort can be taken by another test process
 * before the node binds it, so such a start is retried on fresh ports.
 */
export async function startNode(opts: StartOptions = {}): Promise<NodeProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNodeOnce(opts);
    } catch (e) {
      if (opts.port !== undefined || attempt >= 3 || !/EADDRINUSE/.test((e as Error).message)) throw e;
    }
  }
}

async function startNodeOnce(opts: StartOptions): Promise<NodeProcess> {
  const dataDir = opts.dataDir ?? tempDir();
  const port = opts.port ?? (await freePort());
  const adminPort = await freePort();
  const args = [cliPath, 'start', '--port', String(port), '--admin-port', String(adminPort), '--data-dir', dataDir, ...(opts.args ?? [])];
  // DKV_NODE_FLAGS: extra flags for the node processes' `node` (e.g. --cpu-prof), for profiling a run.
  const nodeFlags = (process.env.DKV_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  const proc = spawn(process.execPath, [...nodeFlags, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const want = (opts.waitFor ?? 'serving') === 'serving' ? 'data loaded; serving' : 'listening; loading data';
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in time; stderr:\n${stderr}`)), opts.timeoutMs ?? 20000);
    let pending = '';
    proc.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === want) {
            clearTimeout(timer);
            resolve();
          }
        } catch {
          /* not a log line */
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before starting; stderr:\n${stderr}`));
    });
  });
  return {
    proc,
    port,
    adminPort,
    dataDir,
    logs,
    exited,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Runs a command to completion, collecting its output. */
export function run(cmd: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out; stdout: ${stdout.slice(-2000)} stderr: ${stderr.slice(-2000)}`));
    }, opts.timeoutMs ?? 60000);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) p.stdin.end(opts.input);
    else p.stdin.end();
  });
}

/** Sends raw bytes and collects what comes back until `until` matches or the socket closes. */
export function rawExchange(port: number, bytes: Buffer | string, until?: (got: string) => boolean, timeoutMs = 5000): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data, closed });
    };
    const timer = setTimeout(() => (until ? reject(new Error(`timeout; got ${JSON.stringify(data)}`)) : finish(false)), timeoutMs);
    sock.on('data', (d) => {
      data += d.toString('latin1');
      if (until?.(data)) finish(false);
    });
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.write(bytes);
  });
}

export interface ClusterOptions {
  /** Flags for every node (e.g. --replicas 3). */
  args?: string[];
  /** Flags for node i only. */
  argsFor?: (i: number) => string[];
  /** Wait until every node sees this many members up (default: all). */
  waitUp?: number;
}

/** The RESP reply of one command, via redis-cli (raw output). */
export async function cli(port: number, ...args: string[]): Promise<string> {
  const r = await run('redis-cli', ['-p', String(port), ...args]);
  return r.stdout.trim();
}

/** Polls `check` until it returns true or the deadline passes. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 15000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function clusterUp(port: number): Promise<number> {
  return cli(port, 'CLUSTER', 'INFO').then((info) => Number(/cluster_nodes_up:(\d+)/.exec(info)?.[1] ?? 0));
}

/** Starts n cluster members on loopback, each seeded with the first, and waits until they all see each other. */
export async function startCluster(n: number, opts: ClusterOptions = {}): Promise<NodeProcess[]> {
  const nodes: NodeProcess[] = [];
  for (let i = 0; i < n; i++) {
    const clusterPort = await freePort();
    const seeds = i === 0 ? [] : ['--seeds', `127.0.0.1:${nodes[0]!.port}@${nodes[0]!.clusterPort}`];
    const node = await startNode({
      args: ['--cluster-enabled', 'yes', '--cluster-port', String(clusterPort), ...seeds, ...(opts.args ?? []), ...(opts.argsFor?.(i) ?? [])],
    });
    node.clusterPort = clusterPort;
    nodes.push(node);
  }
  const want = opts.waitUp ?? n;
  await eventually(async () => (await Promise.all(nodes.map((x) => clusterUp(x.port)))).every((u) => u >= want), 20000, `${want} nodes up everywhere`);
  return nodes;
}

/** Restarts a stopped cluster node on its old ports and data directory. */
export async function restartNode(old: NodeProcess, args: string[]): Promise<NodeProcess> {
  const node = await startNode({ dataDir: old.dataDir, port: old.port, args: ['--cluster-enabled', 'yes', '--cluster-port', String(old.clusterPort), ...args] });
  node.clusterPort = old.clusterPort;
  return node;
}
