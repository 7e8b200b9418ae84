// The node's real transport to other nodes (the cluster core's Transport port,
// src/cluster/ports.ts): a TCP server on the cluster port, one persistent
// connection dialed to each peer we talk to, requests multiplexed over it,
// reconnects with backoff, and per-peer stats for the CLUSTER commands.
//
// Connection choice: every node sends its requests on the connection IT
// dialed, and answers requests on the connections it accepted. So a pair of
// nodes that both talk has two connections, one per direction. That costs a
// socket but removes the "both dialed at once, which one survives" race and
// its in-flight migration, gives each connection one reconnecting owner, and
// makes read backpressure deadlock-free (src/peer/connection.ts).
//
// Failing fast: after a connect attempt fails or a connection drops, the peer
// is "unreachable" until a background reconnect (exponential backoff, full
// jitter) succeeds; requests meanwhile reject at once with UNREACHABLE, so a
// dead node costs callers nothing but the error. Only the very first connect
// to a peer queues requests (each still bounded by its own timeout).

import * as net from 'node:net';
import {
  type Batching,
  type CoordinateWaiter,
  coordinateBatching,
  type PeerAddress,
  type PeerHandler,
  type ReadWaiter,
  readBatching,
  sendAlone,
  type Transport,
  type Waiter as ItemWaiter,
  type WriteWaiter,
  writeBatching,
} from '../cluster/ports.js';
import type { CoordinateItem, NodeId, PeerMessage, ReadItem, WriteItem } from '../cluster/types.js';
import { objectLimits } from '../cluster/version.js';
import {
  peerConnectTimeoutMs,
  peerFlushBytes,
  peerFrameBytesMax,
  peerHandshakeFrameBytesMax,
  peerHandshakesPendingMax,
  peerHandshakeTimeoutMs,
  peerInflightMax,
  peerKeepAliveMs,
  peerReconnectBaseMs,
  peerReconnectCapMs,
  peerWriteBufferBytesHigh,
} from '../constants.js';
import type { Logger } from '../log.js';
import { backoffDelayMs } from './backoff.js';
import { Connection, newCounters, type TrafficCounters } from './connection.js';
import { PeerError } from './errors.js';
import { runHandshake } from './handshake.js';

export interface PeerLimits {
  frameBytesMax: number;
  handshakeFrameBytesMax: number;
  inflightMax: number;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  reconnectBaseMs: number;
  reconnectCapMs: number;
  writeBufferBytesHigh: number;
  flushBytes: number;
  handshakesPendingMax: number;
  keepAliveMs: number;
}

export const peerLimitsDefault: Readonly<PeerLimits> = {
  frameBytesMax: peerFrameBytesMax,
  handshakeFrameBytesMax: peerHandshakeFrameBytesMax,
  inflightMax: peerInflightMax,
  connectTimeoutMs: peerConnectTimeoutMs,
  handshakeTimeoutMs: peerHandshakeTimeoutMs,
  reconnectBaseMs: peerReconnectBaseMs,
  reconnectCapMs: peerReconnectCapMs,
  writeBufferBytesHigh: peerWriteBufferBytesHigh,
  flushBytes: peerFlushBytes,
  handshakesPendingMax: peerHandshakesPendingMax,
  keepAliveMs: peerKeepAliveMs,
};

export interface PeerTransportOptions {
  /** This node's id (40 lowercase hex). */
  nodeId: NodeId;
  /** The cluster secret; null or absent for none. Every node of a cluster must use the same. */
  secret?: string | Buffer | null;
  logger: Logger;
  /** Overrides of the named limits (tests; the defaults come from src/constants.ts). */
  limits?: Partial<PeerLimits>;
  /** Uniform [0, 1) for backoff jitter (tests pass a seeded one). */
  random?: () => number;
}

/** What CLUSTER commands show about one peer (the connection this node dialed to it). */
export interface PeerStats {
  id: NodeId;
  host: string;
  port: number;
  /** connected; connecting (first attempt, requests wait); backoff (unreachable, retry pending); idle (never used). */
  state: 'connected' | 'connecting' | 'backoff' | 'idle';
  connected: boolean;
  /** Requests awaiting an answer, including those waiting for the first connection. */
  inflight: number;
  /** Bytes accepted for sending and not yet handed to the kernel. */
  queuedBytes: number;
  lastError: string | null;
  /** Successful connects after the first one. */
  reconnects: number;
  connectFailures: number;
  traffic: TrafficCounters;
}

export interface TransportStats {
  peers: PeerStats[];
  /** Connections other nodes dialed to us, past their handshake. */
  inboundConnections: number;
  /** Inbound connections refused: failed handshake, timeout, garbage. */
  handshakeFailures: number;
  /** Traffic on all inbound connections together. */
  inbound: TrafficCounters;
}

interface Waiter {
  msg: PeerMessage;
  /** null for a one-way message. */
  settle: { resolve: (m: PeerMessage) => void; reject: (e: Error) => void } | null;
  deadline: number;
  timer: NodeJS.Timeout;
}

/** One node we dial: its address, its current connection and reconnect state. */
class Peer {
  conn: Connection | null = null;
  dialing = false;
  /** The last connect failed or the connection dropped: requests fail fast until a reconnect succeeds. */
  failing = false;
  /** Consecutive failed attempts: the backoff exponent. */
  attempt = 0;
  retryTimer: NodeJS.Timeout | null = null;
  /** Requests waiting for the first connection. */
  waiting: Waiter[] = [];
  lastError: string | null = null;
  connects = 0;
  connectFailures = 0;
  /** Bumped when the address changes, so a dial to the old address is not adopted. */
  generation = 0;
  removed = false;
  readonly counters = newCounters();

  constructor(
    readonly id: NodeId,
    public host: string,
    public port: number,
  ) {}

  /** Requests awaiting an answer: those sent on the connection plus those waiting for it. */
  get inflight(): number {
    return (this.conn?.inflight ?? 0) + this.waiting.length;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }
}

export class PeerTransport implements Transport {
  readonly nodeId: NodeId;
  private readonly secret: Buffer | null;
  private readonly log: Logger;
  private readonly limits: PeerLimits;
  private readonly random: () => number;
  private handler: PeerHandler | null = null;
  private readonly peers = new Map<NodeId, Peer>();
  /** Every open connection, inbound and outbound, in or past its handshake. */
  private readonly connections = new Set<Connection>();
  private readonly inboundCounters = newCounters();
  private inboundReady = 0;
  private handshakesPending = 0;
  private handshakeFailures = 0;
  private server: net.Server | null = null;
  private closed = false;

  constructor(opts: PeerTransportOptions) {
    this.nodeId = opts.nodeId;
    this.secret = opts.secret === undefined || opts.secret === null ? null : Buffer.from(opts.secret);
    if (this.secret !== null && this.secret.length === 0) throw new TypeError('the cluster secret must not be empty (use null for none)');
    this.log = opts.logger;
    this.limits = { ...peerLimitsDefault, ...opts.limits };
    this.random = opts.random ?? Math.random;
  }

  /** Sets what answers incoming requests; until then peers get an error answer NOHANDLER. */
  setHandler(handler: PeerHandler): void {
    this.handler = handler;
  }

  /** Binds the cluster port. Resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    if (this.server) throw new Error('PeerTransport.listen called twice');
    if (this.closed) throw new PeerError('CLOSED', 'the peer transport is closed');
    const server = net.createServer({ noDelay: true }, (socket) => this.onInbound(socket));
    this.server = server;
    return new Promise<number>((resolve, reject) => {
      const failed = (err: Error): void => {
        this.server = null; // so listen() may be tried again (another port, after the holder exits)
        reject(err);
      };
      server.once('error', failed);
      server.listen(port, host, () => {
        server.off('error', failed);
        server.on('error', (err) => this.log.error({ err: err.message }, 'peer server error'));
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops listening, closes every connection and rejects everything pending with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const peer of this.peers.values()) this.dropPeer(peer, 'the transport is closing');
    for (const conn of [...this.connections]) conn.close('the transport is closing', { code: 'CLOSED' });
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Where `id` listens for peers (from gossip or config). A changed address
   * drops the old connection (its requests reject UNREACHABLE) and the next
   * request dials the new one. Our own id is ignored.
   */
  setAddress(id: NodeId, host: string, clusterPort: number): void {
    if (id === this.nodeId || this.closed) return;
    const peer = this.peers.get(id);
    if (!peer) {
      this.peers.set(id, new Peer(id, host, clusterPort));
      return;
    }
    if (peer.host === host && peer.port === clusterPort) return;
    this.log.info({ peer: id, from: peer.address, to: `${host}:${clusterPort}` }, 'peer address changed');
    peer.host = host;
    peer.port = clusterPort;
    peer.generation++;
    peer.conn?.close(`the node moved to ${peer.address}`);
    if (peer.retryTimer) clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    peer.failing = false;
    peer.attempt = 0;
  }

  /** Forgets a node (CLUSTER FORGET): closes its connection, stops reconnecting, rejects its requests. */
  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    this.dropPeer(peer, 'the node was removed');
  }

  /**
   * Dials an address whose node id we may not know (CLUSTER MEET, seeds),
   * runs the handshake and resolves with the id it learned. The connection is
   * kept as the one to that node. Rejects with PeerError UNREACHABLE,
   * HANDSHAKE or SELF.
   */
  async connectTo(host: string, port: number): Promise<NodeId> {
    if (this.closed) throw new PeerError('CLOSED', 'the peer transport is closed');
    const known = [...this.peers.values()].find((p) => p.host === host && p.port === port && p.conn !== null);
    if (known) return known.id;
    const conn = await this.dial(host, port, null, null);
    const id = conn.remoteId!;
    if (this.closed) {
      conn.close('the transport is closing', { code: 'CLOSED' });
      throw new PeerError('CLOSED', 'the peer transport is closed');
    }
    let peer = this.peers.get(id);
    if (!peer) {
      peer = new Peer(id, host, port);
      this.peers.set(id, peer);
    } else if (peer.host !== host || peer.port !== port) {
      this.setAddress(id, host, port);
    }
    this.adopt(peer, conn);
    return id;
  }

  /**
   * Sends a request and resolves with the peer's answer (which may be an
   * `error` message from its handler). Rejects with PeerError: TIMEOUT,
   * UNREACHABLE (fast, while the peer is down), OVERLOADED (too many
   * requests to it awaiting an answer), TOO_LARGE (over the frame limit),
   * HANDSHAKE (the first connect was refused), UNKNOWN_PEER, SELF or CLOSED.
   */
  request(to: NodeId, msg: PeerMessage, timeoutMs: number): Promise<PeerMessage> {
    if (this.closed) return Promise.reject(new PeerError('CLOSED', 'the peer transport is closed'));
    if (to === this.nodeId) return Promise.reject(new PeerError('SELF', `request to this node itself (${to}); handle it locally`));
    const peer = this.peers.get(to);
    if (!peer) {
      return Promise.reject(new PeerError('UNKNOWN_PEER', `no address known for node ${to}; CLUSTER MEET it or wait for gossip`));
    }
    const inflight = peer.inflight;
    if (inflight >= this.limits.inflightMax) {
      return Promise.reject(
        new PeerError('OVERLOADED', `${inflight} requests to node ${to} already await an answer (limit ${this.limits.inflightMax}); retry later`),
      );
    }
    if (peer.conn) return peer.conn.request(msg, timeoutMs);
    if (peer.failing) return Promise.reject(this.unreachable(peer));
    const answer = new Promise<PeerMessage>((resolve, reject) => this.wait(peer, msg, timeoutMs, { resolve, reject }));
    this.ensureDialing(peer);
    return answer;
  }

  /**
   * The port's sendWrite, sendRead and sendCoordinate: on a connected peer the item joins the
   * turn's request of its kind (one request for all of them); otherwise it
   * goes as a request of its own, which waits for the first connection or
   * fails fast as any request does.
   */
  sendWrite(to: NodeId, item: WriteItem, waiter: WriteWaiter, timeoutMs: number): void {
    this.sendItem(writeBatching, to, item, waiter, timeoutMs);
  }

  sendRead(to: NodeId, item: ReadItem, waiter: ReadWaiter, timeoutMs: number): void {
    this.sendItem(readBatching, to, item, waiter, timeoutMs);
  }

  sendCoordinate(to: NodeId, item: CoordinateItem, waiter: CoordinateWaiter, timeoutMs: number): void {
    this.sendItem(coordinateBatching, to, item, waiter, timeoutMs);
  }

  private sendItem<I, T>(kind: Batching<I, T>, to: NodeId, item: I, waiter: ItemWaiter<T>, timeoutMs: number): void {
    const conn = this.closed ? null : this.peers.get(to)?.conn;
    if (conn && (conn.batching(kind) || conn.inflight < this.limits.inflightMax)) conn.queueItem(kind, item, waiter, timeoutMs);
    else sendAlone(this, kind, to, item, waiter, timeoutMs);
  }

  /** The port's request to an address: learns the id with connectTo, then asks within what is left of the timeout. */
  async requestAddress(to: PeerAddress, msg: PeerMessage, timeoutMs: number): Promise<PeerMessage> {
    const startedAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PeerError('TIMEOUT', `no handshake with ${to.host}:${to.port} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const id = await Promise.race([this.connectTo(to.host, to.port), timeout]);
      return await this.request(id, msg, Math.max(1, timeoutMs - (performance.now() - startedAt)));
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends a one-way message (no answer). Returns false when it was dropped:
   * unknown or unreachable peer, or too many messages waiting for the
   * connection. Best effort: a connection that drops may lose it.
   */
  send(to: NodeId, msg: PeerMessage): boolean {
    if (this.closed) return false;
    const peer = this.peers.get(to);
    if (!peer) return false;
    if (peer.conn) return peer.conn.sendOneWay(msg);
    if (peer.failing || peer.waiting.length >= this.limits.inflightMax) return false;
    this.wait(peer, msg, this.limits.connectTimeoutMs + this.limits.handshakeTimeoutMs, null);
    this.ensureDialing(peer);
    return true;
  }

  peerStats(id: NodeId): PeerStats | undefined {
    const peer = this.peers.get(id);
    return peer && this.statsOf(peer);
  }

  stats(): TransportStats {
    return {
      peers: [...this.peers.values()].map((p) => this.statsOf(p)),
      inboundConnections: this.inboundReady,
      handshakeFailures: this.handshakeFailures,
      inbound: { ...this.inboundCounters },
    };
  }

  // --- outbound connections ----------------------------------------------------

  private statsOf(peer: Peer): PeerStats {
    const state = peer.conn ? 'connected' : peer.failing ? 'backoff' : peer.dialing ? 'connecting' : 'idle';
    return {
      id: peer.id,
      host: peer.host,
      port: peer.port,
      state,
      connected: peer.conn !== null,
      inflight: peer.inflight,
      queuedBytes: peer.conn?.queuedBytes ?? 0,
      lastError: peer.lastError,
      reconnects: Math.max(0, peer.connects - 1),
      connectFailures: peer.connectFailures,
      traffic: { ...peer.counters },
    };
  }

  private unreachable(peer: Peer): PeerError {
    return new PeerError('UNREACHABLE', `node ${peer.id} at ${peer.address} is unreachable (${peer.lastError ?? 'not connected'}); reconnecting in the background`);
  }

  /** Queues a message until the first connection to the peer is ready, bounded by its timeout. */
  private wait(peer: Peer, msg: PeerMessage, timeoutMs: number, settle: Waiter['settle']): void {
    const waiter: Waiter = {
      msg,
      settle,
      deadline: performance.now() + timeoutMs,
      timer: setTimeout(() => {
        const i = peer.waiting.indexOf(waiter);
        if (i >= 0) peer.waiting.splice(i, 1);
        peer.counters.timeouts++;
        settle?.reject(new PeerError('TIMEOUT', `no connection to node ${peer.id} at ${peer.address} within ${timeoutMs} ms`));
      }, timeoutMs),
    };
    peer.waiting.push(waiter);
  }

  private ensureDialing(peer: Peer): void {
    if (peer.conn || peer.dialing || peer.retryTimer || peer.removed || this.closed) return;
    peer.dialing = true;
    const generation = peer.generation;
    this.dial(peer.host, peer.port, peer.id, peer.counters).then(
      (conn) => {
        peer.dialing = false;
        if (peer.removed || this.closed || generation !== peer.generation) {
          conn.close('stale dial', { graceful: true });
          if (!peer.removed && !this.closed && peer.waiting.length > 0) this.ensureDialing(peer);
          return;
        }
        this.adopt(peer, conn);
      },
      (err: Error) => {
        peer.dialing = false;
        if (peer.removed || this.closed) return;
        if (generation !== peer.generation) {
          if (peer.waiting.length > 0) this.ensureDialing(peer);
          return;
        }
        this.connectFailed(peer, err);
      },
    );
  }

  /** Makes `conn` (dialed, handshake done) the peer's connection and sends what waited for it. */
  private adopt(peer: Peer, conn: Connection): void {
    if (peer.conn !== null) {
      // connectTo raced a reconnect: keep the one already in use.
      conn.close('duplicate connection', { graceful: true });
      return;
    }
    if (peer.retryTimer) clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    peer.conn = conn;
    peer.connects++;
    const wasFailing = peer.failing;
    peer.failing = false;
    peer.attempt = 0;
    conn.whenClosed((reason) => this.disconnected(peer, conn, reason));
    this.log.info({ peer: peer.id, address: peer.address, reconnect: peer.connects > 1, wasFailing }, 'connected to peer');
    const waiting = peer.waiting;
    peer.waiting = [];
    const now = performance.now();
    for (const w of waiting) {
      clearTimeout(w.timer);
      if (w.settle === null) {
        conn.sendOneWay(w.msg);
      } else {
        conn.request(w.msg, Math.max(1, w.deadline - now)).then(w.settle.resolve, w.settle.reject);
      }
    }
  }

  private connectFailed(peer: Peer, err: Error): void {
    peer.failing = true;
    peer.connectFailures++;
    const first = peer.lastError !== err.message;
    peer.lastError = err.message;
    // Warn once per distinct error, not every retry of a node that stays down.
    if (first) this.log.warn({ peer: peer.id, address: peer.address, err: err.message }, 'cannot connect to peer; retrying with backoff');
    else this.log.debug({ peer: peer.id, address: peer.address, err: err.message, attempt: peer.attempt }, 'peer still unreachable');
    const waiting = peer.waiting;
    peer.waiting = [];
    const error = err instanceof PeerError && err.code !== 'UNREACHABLE' ? err : this.unreachable(peer);
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.settle?.reject(error);
    }
    this.scheduleRetry(peer);
  }

  private disconnected(peer: Peer, conn: Connection, reason: string): void {
    if (peer.conn !== conn) return;
    peer.conn = null;
    if (peer.removed || this.closed) return;
    peer.failing = true;
    peer.lastError = reason;
    this.log.warn({ peer: peer.id, address: peer.address, reason }, 'lost the connection to peer; reconnecting with backoff');
    this.scheduleRetry(peer);
  }

  private scheduleRetry(peer: Peer): void {
    if (peer.retryTimer || peer.removed || this.closed) return;
    const delayMs = backoffDelayMs(peer.attempt, this.limits.reconnectBaseMs, this.limits.reconnectCapMs, this.random);
    peer.attempt++;
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = null;
      this.ensureDialing(peer);
    }, delayMs);
    // Reconnects alone must not keep a process alive that is otherwise done.
    peer.retryTimer.unref();
  }

  /** The peer dialed us, so it is up again: retry now instead of waiting out the backoff. */
  private peerIsBack(id: NodeId): void {
    const peer = this.peers.get(id);
    if (!peer || !peer.retryTimer) return;
    clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    this.ensureDialing(peer);
  }

  private dropPeer(peer: Peer, reason: string): void {
    peer.removed = true;
    if (peer.retryTimer) clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    const code = this.closed ? 'CLOSED' : 'UNREACHABLE';
    for (const w of peer.waiting) {
      clearTimeout(w.timer);
      w.settle?.reject(new PeerError(code, `node ${peer.id}: ${reason}`));
    }
    peer.waiting = [];
    peer.conn?.close(reason, { code });
    peer.conn = null;
  }

  /**
   * TCP connect plus handshake. `expectedId` makes a different node at the
   * address a failure; `counters` receive the connection's traffic.
   */
  private dial(host: string, port: number, expectedId: NodeId | null, counters: TrafficCounters | null): Promise<Connection> {
    return new Promise<Connection>((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new PeerError('UNREACHABLE', `connect to ${host}:${port} timed out after ${this.limits.connectTimeoutMs} ms`));
      }, this.limits.connectTimeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(new PeerError('UNREACHABLE', `cannot connect to ${host}:${port}: ${err.message}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.setKeepAlive(true, this.limits.keepAliveMs);
        if (this.closed) {
          socket.destroy();
          reject(new PeerError('CLOSED', 'the peer transport is closed'));
          return;
        }
        const conn = this.newConnection('outbound', socket, counters ?? newCounters());
        runHandshake(conn, 'dialer', { selfId: this.nodeId, secret: this.secret, timeoutMs: this.limits.handshakeTimeoutMs, expectedId }).then(
          () => resolve(conn),
          reject,
        );
      });
    });
  }

  private newConnection(role: 'inbound' | 'outbound', socket: net.Socket, counters: TrafficCounters): Connection {
    const conn = new Connection({
      role,
      socket,
      log: this.log,
      limits: this.limits,
      objectLimits,
      counters,
      handler: () => this.handler,
    });
    this.connections.add(conn);
    conn.whenClosed(() => this.connections.delete(conn));
    return conn;
  }

  // --- inbound connections -----------------------------------------------------

  private onInbound(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.handshakesPending >= this.limits.handshakesPendingMax) {
      this.handshakeFailures++;
      this.log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, limit: this.limits.handshakesPendingMax }, 'too many peer handshakes in progress; connection closed');
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, this.limits.keepAliveMs);
    this.handshakesPending++;
    const conn = this.newConnection('inbound', socket, this.inboundCounters);
    runHandshake(conn, 'acceptor', { selfId: this.nodeId, secret: this.secret, timeoutMs: this.limits.handshakeTimeoutMs }).then(
      (id) => {
        this.handshakesPending--;
        this.inboundReady++;
        this.log.debug({ peer: id, remote: conn.remoteAddress }, 'peer connected to us');
        conn.whenClosed((reason) => {
          this.inboundReady--;
          this.log.debug({ peer: id, remote: conn.remoteAddress, reason }, 'inbound peer connection closed');
        });
        this.peerIsBack(id);
      },
      (err: Error) => {
        this.handshakesPending--;
        this.handshakeFailures++;
        const self = err instanceof PeerError && err.code === 'SELF';
        // A node dialing its own address is a configuration slip, not an intruder.
        this.log[self ? 'debug' : 'warn']({ remote: conn.remoteAddress, err: err.message }, 'peer handshake failed; connection refused');
      },
    );
  }
}
