#!/usr/bin/env node
// The `distri-kv` command: `distri-kv [start]` runs one node. Flags are
// generated from the settings table in config.ts, so every setting is a flag,
// an environment variable and a config file key by construction.

import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, type Config, envName, kebab, loadConfig, settings } from './config.js';
import * as C from './constants.js';
import { startNode } from './node.js';

function withSettings(y: Argv): Argv {
  let out = y.option('config', { type: 'string', describe: 'YAML config file', normalize: true });
  for (const s of settings) {
    out = out.option(kebab(s.key), {
      type: 'string',
      describe: `${s.help} [env ${envName(s.key)}]${s.default !== undefined ? ` (default: ${s.default})` : ''}`,
    });
  }
  return out;
}

/** Flags given on the command line, keyed by setting key; absent ones stay absent. */
function flagsOf(argv: Record<string, unknown>): Partial<Record<keyof Config, unknown>> {
  const flags: Partial<Record<keyof Config, unknown>> = {};
  for (const s of settings) {
    const v = argv[kebab(s.key)];
    if (v !== undefined) flags[s.key] = v;
  }
  return flags;
}

async function start(argv: Record<string, unknown>): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(flagsOf(argv), process.env, argv.config as string | undefined);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`distri-kv: invalid configuration: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  let node: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    node = await startNode(config);
    // A bug that leaves a promise rejected must not take the node (and every client) down with it.
    process.on('unhandledRejection', (err) => node?.server.log.error({ err }, 'unhandled promise rejection (bug); the node keeps running'));
  } catch (err) {
    process.stderr.write(`distri-kv: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  node.ready.catch((err: Error) => {
    process.stderr.write(`distri-kv: cannot load the data directory: ${err.message}\n`);
    process.exit(1);
  });
  const stop = (signal: string): void => {
    const force = setTimeout(() => {
      process.stderr.write(`distri-kv: shutdown took over ${C.shutdownGraceMs} ms; exiting\n`);
      process.exit(1);
    }, C.shutdownGraceMs);
    force.unref();
    node.close().then(
      () => process.exit(0),
      (err: Error) => {
        process.stderr.write(`distri-kv: error during shutdown (${signal}): ${err.message}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/**
 * `distri-kv cluster --nodes 3`: a local cluster of child processes on
 * consecutive ports, each with its own data directory, all stopped on Ctrl-C.
 */
async function cluster(argv: { nodes: number; basePort: number; dataDir: string; replicas?: number; _: unknown[] }): Promise<void> {
  const extra = (argv._ as string[]).slice(1).map(String);
  const children: ChildProcess[] = [];
  const first = `127.0.0.1:${argv.basePort}`;
  for (let i = 0; i < argv.nodes; i++) {
    const port = argv.basePort + i;
    const args = [
      process.argv[1]!, 'start', '--port', String(port), '--data-dir', path.join(argv.dataDir, `node-${i + 1}`),
      '--admin-port', String(port + 1000), '--cluster-enabled', 'yes', '--log-format', 'json',
      ...(i > 0 ? ['--seeds', first] : []),
      ...(argv.replicas ? ['--replicas', String(argv.replicas)] : []),
      ...extra,
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => {
      process.stderr.write(`distri-kv cluster: node ${i + 1} (port ${port}) exited with ${code ?? signal}\n`);
    });
    children.push(child);
  }
  const ports = children.map((_, i) => argv.basePort + i);
  process.stdout.write(
    `Distri-KV cluster of ${argv.nodes} nodes on ports ${ports.join(', ')} (admin HTTP on ${ports.map((p) => p + 1000).join(', ')}).\n` +
      `Connect with any Redis client to any node, e.g.:\n  redis-cli -p ${argv.basePort}\n  redis-cli -c -p ${ports[ports.length - 1]} CLUSTER NODES\n` +
      `Data in ${path.resolve(argv.dataDir)}. Ctrl-C stops every node.\n`,
  );
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  process.exit(0);
}

await yargs(hideBin(process.argv))
  .scriptName('distri-kv')
  // A flag given twice takes its last value (as most CLIs), so wrappers can override flags by appending.
  .parserConfiguration({ 'duplicate-arguments-array': false })
  .command(['start', '$0'], 'run a node', withSettings, (argv) => start(argv as Record<string, unknown>))
  .command(
    'cluster',
    'run a local cluster of child processes (extra node flags after --)',
    (y) =>
      y
        .option('nodes', { type: 'number', default: 3, describe: 'how many nodes' })
        .option('base-port', { type: 'number', default: 7001, describe: 'client port of the first node; the others follow' })
        .option('data-dir', { type: 'string', default: './data/cluster', describe: 'parent of the nodes\' data directories' })
        .option('replicas', { type: 'number', describe: 'N (default 3)' }),
    (argv) => cluster(argv as unknown as Parameters<typeof cluster>[0]),
  )
  .strict()
  .help()
  .parseAsync();
