// The client-facing server: accepts RESP connections, looks commands up in the
// table, checks arity, authentication and loading state once for every
// command, runs the handler and keeps the statistics INFO reports.

import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ErrorReply, type ParserLimits, type Reply } from '../../protocol/resp.js';
import type { Config } from '../config.js';
import * as C from '../constants.js';
import type { KeyValue } from '../kv/keyvalue.js';
import type { ClusterMember } from '../cluster-member.js';
import type { Logger } from '../log.js';
import { Client } from './client.js';
import type { Session } from './session.js';
import { type CommandSpec, arityOk } from './command.js';
import { commandTable } from './commands/index.js';
import { Err, diskWriteFailed, unknownCommand, unknownSubcommand, wrongArity } from './errors.js';

/** Thrown by handlers deep in a helper to answer with an error reply. */
export class CommandError extends Error {
  constructor(readonly reply: ErrorReply) {
    super(reply.message);
  }
}

export interface CommandStats {
  calls: number;
  usec: number;
  failedCalls: number;
  rejectedCalls: number;
}

/** Facts about the storage shown by INFO; provided by the node that owns the store. */
export interface StorageInfo {
  stats(): Record<string, unknown>;
  loadingProgress(): { bytesDone: number; bytesTotal: number; startedAtMs: number } | undefined;
  /** Starts a full compaction (BGREWRITEAOF); false if one is already running. */
  compactInBackground?(): boolean;
}

export class Server {
  readonly commands: ReadonlyMap<string, CommandSpec>;
  /** Names of up to 6 bytes, as numbers (see lookup). */
  private readonly shortNames = new Map<number, CommandSpec>();
  /** When the command being dispatched started, for INFO commandstats. */
  private clockMark = 0;
  readonly clients = new Map<number, Client>();
  readonly commandStats = new Map<string, CommandStats>();
  readonly stats = {
    connectionsReceived: 0,
    commandsProcessed: 0,
    rejectedConnections: 0,
    keyspaceHits: 0,
    keyspaceMisses: 0,
    protocolErrors: 0,
    errorReplies: 0,
    /** Plain SETs answered by a later SET of the same key on their connection (see client.ts). */
    setsAbsorbed: 0,
  };
  readonly startedAtMs = Date.now();
  /** Undefined while the dataset loads: commands without the 'loading' flag answer -LOADING. */
  kv: KeyValue | undefined;
  storage: StorageInfo | undefined;
  /** Set when the node is a cluster member: routing, CLUSTER commands. */
  cluster: ClusterMember | undefined;
  private nextClientId = 1;
  private readonly netServer: net.Server;

  constructor(
    /** The node's settings; CONFIG SET changes the ones marked mutable in place. */
    readonly config: Config,
    readonly nodeId: string,
    readonly log: Logger,
  ) {
    this.commands = commandTable();
    for (const spec of this.commands.values()) {
      const n = spec.name.length;
      if (n > 6) continue;
      let code = 0;
      for (let i = 0; i < n; i++) code = code * 256 + spec.name.toUpperCase().charCodeAt(i);
      this.shortNames.set(code * 8 + n, spec);
    }
    this.netServer = net.createServer((socket) => this.accept(socket));
    this.netServer.on('error', (err) => log.error({ err }, 'client listener error'));
  }

  get loading(): boolean {
    return this.kv === undefined;
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.netServer.once('error', reject);
      this.netServer.listen({ host, port, backlog: 511 }, () => {
        this.netServer.off('error', reject);
        resolve(this.netServer.address() as net.AddressInfo);
      });
    });
  }

  /**
   * Stops accepting, lets replies waiting on durability go out, then ends
   * every client connection (destroying those that do not end in time).
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.netServer.close(() => resolve()));
    await new Promise<void>((resolve) => this.whenDurable(() => resolve()));
    for (const c of this.clients.values()) c.socket.end();
    const force = setTimeout(() => {
      for (const c of this.clients.values()) c.socket.destroy();
    }, C.clientsCloseGraceMs);
    await closed;
    clearTimeout(force);
  }

  private accept(socket: net.Socket): void {
    this.stats.connectionsReceived++;
    if (this.clients.size >= this.config.clientsMax) {
      this.stats.rejectedConnections++;
      socket.on('error', () => {});
      socket.end(`-${Err.maxClients.message}\r\n`);
      return;
    }
    const client = new Client(this, socket, this.nextClientId++);
    this.clients.set(client.id, client);
  }

  onClientClosed(client: Client): void {
    this.clients.delete(client.id);
  }

  /**
   * A client parser's limits. The configurable ones are read live, so CONFIG SET
   * proto-max-bulk-len / client-query-buffer-limit apply to open connections too.
   * The unauthenticated limits are always given: a client created before CONFIG
   * SET requirepass becomes unauthenticated by RESET, and its parser needs them.
   * One object for every client: each literal with getters has a hidden class
   * of its own, and fifty of them made every limit check on the request path
   * a megamorphic property load.
   */
  parserLimits(): ParserLimits {
    return (this.#parserLimits ??= this.#liveParserLimits());
  }

  #parserLimits: ParserLimits | null = null;

  #liveParserLimits(): ParserLimits {
    const config = this.config;
    return {
      get bulkBytesMax() {
        return config.bulkBytesMax;
      },
      argsMax: C.multibulkArgsMax,
      inlineBytesMax: C.inlineBytesMax,
      get queryBufferBytesMax() {
        return config.queryBufferBytesMax;
      },
      unauthenticated: { argsMax: C.unauthArgsMax, bulkBytesMax: C.unauthBulkBytesMax },
    };
  }

  /**
   * The command named by the first argument, ignoring case. Names of up to six
   * bytes (GET, SET, INCR, MGET...) are found by a number folded from their
   * upper-cased bytes, which costs no string and no string hash on the hot path.
   */
  /** Starts the timing of a run of commands (a client calls it when its input arrives). */
  markClock(): void {
    this.clockMark = performance.now();
  }

  lookup(name: Buffer): CommandSpec | undefined {
    const n = name.length;
    if (n <= 6) {
      let code = 0;
      for (let i = 0; i < n; i++) {
        let b = name[i]!;
        if (b >= 97 && b <= 122) b -= 32;
        code = code * 256 + b;
      }
      return this.shortNames.get(code * 8 + n);
    }
    if (n > 64) return undefined;
    const s = name.toString('latin1');
    return this.commands.get(s) ?? this.commands.get(s.toLowerCase());
  }

  /** Runs one command for a client: the checks every command shares, then its handler. */
  dispatch(client: Session, spec: CommandSpec | undefined, args: Buffer[]): Reply | Promise<Reply> {
    this.stats.commandsProcessed++;
    if (spec === undefined) {
      this.stats.errorReplies++;
      return unknownCommand(args);
    }
    if (spec.subcommands !== undefined && args.length >= 2) {
      const full = `${spec.name}|${args[1]!.toString('latin1').toLowerCase()}`;
      const sub = spec.subcommands.find((s) => s.name === full);
      if (sub === undefined) {
        this.stats.errorReplies++;
        return unknownSubcommand(args[1]!, spec.name);
      }
      spec = sub;
    }
    if (!arityOk(spec.arity, args.length)) return this.reject(spec, wrongArity(spec.name));
    if (!client.authenticated && !spec.flags.includes('noauth')) return this.reject(spec, Err.noAuth);
    if (this.kv === undefined && !spec.flags.includes('loading')) return this.reject(spec, Err.loading);
    client.lastCommand = spec.name;
    const stats = this.statsOf(spec.name);
    stats.calls++;
    const t0 = this.clockMark;
    let reply: Reply | Promise<Reply>;
    try {
      const routed = this.cluster !== undefined && spec.routed?.(args) ? this.cluster.route(client, spec, args) : undefined;
      reply = routed ?? spec.handler(client, args);
    } catch (err) {
      reply = this.errorReply(err);
    }
    if (reply instanceof Promise) {
      return reply.then(
        (r) => this.finish(stats, t0, r),
        (err: unknown) => this.finish(stats, t0, this.errorReply(err)),
      );
    }
    return this.finish(stats, t0, reply);
  }

  /** A SET a client absorbed into a later one (see client.ts): counted as a call, as if it had run. */
  countAbsorbed(spec: CommandSpec): void {
    this.stats.commandsProcessed++;
    this.stats.setsAbsorbed++;
    this.statsOf(spec.name).calls++;
  }

  private finish(stats: CommandStats, t0: number, reply: Reply): Reply {
    // One clock read per command: its end is the next command's start (see markClock).
    const t1 = performance.now();
    stats.usec += (t1 - t0) * 1000;
    this.clockMark = t1;
    if (reply instanceof ErrorReply) {
      stats.failedCalls++;
      this.stats.errorReplies++;
    }
    return reply;
  }

  private reject(spec: CommandSpec, reply: ErrorReply): ErrorReply {
    this.statsOf(spec.name).rejectedCalls++;
    this.stats.errorReplies++;
    return reply;
  }

  private statsOf(name: string): CommandStats {
    let s = this.commandStats.get(name);
    if (s === undefined) {
      s = { calls: 0, usec: 0, failedCalls: 0, rejectedCalls: 0 };
      this.commandStats.set(name, s);
    }
    return s;
  }

  /** Maps an exception from a handler or the store to the reply a client gets. */
  errorReply(err: unknown): ErrorReply {
    if (err instanceof CommandError) return err.reply;
    if (err instanceof ErrorReply) return err;
    const e = err as Error & { code?: string };
    switch (e?.name) {
      case 'QuorumError':
      case 'NoOwnerError':
      case 'PeerReplyError':
        // Their messages start with the error code clients act on (TRYAGAIN, CLUSTERDOWN, ...).
        return new ErrorReply(e.message);
      case 'PeerError':
        return new ErrorReply(`TRYAGAIN peer request failed: ${e.message}`);
      case 'StorageWriteError':
        return diskWriteFailed(e.message);
      case 'StorageLimitError':
        return new ErrorReply(`ERR ${e.message}`);
      case 'StorageCorruptError':
        this.log.error({ err: e }, 'corrupt record read');
        return new ErrorReply(`ERR data corruption detected: ${e.message}`);
    }
    this.log.error({ err: e }, 'command failed');
    return new ErrorReply(`ERR internal error: ${e?.message ?? String(err)}`);
  }

  /** See KeyValue.writesResolveDurable. */
  get writesResolveDurable(): boolean {
    return this.kv?.writesResolveDurable === true;
  }

  whenDurable(cb: (err: Error | null) => void): void {
    if (this.kv === undefined) cb(null);
    else this.kv.whenDurable(cb);
  }
}
