// One TCP connection between two nodes: frames in and out (protocol/peer.ts),
// requests multiplexed by id, outgoing frames coalesced per tick, incoming
// requests handed to the node's handler, and read backpressure. It knows
// nothing of reconnects or addresses; src/peer/transport.ts owns connections
// and src/peer/handshake.ts runs the first exchange on each.
//
// Which side sends requests: the transport sends its requests only on the
// connections it dialed ("outbound") and answers requests on the ones it
// accepted ("inbound"). That split is what makes read backpressure safe: an
// inbound connection stops reading requests while its answers cannot be sent,
// but an outbound one always reads (reading answers never produces writes), so
// two nodes can never both stop reading and wait on each other.

import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Batching, type PeerHandler, sendAlone, type Waiter } from '../cluster/ports.js';
import type { NodeId, PeerMessage } from '../cluster/types.js';
import type { ObjectLimits } from '../../protocol/object.js';
import {
  encodeFrame,
  encodeHandshake,
  FrameDecoder,
  isFrameError,
  type Frame,
  type FrameError,
  type Handshake,
  BATCH_ITEMS_MAX,
} from '../../protocol/peer.js';
import type { Logger } from '../log.js';
import { PeerError, type PeerErrorCode } from './errors.js';

/** Traffic counters, shared by all connections of one peer (or all inbound connections) for stats. */
export interface TrafficCounters {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** socket.write calls: far fewer than framesSent when coalescing works. */
  writes: number;
  timeouts: number;
  badFrames: number;
  /** Times reading stopped because unsent answers piled up. */
  readPauses: number;
}

export function newCounters(): TrafficCounters {
  return { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, writes: 0, timeouts: 0, badFrames: 0, readPauses: 0 };
}

export interface ConnectionLimits {
  frameBytesMax: number;
  handshakeFrameBytesMax: number;
  inflightMax: number;
  writeBufferBytesHigh: number;
  flushBytes: number;
}

export interface ConnectionOptions {
  role: 'inbound' | 'outbound';
  socket: net.Socket;
  log: Logger;
  limits: ConnectionLimits;
  objectLimits: ObjectLimits;
  counters: TrafficCounters;
  /** The node's handler for incoming requests and one-way messages; null until the node sets one. */
  handler: () => PeerHandler | null;
}

interface Pending {
  resolve: (msg: PeerMessage) => void;
  reject: (err: Error) => void;
  /** performance.now() after which the request times out. */
  deadline: number;
  type: PeerMessage['type'];
  timeoutMs: number;
}

/** Items of one kind queued for one request (see queueItem). */
interface Outbox {
  kind: Batching<never, never>;
  items: never[];
  waiters: Array<Waiter<never>>;
  bytes: number;
  timeoutMs: number;
}

/** Chunks at least this large are handed to the socket as they are; smaller ones are joined into one write. */
const joinBytesMax = 64 * 1024;
/** After a graceful close (a refusal, a duplicate), the other side gets this long to close its end. */
const gracefulCloseMs = 1000;

export class Connection {
  readonly role: 'inbound' | 'outbound';
  /** "host:port" of the other end, captured at once (a destroyed socket forgets it). */
  readonly remoteAddress: string;
  /** Set when the handshake succeeds. */
  remoteId: NodeId | null = null;
  state: 'handshake' | 'ready' | 'closed' = 'handshake';
  closeReason: string | null = null;
  /** True while reading is stopped for backpressure. */
  readPaused = false;
  /** Receives handshake frames while state is 'handshake' (set by src/peer/handshake.ts). */
  onHandshake: ((hs: Handshake) => void) | null = null;

  private readonly socket: net.Socket;
  private readonly log: Logger;
  private readonly limits: ConnectionLimits;
  private readonly counters: TrafficCounters;
  private readonly handler: () => PeerHandler | null;
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  /**
   * One timer per connection for the timeouts of all its requests, armed for
   * the earliest deadline (a timer per request cost a Timeout object and two
   * list operations on every request of the hot path).
   */
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweepAt = Infinity;
  private nextId = 1;
  /** Requests from the other side being handled now (inbound connections). */
  private handling = 0;
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushTimer: NodeJS.Immediate | null = null;
  /** Items queued this turn, per kind (writes, reads), each to go as one request when the turn's frames are flushed. */
  private readonly outboxes = new Map<Batching<never, never>, Outbox>();
  private readonly closeListeners: Array<(reason: string) => void> = [];
  private socketError: string | null = null;

  constructor(opts: ConnectionOptions) {
    this.role = opts.role;
    this.socket = opts.socket;
    this.limits = opts.limits;
    this.counters = opts.counters;
    this.handler = opts.handler;
    this.remoteAddress = `${opts.socket.remoteAddress ?? '?'}:${opts.socket.remotePort ?? '?'}`;
    this.log = opts.log;
    // Until the other side has proved itself, only small handshake frames are buffered.
    this.decoder = new FrameDecoder(opts.limits.handshakeFrameBytesMax, opts.objectLimits);

    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('drain', () => {
      if (this.readPaused && this.state !== 'closed') {
        this.readPaused = false;
        this.socket.resume();
      }
    });
    this.socket.on('error', (err) => {
      this.socketError = err.message;
    });
    this.socket.on('end', () => this.close('the other side closed the connection'));
    this.socket.on('close', () => this.close(this.socketError ? `socket error: ${this.socketError}` : 'connection closed'));
  }

  /** Who is at the other end, for messages. */
  get who(): string {
    return this.remoteId ? `node ${this.remoteId} at ${this.remoteAddress}` : this.remoteAddress;
  }

  /** Fields that say who a log line is about: the remote address (always) and node id (once known). */
  private logContext(): { remote: string; peer?: NodeId } {
    return this.remoteId ? { remote: this.remoteAddress, peer: this.remoteId } : { remote: this.remoteAddress };
  }

  /** A getter rather than a direct state test, so checks made after calls that may close the connection are not narrowed away by TypeScript. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Requests sent on this connection and not yet answered. */
  get inflight(): number {
    return this.pending.size;
  }

  /** Bytes waiting to be sent: our own queue plus the socket's buffer. */
  get queuedBytes(): number {
    return this.outBytes + (this.state === 'closed' ? 0 : this.socket.writableLength);
  }

  whenClosed(fn: (reason: string) => void): void {
    if (this.state === 'closed') fn(this.closeReason!);
    else this.closeListeners.push(fn);
  }

  /** The handshake succeeded: data frames may flow, up to the full frame size. */
  setReady(remoteId: NodeId): void {
    if (this.state !== 'handshake') return;
    this.remoteId = remoteId;
    this.state = 'ready';
    this.decoder.maxFrameBytes = this.limits.frameBytesMax;
  }

  sendHandshake(hs: Handshake): void {
    this.enqueue([encodeHandshake(hs)]);
  }

  /**
   * Sends a request and resolves with the answer. Rejects with PeerError
   * TIMEOUT after timeoutMs, UNREACHABLE when the connection closes first, or
   * the encoder's TypeError for a message that breaks the types (a bug).
   */
  request(msg: PeerMessage, timeoutMs: number): Promise<PeerMessage> {
    return new Promise<PeerMessage>((resolve, reject) => {
      if (this.state !== 'ready') {
        reject(new PeerError('UNREACHABLE', `no connection to ${this.who}: ${this.closeReason ?? 'handshake not finished'}`));
        return;
      }
      const id = this.allocateId();
      let chunks: Buffer[];
      try {
        chunks = encodeFrame('request', id, msg);
      } catch (e) {
        reject(e as Error);
        return;
      }
      const bytes = frameBytes(chunks);
      if (bytes > this.limits.frameBytesMax) {
        // The peer would drop the whole connection on it; fail just this request.
        reject(new PeerError('TOO_LARGE', `${msg.type} request of ${bytes} bytes is over the peer frame limit of ${this.limits.frameBytesMax} bytes`));
        return;
      }
      const deadline = performance.now() + timeoutMs;
      this.pending.set(id, { resolve, reject, deadline, type: msg.type, timeoutMs });
      this.armSweep(deadline);
      this.enqueue(chunks);
    });
  }

  /** Sends a message that gets no answer; false if it cannot (closed, too large). Throws TypeError for a message that breaks the types. */
  sendOneWay(msg: PeerMessage): boolean {
    if (this.state !== 'ready') return false;
    const chunks = encodeFrame('oneWay', 0, msg);
    if (frameBytes(chunks) > this.limits.frameBytesMax) return false;
    this.enqueue(chunks);
    return true;
  }

  /**
   * Queues an item (a replica write or read) for this turn's request of its
   * kind (see Transport.sendWrite). The request is sent with the turn's other
   * frames, or at once when it reaches BATCH_ITEMS_MAX items or flushBytes;
   * its timeout is the shortest of its items'.
   */
  queueItem<I, T>(kind: Batching<I, T>, item: I, waiter: Waiter<T>, timeoutMs: number): void {
    if (this.state !== 'ready') {
      waiter.fail(this.remoteId ?? this.remoteAddress, `no connection to ${this.who}: ${this.closeReason ?? 'handshake not finished'}`, 'UNREACHABLE');
      return;
    }
    const key = kind as Batching<never, never>;
    let box = this.outboxes.get(key);
    if (box === undefined) this.outboxes.set(key, (box = { kind: key, items: [], waiters: [], bytes: 0, timeoutMs }));
    box.items.push(item as never);
    box.waiters.push(waiter as Waiter<never>);
    box.bytes += kind.itemBytes(item);
    if (timeoutMs < box.timeoutMs) box.timeoutMs = timeoutMs;
    if (box.items.length >= BATCH_ITEMS_MAX || box.bytes >= this.limits.flushBytes) this.sendOutbox(box);
    else this.scheduleFlush();
  }

  /** Whether items of this kind are queued for this turn's request (another one takes no new request slot). */
  batching<I, T>(kind: Batching<I, T>): boolean {
    return this.outboxes.has(kind as Batching<never, never>);
  }

  /** Sends one kind's queued items as one request; each waiter hears its own item's outcome. */
  private sendOutbox(box: Outbox): void {
    this.outboxes.delete(box.kind);
    const node = this.remoteId!;
    const askAlone = (i: number): void =>
      sendAlone({ request: (_to, msg, ms) => this.request(msg, ms) }, box.kind, node, box.items[i]!, box.waiters[i]!, box.timeoutMs);
    this.request(box.kind.message(box.items), box.timeoutMs).then(
      (m) => box.kind.settle(node, box.waiters, m, askAlone),
      (e: Error) => box.kind.settle(node, box.waiters, e, askAlone),
    );
  }

  /**
   * Closes the connection; every request awaiting an answer on it rejects at
   * once. `graceful` sends what is queued first (used to drop a duplicate).
   */
  close(reason: string, opts: { graceful?: boolean; code?: PeerErrorCode } = {}): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeReason = reason;
    if (this.flushTimer) {
      clearImmediate(this.flushTimer);
      this.flushTimer = null;
    }
    // Items queued for this turn's batches fail with the requests in flight (a graceful close sends no new request).
    const lost = new PeerError(opts.code ?? 'UNREACHABLE', `connection to ${this.who} closed: ${reason}`);
    for (const box of this.outboxes.values()) box.kind.settle(this.remoteId ?? this.remoteAddress, box.waiters, lost, () => {});
    this.outboxes.clear();
    if (opts.graceful) {
      this.flush();
      this.socket.end();
      // The other side should close too; if it does not, do not keep its socket forever.
      setTimeout(() => this.socket.destroy(), gracefulCloseMs).unref();
    } else {
      this.out = [];
      this.outBytes = 0;
      this.socket.destroy();
    }
    const err = new PeerError(opts.code ?? 'UNREACHABLE', `connection to ${this.who} closed: ${reason}`);
    if (this.sweepTimer) {
      clearTimeout(this.sweepTimer);
      this.sweepTimer = null;
      this.sweepAt = Infinity;
    }
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const fn of this.closeListeners.splice(0)) fn(reason);
  }

  // --- writing -----------------------------------------------------------------

  private allocateId(): number {
    // u32 ids, 0 reserved for frames that are not requests; skip ids still in flight after a wrap.
    do {
      this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    } while (this.pending.has(this.nextId));
    return this.nextId;
  }

  /**
   * Queues a frame's chunks. Everything queued in one turn of the event loop
   * goes out in one socket write at setImmediate (thousands of small requests
   * cost one syscall, not thousands); a large backlog is flushed at once so big
   * payloads do not wait for the turn to end.
   */
  private enqueue(chunks: Buffer[]): void {
    if (this.state === 'closed') return;
    for (const c of chunks) {
      this.out.push(c);
      this.outBytes += c.length;
    }
    this.counters.framesSent++;
    if (this.outBytes >= this.limits.flushBytes) this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== null) return;
    this.flushTimer = setImmediate(() => {
      this.flushTimer = null;
      this.flush();
    });
  }

  private flush(): void {
    if (this.outboxes.size > 0) {
      // One at a time from the map: sending one may flush (a full `out`), which sends the others.
      while (this.outboxes.size > 0) this.sendOutbox(this.outboxes.values().next().value!);
      // Their frames are in `out` now and go below; the flush they scheduled is not needed.
      if (this.flushTimer !== null) {
        clearImmediate(this.flushTimer);
        this.flushTimer = null;
      }
    }
    if (this.out.length === 0 || this.socket.destroyed) return;
    const out = this.out;
    this.counters.bytesSent += this.outBytes;
    this.out = [];
    this.outBytes = 0;
    // Small chunks are joined into one buffer (one copy of small data); large
    // ones are written as they are, so a 512 MB value is never copied here.
    // cork/uncork turns the few writes into one writev.
    this.socket.cork();
    let run: Buffer[] = [];
    const writeRun = (): void => {
      if (run.length === 0) return;
      this.write(run.length === 1 ? run[0]! : Buffer.concat(run));
      run = [];
    };
    for (const c of out) {
      if (c.length >= joinBytesMax) {
        writeRun();
        this.write(c);
      } else {
        run.push(c);
      }
    }
    writeRun();
    this.socket.uncork();

    // Backpressure: stop reading requests while their answers cannot be sent
    // (see the file comment for why only inbound connections do this).
    if (this.role === 'inbound' && !this.readPaused && this.socket.writableLength > this.limits.writeBufferBytesHigh) {
      this.readPaused = true;
      this.counters.readPauses++;
      this.socket.pause();
      this.log.debug({ ...this.logContext(), queuedBytes: this.socket.writableLength }, 'peer reads slower than we answer; pausing reads until it catches up');
    }
  }

  private write(buf: Buffer): void {
    this.counters.writes++;
    this.socket.write(buf);
  }

  // --- reading -----------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closed) return; // a gracefully closing connection reads nothing more
    this.counters.bytesReceived += chunk.length;
    this.decoder.push(chunk);
    for (;;) {
      if (this.closed) return; // a frame handled just now may have closed it
      const f = this.decoder.next();
      if (f === null) return;
      if (isFrameError(f)) {
        this.onFrameError(f);
        continue;
      }
      this.counters.framesReceived++;
      try {
        this.onFrame(f);
      } catch (e) {
        // A bug of ours, not the peer's: say so loudly, but lose one connection rather than the node.
        this.log.error({ ...this.logContext(), err: (e as Error).stack ?? String(e) }, 'internal error while handling a peer frame; closing the connection');
        this.close(`internal error: ${(e as Error).message}`);
      }
    }
  }

  private onFrameError(f: FrameError): void {
    this.counters.badFrames++;
    if (f.fatal || this.state === 'handshake' || f.kind === 'handshake') {
      // The stream cannot be trusted any more (or the peer never proved itself): drop it.
      this.log.warn({ ...this.logContext(), error: f.error, detail: f.message }, 'bad frame from peer; closing the connection');
      this.close(`bad frame: ${f.message}`);
      return;
    }
    // An intact frame whose content we do not understand (a newer peer, or a bug):
    // answer or fail just that message and keep the connection.
    this.log.warn({ ...this.logContext(), error: f.error, detail: f.message, kind: f.kind }, 'undecodable message from peer');
    if (f.kind === 'request') {
      this.respond(f.id!, { type: 'error', code: f.error, message: `cannot decode the request: ${f.message}` });
    } else if (f.kind === 'response') {
      const p = this.takePending(f.id!);
      p?.reject(new PeerError('BAD_RESPONSE', `undecodable answer from ${this.who}: ${f.message}`));
    }
  }

  private onFrame(f: Frame): void {
    if (this.state === 'handshake') {
      if (f.kind !== 'handshake') {
        this.log.warn({ ...this.logContext(), kind: f.kind }, 'peer sent a data frame before the handshake finished; closing the connection');
        this.close(`${f.kind} frame before the handshake finished`);
        return;
      }
      this.onHandshake?.(f.handshake);
      return;
    }
    switch (f.kind) {
      case 'handshake':
        this.log.warn({ ...this.logContext(), step: f.handshake.step }, 'peer sent a handshake frame after the handshake; closing the connection');
        this.close('handshake frame after the handshake');
        return;
      case 'response': {
        const p = this.takePending(f.id);
        if (p) p.resolve(f.message);
        else this.log.debug({ ...this.logContext(), id: f.id, type: f.message.type }, 'answer for an unknown request id (timed out?); ignored');
        return;
      }
      case 'request':
      case 'oneWay':
        this.dispatch(f.kind, f.id, f.message);
        return;
    }
  }

  private takePending(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p) this.pending.delete(id);
    return p;
  }

  private armSweep(deadline: number): void {
    if (deadline >= this.sweepAt) return;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepAt = deadline;
    this.sweepTimer = setTimeout(() => this.sweep(), Math.max(1, Math.ceil(deadline - performance.now())));
    // The socket keeps the process alive while requests are pending; close() rejects them.
    this.sweepTimer.unref();
  }

  /** Rejects every request past its deadline and re-arms for the earliest one left. */
  private sweep(): void {
    this.sweepTimer = null;
    this.sweepAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        this.counters.timeouts++;
        p.reject(new PeerError('TIMEOUT', `no answer from ${this.who} to ${p.type} within ${p.timeoutMs} ms`));
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next < Infinity) this.armSweep(next);
  }

  /** Runs the node's handler; whatever it does (throw, reject, return junk), the peer gets an answer and we keep running. */
  private dispatch(kind: 'request' | 'oneWay', id: number, msg: PeerMessage): void {
    const handler = this.handler();
    if (handler === null) {
      if (kind === 'request') this.respond(id, { type: 'error', code: 'NOHANDLER', message: 'this node is not ready to serve peers yet' });
      return;
    }
    if (kind === 'request' && this.handling >= this.limits.inflightMax) {
      this.respond(id, { type: 'error', code: 'OVERLOADED', message: `more than ${this.limits.inflightMax} requests from one peer in progress` });
      return;
    }
    let result: PeerMessage | Promise<PeerMessage>;
    try {
      result = handler(this.remoteId!, msg);
    } catch (e) {
      this.answer(kind, id, msg, undefined, e);
      return;
    }
    if (isThenable(result)) {
      this.handling++;
      result.then(
        (answer) => {
          this.handling--;
          this.answer(kind, id, msg, answer, undefined);
        },
        (e: unknown) => {
          this.handling--;
          this.answer(kind, id, msg, undefined, e);
        },
      );
    } else {
      this.answer(kind, id, msg, result, undefined);
    }
  }

  private answer(kind: 'request' | 'oneWay', id: number, msg: PeerMessage, answer: PeerMessage | undefined, error: unknown): void {
    if (error !== undefined || answer === undefined) {
      const message = error instanceof Error ? error.message : String(error ?? 'the handler returned nothing');
      this.log.warn({ ...this.logContext(), type: msg.type, err: message }, 'peer message handler failed');
      if (kind === 'request') this.respond(id, { type: 'error', code: 'HANDLER', message });
      return;
    }
    if (kind === 'request') this.respond(id, answer);
  }

  private respond(id: number, msg: PeerMessage): void {
    if (this.state === 'closed') return; // the requester is gone; nobody to answer
    let chunks: Buffer[];
    try {
      chunks = encodeFrame('response', id, msg);
    } catch (e) {
      // The handler returned a message that breaks the types: a bug, but the requester still gets an answer.
      this.log.warn({ ...this.logContext(), type: msg.type, err: (e as Error).message }, 'cannot encode the answer to a peer');
      chunks = encodeFrame('response', id, { type: 'error', code: 'INTERNAL', message: `the answer could not be encoded: ${(e as Error).message}` });
    }
    const bytes = frameBytes(chunks);
    if (bytes > this.limits.frameBytesMax) {
      this.log.warn({ ...this.logContext(), type: msg.type, bytes }, 'answer too large for a peer frame; sending an error instead');
      chunks = encodeFrame('response', id, {
        type: 'error',
        code: 'TOO_LARGE',
        message: `the ${msg.type} answer of ${bytes} bytes is over the peer frame limit of ${this.limits.frameBytesMax} bytes`,
      });
    }
    this.enqueue(chunks);
  }
}

function frameBytes(chunks: Buffer[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

function isThenable(x: unknown): x is PromiseLike<PeerMessage> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}
