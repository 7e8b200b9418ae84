// Server commands: INFO, COMMAND (generated from the command table), CONFIG,
// DBSIZE, TIME, FLUSHALL. INFO's field names are Redis' own, because clients
// and tools read them (ioredis reads loading:, redis-cli reads redis_version:).

import * as os from 'node:os';
import { BulkText, ErrorReply, MapReply, OK, type Reply, SetReply, VerbatimReply } from '../../../protocol/resp.js';
import { type Config, coerce, kebab, settings } from '../../config.js';
import { globMatch, isKeyword } from '../args.js';
import type { Session } from '../session.js';
import { type CommandSpec, command } from '../command.js';
import { Err } from '../errors.js';
import type { Server } from '../server.js';
import { redisVersionCompat } from './connection.js';

export const distriKvVersion = '0.1.0';

// --- INFO ---------------------------------------------------------------------

type Section = (s: Server) => Array<[string, string | number]>;

function human(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes}B` : `${v.toFixed(2)}${units[i]}`;
}

const sections: Record<string, Section> = {
  server: (s) => [
    ['redis_version', redisVersionCompat],
    ['distri_kv_version', distriKvVersion],
    ['redis_mode', s.cluster ? 'cluster' : 'standalone'],
    ['os', `${os.type()} ${os.release()} ${os.arch()}`],
    ['arch_bits', 64],
    ['process_id', process.pid],
    ['run_id', s.nodeId],
    ['node_id', s.nodeId],
    ['tcp_port', s.config.port],
    ['server_time_usec', Date.now() * 1000],
    ['uptime_in_seconds', Math.floor((Date.now() - s.startedAtMs) / 1000)],
    ['uptime_in_days', Math.floor((Date.now() - s.startedAtMs) / 86400000)],
    ['executable', process.argv[1] ?? ''],
    ['node_version', process.version],
  ],
  clients: (s) => [
    ['connected_clients', s.clients.size],
    ['maxclients', s.config.clientsMax],
    ['blocked_clients', 0],
    ['tracking_clients', 0],
  ],
  memory: (s) => {
    const m = process.memoryUsage();
    return [
      ['used_memory', m.heapUsed + m.external],
      ['used_memory_human', human(m.heapUsed + m.external)],
      ['used_memory_rss', m.rss],
      ['used_memory_rss_human', human(m.rss)],
      ['used_memory_peak', m.heapTotal + m.external],
      ['total_system_memory', os.totalmem()],
      ['maxmemory', 0],
      ['maxmemory_policy', 'noeviction'],
      ['cache_bytes_max', s.config.cacheBytes],
    ];
  },
  persistence: (s) => {
    const progress = s.storage?.loadingProgress();
    const rows: Array<[string, string | number]> = [
      ['loading', s.loading ? 1 : 0],
      ['async_loading', 0],
    ];
    if (s.loading && progress) {
      rows.push(
        ['loading_start_time', Math.floor(progress.startedAtMs / 1000)],
        ['loading_total_bytes', progress.bytesTotal],
        ['loading_loaded_bytes', progress.bytesDone],
        ['loading_loaded_perc', progress.bytesTotal ? ((100 * progress.bytesDone) / progress.bytesTotal).toFixed(2) : '0.00'],
      );
    }
    rows.push(['rdb_changes_since_last_save', 0], ['aof_enabled', 1], ['appendfsync', s.config.fsync]);
    if (s.storage && !s.loading) {
      // Compaction is our AOF rewrite: the Redis names first, for tools that watch them.
      const st = s.storage.stats() as { diskBytes?: number; liveBytes?: number; cacheHits?: number; cacheMisses?: number; compaction?: { running: boolean; compactions: number; inputBytesDone: number; inputBytesTotal: number } };
      const c = st.compaction;
      if (c && st.diskBytes !== undefined && st.liveBytes !== undefined) {
        const lookups = (st.cacheHits ?? 0) + (st.cacheMisses ?? 0);
        rows.push(
          ['aof_rewrite_in_progress', c.running ? 1 : 0],
          ['aof_rewrites', c.compactions],
          ['store_dead_bytes', Math.max(0, st.diskBytes - st.liveBytes)],
          ['store_compaction_progress_perc', c.running && c.inputBytesTotal ? ((100 * c.inputBytesDone) / c.inputBytesTotal).toFixed(2) : '0.00'],
          ['store_cache_hit_ratio', lookups ? ((st.cacheHits ?? 0) / lookups).toFixed(4) : '0.0000'],
        );
      }
      for (const [k, v] of Object.entries(s.storage.stats())) {
        if (typeof v === 'number' || typeof v === 'string') rows.push([`store_${snake(k)}`, v]);
        else if (v && typeof v === 'object') {
          for (const [k2, v2] of Object.entries(v)) {
            if (typeof v2 === 'number' || typeof v2 === 'string') rows.push([`store_${snake(k)}_${snake(k2)}`, v2]);
          }
        }
      }
    }
    return rows;
  },
  stats: (s) => [
    ['total_connections_received', s.stats.connectionsReceived],
    ['total_commands_processed', s.stats.commandsProcessed],
    ['rejected_connections', s.stats.rejectedConnections],
    ['keyspace_hits', s.stats.keyspaceHits],
    ['keyspace_misses', s.stats.keyspaceMisses],
    ['total_error_replies', s.stats.errorReplies],
    ['pipelined_sets_absorbed', s.stats.setsAbsorbed],
  ],
  replication: (s) => [
    // Every node accepts reads and writes for every key: to a Redis client each is a master.
    ['role', 'master'],
    ['connected_slaves', 0],
    ['master_failover_state', 'no-failover'],
    ['replicas_per_key', s.cluster ? s.cluster.ring.replicas : 1],
    ['read_quorum', s.cluster ? s.cluster.coordinator.levels.r : 1],
    ['write_quorum', s.cluster ? s.cluster.coordinator.levels.w : 1],
  ],
  cpu: () => {
    const u = process.cpuUsage();
    return [
      ['used_cpu_sys', (u.system / 1e6).toFixed(6)],
      ['used_cpu_user', (u.user / 1e6).toFixed(6)],
    ];
  },
  cluster: (s) => [
    ['cluster_enabled', s.cluster ? 1 : 0],
    ...(s.cluster
      ? ([
          ['cluster_known_nodes', s.cluster.membership.members().length],
          ['cluster_nodes_up', s.cluster.membership.members().filter((m) => s.cluster!.membership.isUp(m.id)).length],
          ['cluster_port', s.cluster.clusterPort],
        ] as Array<[string, number]>)
      : []),
  ],
  keyspace: (s) => {
    if (s.kv === undefined) return [];
    // A single node counts its keys at once; a cluster member reports the keys this node stores
    // (DBSIZE gives the cluster-wide figure, at the cost of asking every node).
    const n = s.cluster === undefined ? s.kv.size() : Number(s.storage?.stats().keys ?? 0);
    const keys = typeof n === 'number' ? n : 0;
    return keys > 0 ? [['db0', `keys=${keys},expires=0,avg_ttl=0`]] : [];
  },
  commandstats: (s) =>
    [...s.commandStats.entries()]
      .filter(([, st]) => st.calls + st.rejectedCalls > 0)
      .map(([name, st]) => [
        `cmdstat_${name}`,
        `calls=${st.calls},usec=${Math.round(st.usec)},usec_per_call=${st.calls ? (st.usec / st.calls).toFixed(2) : '0.00'},` +
          `rejected_calls=${st.rejectedCalls},failed_calls=${st.failedCalls}`,
      ]),
};

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

const defaultSections = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'cluster', 'keyspace'];
const titles: Record<string, string> = { commandstats: 'Commandstats', cpu: 'CPU' };

export function infoText(s: Server, wanted: string[]): string {
  let names = defaultSections;
  if (wanted.length > 0) {
    const set = new Set<string>();
    for (const w of wanted) {
      if (w === 'all' || w === 'everything') [...defaultSections, 'commandstats'].forEach((n) => set.add(n));
      else if (w === 'default') defaultSections.forEach((n) => set.add(n));
      else if (sections[w]) set.add(w);
    }
    names = [...set];
  }
  const parts: string[] = [];
  for (const name of names) {
    const title = titles[name] ?? name[0]!.toUpperCase() + name.slice(1);
    const rows = sections[name]!(s).map(([k, v]) => `${k}:${v}\r\n`);
    parts.push(`# ${title}\r\n${rows.join('')}`);
  }
  return parts.join('\r\n');
}

// --- COMMAND ------------------------------------------------------------------

function commandInfo(spec: CommandSpec): Reply {
  return [
    new BulkText(spec.name),
    spec.arity,
    new SetReply(spec.flags.map((f) => f)),
    spec.firstKey,
    spec.lastKey,
    spec.step,
    new SetReply(spec.acl.map((a) => '@' + a)),
    [],
    [],
    (spec.subcommands ?? []).map(commandInfo),
  ];
}

function commandDocs(spec: CommandSpec): MapReply {
  const entries: Array<[Reply, Reply]> = [
    [new BulkText('summary'), new BulkText(spec.summary)],
    [new BulkText('since'), new BulkText(spec.since)],
    [new BulkText('group'), new BulkText(spec.group)],
    [new BulkText('complexity'), new BulkText(spec.complexity)],
  ];
  if (spec.subcommands?.length) {
    entries.push([
      new BulkText('subcommands'),
      new MapReply(spec.subcommands.map((sub) => [new BulkText(sub.name), commandDocs(sub)])),
    ]);
  }
  return new MapReply(entries);
}

function topLevel(s: Server): CommandSpec[] {
  return [...new Set(s.commands.values())];
}

function findCommand(s: Server, name: Buffer): CommandSpec | undefined {
  const n = name.toString('latin1').toLowerCase();
  const [parent, sub] = n.split('|');
  const spec = s.commands.get(parent!);
  if (sub === undefined) return spec;
  return spec?.subcommands?.find((x) => x.name === n);
}

const commandSubcommands: CommandSpec[] = [
  command('command|count', 2, ['loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Returns a count of commands.', since: '2.8.13' }, (c) =>
    topLevel(c.server).length,
  ),
  command('command|info', -2, ['loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Returns information about one, multiple or all commands.', since: '2.8.13', complexity: 'O(N) where N is the number of commands to look up' }, (c, a) =>
    a.length === 2 ? topLevel(c.server).map(commandInfo) : a.slice(2).map((n) => {
      const spec = findCommand(c.server, n);
      return spec === undefined ? null : commandInfo(spec);
    }),
  ),
  command('command|docs', -2, ['loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Returns documentary information about one, multiple or all commands.', since: '7.0.0', complexity: 'O(N) where N is the number of commands to look up' }, (c, a) => {
    const specs = a.length === 2 ? topLevel(c.server) : a.slice(2).map((n) => findCommand(c.server, n)).filter((x) => x !== undefined);
    return new MapReply(specs.map((spec) => [new BulkText(spec!.name), commandDocs(spec!)]));
  }),
  command('command|list', -2, ['loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Returns a list of command names.', since: '7.0.0', complexity: 'O(N) where N is the total number of Redis commands' }, (c, a) => {
    let specs = topLevel(c.server);
    if (a.length > 2) {
      if (a.length !== 5 || !isKeyword(a[2]!, 'FILTERBY')) return Err.syntax;
      const what = a[4]!;
      if (isKeyword(a[3]!, 'PATTERN')) specs = specs.filter((s) => globMatch(what, Buffer.from(s.name), true));
      else if (isKeyword(a[3]!, 'ACLCAT')) specs = specs.filter((s) => s.acl.includes(what.toString('latin1').toLowerCase()));
      else if (isKeyword(a[3]!, 'MODULE')) specs = [];
      else return Err.syntax;
    }
    return specs.map((s) => new BulkText(s.name));
  }),
  command('command|help', 2, ['loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Returns helpful text about the different subcommands.', since: '5.0.0' }, () => [
    'COMMAND [<subcommand> [<arg> [value] [opt] ...]]. Subcommands are:',
    '(no subcommand)', '    Return details about all commands.',
    'COUNT', '    Return the total number of commands in this server.',
    'LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]', '    Return a list of all commands in this server.',
    'INFO [<command-name> ...]', '    Return details about multiple commands.',
    'DOCS [<command-name> ...]', '    Return documentation details about multiple commands.',
    'HELP', '    Print this help.',
  ]),
];

// --- CONFIG ---------------------------------------------------------------------

interface ConfigParam {
  get(s: Server): string;
  /** Applies a new value; absent for settings that need a restart. */
  set?(s: Server, value: string): void;
}

/** Settings of ours under their own kebab-case names, plus the Redis names tools ask for. */
function configParams(): Map<string, ConfigParam> {
  const params = new Map<string, ConfigParam>();
  const mutable = new Set<keyof Config>(['requirepass', 'bulkBytesMax', 'queryBufferBytesMax', 'clientsMax', 'logLevel']);
  for (const setting of settings) {
    const param: ConfigParam = { get: (s) => String(s.config[setting.key] ?? '') };
    // The cluster secret never leaves the node (peers prove it without sending it).
    if (setting.key === 'clusterSecret') param.get = (s) => (s.config.clusterSecret ? '(set)' : '');
    if (mutable.has(setting.key)) {
      param.set = (s, value) => {
        const v = setting.key === 'requirepass' && value === '' ? undefined : coerce(setting, value, 'CONFIG SET');
        (s.config as unknown as Record<string, unknown>)[setting.key] = v;
        if (setting.key === 'logLevel') s.log.level = value;
      };
    }
    params.set(kebab(setting.key), param);
  }
  const alias = (redisName: string, ours: string) => params.set(redisName, params.get(ours)!);
  alias('appendfsync', 'fsync');
  alias('bind', 'host');
  alias('dir', 'data-dir');
  alias('maxclients', 'clients-max');
  alias('proto-max-bulk-len', 'bulk-bytes-max');
  alias('client-query-buffer-limit', 'query-buffer-bytes-max');
  alias('loglevel', 'log-level');
  const fixed = (v: string): ConfigParam => ({ get: () => v });
  // What Redis tools ask about: our store is always an append-only log, with no snapshots.
  params.set('appendonly', fixed('yes'));
  params.set('save', fixed(''));
  params.set('databases', fixed('1'));
  params.set('timeout', fixed('0'));
  params.set('maxmemory', fixed('0'));
  params.set('maxmemory-policy', fixed('noeviction'));
  params.set('cluster-enabled', { get: (s) => (s.cluster ? 'yes' : 'no') });
  return params;
}

const params = configParams();

function configGet(c: Session, args: Buffer[]): Reply {
  const out = new Map<string, string>();
  for (const pattern of args.slice(2)) {
    for (const [name, p] of params) {
      if (!out.has(name) && globMatch(pattern, Buffer.from(name), true)) out.set(name, p.get(c.server));
    }
  }
  return new MapReply([...out].map(([k, v]) => [new BulkText(k), new BulkText(v)]));
}

function configSet(c: Session, args: Buffer[]): Reply {
  if (args.length % 2 !== 0) return new ErrorReply("ERR wrong number of arguments for 'config|set' command");
  // Validate every pair first so a bad one changes nothing, as Redis does.
  const changes: Array<[ConfigParam, string]> = [];
  for (let i = 2; i < args.length; i += 2) {
    const name = args[i]!.toString('latin1').toLowerCase();
    const p = params.get(name);
    if (p === undefined) return new ErrorReply(`ERR Unknown option or number of arguments for CONFIG SET - '${name}'`);
    if (p.set === undefined) {
      return new ErrorReply(`ERR CONFIG SET failed (possibly related to argument '${name}') - can't set immutable config`);
    }
    changes.push([p, args[i + 1]!.toString()]);
  }
  const before = changes.map(([p]) => p.get(c.server));
  try {
    for (const [p, v] of changes) p.set!(c.server, v);
  } catch (err) {
    changes.forEach(([p], i) => {
      try {
        p.set!(c.server, before[i]!);
      } catch {
        /* restoring a value that was valid cannot fail */
      }
    });
    return new ErrorReply(`ERR CONFIG SET failed - ${(err as Error).message}`);
  }
  return OK;
}

const configSubcommands: CommandSpec[] = [
  command('config|get', -3, ['admin', 'noscript', 'loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Returns the effective values of configuration parameters.', since: '2.0.0', complexity: 'O(N) when N is the number of configuration parameters provided' }, configGet),
  command('config|set', -4, ['admin', 'noscript', 'loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Sets configuration parameters in-flight.', since: '2.0.0', complexity: 'O(N) when N is the number of configuration parameters provided' }, configSet),
  command('config|resetstat', 2, ['admin', 'noscript', 'loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Resets the server\'s statistics.', since: '2.0.0' }, (c) => {
    const st = c.server.stats;
    for (const k of Object.keys(st) as Array<keyof typeof st>) st[k] = 0;
    c.server.commandStats.clear();
    return OK;
  }),
  command('config|help', 2, ['loading', 'stale'], [0, 0, 0], { group: 'server', summary: 'Returns helpful text about the different subcommands.', since: '5.0.0' }, () => [
    'CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
    'GET <pattern>', '    Return parameters matching the glob-like <pattern> and their values.',
    'SET <directive> <value>', '    Set the configuration <directive> to <value>.',
    'RESETSTAT', '    Reset statistics reported by the INFO command.',
    'HELP', '    Print this help.',
  ]),
];

function flush(c: Session, args: Buffer[]): Reply | Promise<Reply> {
  if (args.length > 2 || (args.length === 2 && !isKeyword(args[1]!, 'ASYNC') && !isKeyword(args[1]!, 'SYNC'))) return Err.syntax;
  return c.kv.flushAll().then(() => OK);
}

const V = { group: 'server' as const };

export const serverCommands: CommandSpec[] = [
  command('info', -1, ['loading', 'stale'], [0, 0, 0], { ...V, summary: 'Returns information and statistics about the server.', since: '1.0.0', complexity: 'O(1)' }, (c, a) =>
    new VerbatimReply(infoText(c.server, a.slice(1).map((x) => x.toString('latin1').toLowerCase()))),
  ),
  command('command', -1, ['loading', 'stale'], [0, 0, 0], { ...V, summary: 'Returns detailed information about all commands.', since: '2.8.13', complexity: 'O(N) where N is the total number of Redis commands' }, (c) =>
    topLevel(c.server).map(commandInfo),
    commandSubcommands,
  ),
  command('config', -2, [], [0, 0, 0], { ...V, summary: 'A container for server configuration commands.', since: '2.0.0', complexity: 'Depends on subcommand.' }, (_c, a) =>
    new ErrorReply(`ERR unknown subcommand '${a[1]?.toString('latin1')}'. Try CONFIG HELP.`),
    configSubcommands,
  ),
  command('bgrewriteaof', 1, ['admin', 'noscript'], [0, 0, 0], { ...V, summary: 'Compacts the segment store in the background (our append-only file rewrite).', since: '1.0.0' }, (c) => {
    const started = c.server.storage?.compactInBackground?.();
    if (started === undefined) return new ErrorReply('ERR the store is not open yet');
    return started ? 'Background append only file rewriting started' : new ErrorReply('ERR Background append only file rewriting already in progress');
  }),
  command('dbsize', 1, ['readonly', 'fast'], [0, 0, 0], { ...V, summary: 'Returns the number of keys in the database.', since: '1.0.0', acl: ['keyspace'] }, (c) => c.kv.size()),
  command('time', 1, ['loading', 'stale', 'fast'], [0, 0, 0], { ...V, summary: 'Returns the server time.', since: '2.6.0' }, () => {
    const us = BigInt(Date.now()) * 1000n + (process.hrtime.bigint() / 1000n) % 1000n;
    return [new BulkText(String(us / 1000000n)), new BulkText(String(us % 1000000n))];
  }),
  command('flushall', -1, ['write'], [0, 0, 0], { ...V, summary: 'Removes all keys from all databases.', since: '1.0.0', complexity: 'O(N) where N is the total number of keys in all databases', acl: ['keyspace', 'dangerous'] }, flush),
  command('flushdb', -1, ['write'], [0, 0, 0], { ...V, summary: 'Remove all keys from the current database.', since: '1.0.0', complexity: 'O(N) where N is the number of keys in the selected database', acl: ['keyspace', 'dangerous'] }, flush),
];
