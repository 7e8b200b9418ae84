// A node's configuration: every setting is declared once in `settings` below
// with its type, default and help text. Values come from (highest first) the
// command line, DISTRI_KV_* environment variables, a YAML file, and the
// defaults; they are validated once at start, and a bad value is reported
// with the setting's name and what it accepts.

import * as fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import * as C from './constants.js';

export type FsyncPolicy = 'always' | 'everysec' | 'no';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  nodeId: string | undefined;
  host: string;
  port: number;
  dataDir: string;
  adminPort: number;
  fsync: FsyncPolicy;
  requirepass: string | undefined;
  cacheBytes: number;
  segmentBytesMax: number;
  compressBytesMin: number;
  compressLevel: number;
  compaction: boolean;
  compactionMinDeadPercent: number;
  compactionRateMb: number;
  tombstoneGraceSeconds: number;
  bulkBytesMax: number;
  queryBufferBytesMax: number;
  clientsMax: number;
  logLevel: LogLevel;
  logFormat: 'json' | 'pretty';
  clusterEnabled: boolean;
  clusterPort: number;
  clusterSecret: string | undefined;
  seeds: string[];
  replicas: number;
  readQuorum: number;
  writeQuorum: number;
  vnodes: number;
  weight: number;
  datacenter: string;
  rack: string;
  gossipIntervalMs: number;
  requestTimeoutMs: number;
}

type Kind =
  | { type: 'string' }
  | { type: 'bool' }
  | { type: 'list' }
  | { type: 'port' }
  | { type: 'int'; min: number; max: number }
  | { type: 'bytes'; min: number; max: number }
  | { type: 'enum'; values: readonly string[] };

export interface Setting {
  /** Name in code (camelCase); the flag and YAML key are its kebab-case form. */
  key: keyof Config;
  kind: Kind;
  default: unknown;
  help: string;
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const settings: readonly Setting[] = [
  { key: 'nodeId', kind: { type: 'string' }, default: undefined, help: 'node id (default: generated once, kept in the data directory)' },
  { key: 'host', kind: { type: 'string' }, default: C.hostDefault, help: 'address to listen on for clients' },
  { key: 'port', kind: { type: 'port' }, default: C.portDefault, help: 'client (RESP) port' },
  { key: 'dataDir', kind: { type: 'string' }, default: C.dataDirDefault, help: 'directory of the segment store' },
  { key: 'adminPort', kind: { type: 'port' }, default: C.adminPortDefault, help: 'HTTP admin sidecar port; 0 turns it off' },
  { key: 'fsync', kind: { type: 'enum', values: ['always', 'everysec', 'no'] }, default: 'everysec', help: 'when writes are fsynced (as Redis appendfsync)' },
  { key: 'requirepass', kind: { type: 'string' }, default: undefined, help: 'password clients must AUTH with' },
  { key: 'cacheBytes', kind: { type: 'bytes', min: 0, max: 2 ** 45 }, default: C.cacheBytesDefault, help: 'budget of the hot value cache (e.g. 256mb)' },
  // At most 4 GiB - 1: the index and hint files keep record offsets as u32.
  { key: 'segmentBytesMax', kind: { type: 'bytes', min: 4 * C.KiB, max: C.segmentBytesLimit }, default: C.segmentBytesMaxDefault, help: 'rotate the active segment at this size (at most 4 GiB - 1)' },
  { key: 'compressBytesMin', kind: { type: 'bytes', min: 0, max: C.valueBytesMax }, default: C.compressBytesMinDefault, help: 'compress values larger than this with zstd' },
  { key: 'compressLevel', kind: { type: 'int', min: 1, max: 19 }, default: C.compressLevelDefault, help: 'zstd level for values' },
  { key: 'compaction', kind: { type: 'bool' }, default: true, help: 'compact in the background (no: only BGREWRITEAOF compacts)' },
  { key: 'compactionMinDeadPercent', kind: { type: 'int', min: 1, max: 100 }, default: Math.round(C.compactionMinDeadRatioDefault * 100), help: 'compact sealed segments with at least this % of dead bytes' },
  { key: 'compactionRateMb', kind: { type: 'int', min: 0, max: 1_000_000 }, default: C.compactionRateMBDefault, help: 'compaction I/O budget in MiB/s, read plus written (0 = unthrottled)' },
  { key: 'tombstoneGraceSeconds', kind: { type: 'int', min: 0, max: 10 * 365 * 86400 }, default: C.tombstoneGraceSecondsDefault, help: 'keep deletes at least this long before compaction may drop them' },
  { key: 'bulkBytesMax', kind: { type: 'bytes', min: 1 * C.KiB, max: C.bulkBytesMaxDefault }, default: C.bulkBytesMaxDefault, help: 'largest bulk string a client may send (proto-max-bulk-len)' },
  { key: 'queryBufferBytesMax', kind: { type: 'bytes', min: 1 * C.MiB, max: 2 * C.queryBufferBytesMaxDefault }, default: C.queryBufferBytesMaxDefault, help: 'most bytes buffered for one client request' },
  { key: 'clientsMax', kind: { type: 'int', min: 1, max: 1_000_000 }, default: C.clientsMaxDefault, help: 'most client connections (maxclients)' },
  { key: 'logLevel', kind: { type: 'enum', values: logLevels }, default: 'info', help: 'log level' },
  { key: 'logFormat', kind: { type: 'enum', values: ['json', 'pretty'] }, default: 'json', help: 'log format' },
  { key: 'clusterEnabled', kind: { type: 'bool' }, default: false, help: 'run as a cluster member (implied by --seeds)' },
  { key: 'clusterPort', kind: { type: 'port' }, default: 0, help: 'peer port for other nodes (default: port + 10000)' },
  { key: 'clusterSecret', kind: { type: 'string' }, default: undefined, help: 'shared secret peers must prove; without it the peer port binds to loopback only' },
  { key: 'seeds', kind: { type: 'list' }, default: [], help: 'nodes to join, host:port[@clusterport],... (client ports, as CLUSTER MEET)' },
  { key: 'replicas', kind: { type: 'int', min: 1, max: 16 }, default: C.replicasDefault, help: 'N: copies of each key' },
  { key: 'readQuorum', kind: { type: 'int', min: 1, max: 16 }, default: 2, help: 'R: replicas that must answer a read' },
  { key: 'writeQuorum', kind: { type: 'int', min: 1, max: 16 }, default: 2, help: 'W: replicas that must acknowledge a write' },
  { key: 'vnodes', kind: { type: 'int', min: 1, max: 4096 }, default: C.vnodesPerWeightDefault, help: 'virtual nodes per unit of weight' },
  { key: 'weight', kind: { type: 'int', min: 1, max: C.memberWeightMax }, default: 1, help: 'relative capacity of this node' },
  { key: 'datacenter', kind: { type: 'string' }, default: 'dc1', help: 'datacenter name (gossiped; for placement later)' },
  { key: 'rack', kind: { type: 'string' }, default: 'rack1', help: 'rack name (gossiped; for placement later)' },
  { key: 'gossipIntervalMs', kind: { type: 'int', min: 10, max: 60000 }, default: C.gossipIntervalMsDefault, help: 'gossip round period (ms)' },
  { key: 'requestTimeoutMs', kind: { type: 'int', min: 10, max: 600000 }, default: C.peerRequestTimeoutMsDefault, help: 'timeout of a request to a peer (ms)' },
];

export const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const envName = (key: string): string => 'DISTRI_KV_' + kebab(key).replace(/-/g, '_').toUpperCase();

export class ConfigError extends Error {}

const byteUnits: Record<string, number> = { '': 1, b: 1, k: 1000, kb: C.KiB, m: 1e6, mb: C.MiB, g: 1e9, gb: C.KiB ** 3 };

/** Parses "1024", "64kb", "256mb", "1gb" as Redis does in its config (kb/mb/gb are powers of 1024). */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = byteUnits[m[2]!.toLowerCase()];
  return unit === undefined ? undefined : Number(m[1]) * unit;
}

/** Converts one raw value (from a flag, env or YAML) into the setting's type, or throws a ConfigError naming it. */
export function coerce(setting: Setting, raw: unknown, source: string): unknown {
  const name = `${kebab(setting.key)} (from ${source})`;
  const kind = setting.kind;
  const text =
    typeof raw === 'string' ? raw
    : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw)
    : Array.isArray(raw) && kind.type === 'list' ? raw.join(',')
    : undefined;
  if (text === undefined) throw new ConfigError(`${name}: expected a ${kind.type}, got ${JSON.stringify(raw)}`);
  switch (kind.type) {
    case 'string':
      return text;
    case 'bool':
      if (/^(yes|true|1|on)$/i.test(text)) return true;
      if (/^(no|false|0|off)$/i.test(text)) return false;
      throw new ConfigError(`${name}: expected yes or no, got '${text}'`);
    case 'list':
      return text.split(',').map((x) => x.trim()).filter((x) => x !== '');
    case 'port': {
      const n = /^\d+$/.test(text) ? Number(text) : NaN;
      if (!(n >= 0 && n <= 65535)) throw new ConfigError(`${name}: expected a port number 0-65535, got '${text}'`);
      return n;
    }
    case 'int': {
      const n = /^-?\d+$/.test(text) ? Number(text) : NaN;
      if (!(n >= kind.min && n <= kind.max)) {
        throw new ConfigError(`${name}: expected an integer from ${kind.min} to ${kind.max}, got '${text}'`);
      }
      return n;
    }
    case 'bytes': {
      const n = parseBytes(text);
      if (n === undefined || n < kind.min || n > kind.max) {
        throw new ConfigError(
          `${name}: expected a size from ${kind.min} to ${kind.max} bytes (units b, kb, mb, gb allowed), got '${text}'`,
        );
      }
      return n;
    }
    case 'enum':
      if (!kind.values.includes(text)) {
        throw new ConfigError(`${name}: expected one of ${kind.values.join(', ')}, got '${text}'`);
      }
      return text;
  }
}

/** Reads a YAML config file into raw values keyed by setting key; unknown keys are errors. */
export function readConfigFile(file: string): Map<keyof Config, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file}: not valid YAML: ${(err as Error).message}`);
  }
  const out = new Map<keyof Config, unknown>();
  if (doc === null || doc === undefined) return out;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${file}: expected a mapping of settings`);
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const setting = settings.find((s) => kebab(s.key) === k || s.key === k);
    if (!setting) {
      throw new ConfigError(`config file ${file}: unknown setting '${k}'; known settings: ${settings.map((s) => kebab(s.key)).join(', ')}`);
    }
    out.set(setting.key, v);
  }
  return out;
}

/**
 * Builds the config: flags (already parsed by yargs, camelCase keys, only those
 * given) > environment > file > defaults. Throws ConfigError on any bad value.
 */
export function loadConfig(flags: Partial<Record<keyof Config, unknown>>, env: NodeJS.ProcessEnv, file?: string): Config {
  const fromFile = file ? readConfigFile(file) : new Map<keyof Config, unknown>();
  const config: Record<string, unknown> = {};
  for (const s of settings) {
    let value = s.default;
    if (fromFile.has(s.key)) value = coerce(s, fromFile.get(s.key), `config file ${file}`);
    const e = env[envName(s.key)];
    if (e !== undefined && e !== '') value = coerce(s, e, `environment ${envName(s.key)}`);
    const f = flags[s.key];
    if (f !== undefined) value = coerce(s, f, `--${kebab(s.key)}`);
    config[s.key] = value;
  }
  const c = config as unknown as Config;
  // Checks that span settings.
  if (c.seeds.length > 0) c.clusterEnabled = true;
  for (const seed of c.seeds) {
    if (parseSeed(seed) === undefined) throw new ConfigError(`seeds: '${seed}' is not host:port or host:port@clusterport`);
  }
  if (c.readQuorum > c.replicas || c.writeQuorum > c.replicas) {
    throw new ConfigError(`read-quorum (${c.readQuorum}) and write-quorum (${c.writeQuorum}) must each be between 1 and replicas (${c.replicas})`);
  }
  if (c.nodeId !== undefined && !/^[0-9a-f]{40}$/.test(c.nodeId)) {
    throw new ConfigError(`node-id: expected 40 lowercase hex characters (like a Redis Cluster node id), got '${c.nodeId}'`);
  }
  if (c.clusterPort === 0) c.clusterPort = c.port === 0 ? 0 : c.port + 10000;
  if (c.clusterPort > 65535) throw new ConfigError(`cluster-port: port + 10000 = ${c.clusterPort} is not a port; set --cluster-port`);
  return c;
}

/** "host:port" or "host:port@clusterport" (client port, as CLUSTER MEET; the peer port defaults to port + 10000). */
export function parseSeed(text: string): { host: string; port: number; clusterPort: number } | undefined {
  const m = /^(.+):(\d{1,5})(?:@(\d{1,5}))?$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  const clusterPort = m[3] ? Number(m[3]) : port + 10000;
  if (port < 1 || port > 65535 || clusterPort < 1 || clusterPort > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port, clusterPort };
}
