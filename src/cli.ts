#!/usr/bin/env node
// The `distri-kv` command: `distri-kv [start]` runs one node. Flags are
// generated from the settings table in config.ts, so every setting is a flag,
// an environment variable and a config file key by construction.

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
  let node;
  try {
    node = await startNode(config);
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

await yargs(hideBin(process.argv))
  .scriptName('distri-kv')
  .command(['start', '$0'], 'run a node', withSettings, (argv) => start(argv as Record<string, unknown>))
  .strict()
  .help()
  .parseAsync();
