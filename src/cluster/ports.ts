// The ports of the cluster core: time, timers, randomness and the network,
// passed in rather than reached for (DESIGN.md, principle 1). Production wires
// the `system*` implementations below and the TCP transport of src/peer; the
// tests wire a fake clock, a timer queue, a seeded PRNG and an in-process
// lossy network (test/cluster/sim.ts), and get a deterministic cluster.
//
// This is the only file of src/cluster that may touch Date.now, setTimeout
// and Math.random.

import { performance } from 'node:perf_hooks';
import type { CoordinateItem, CoordinateResult, NodeId, PeerMessage, ReadItem, ReadResult, VersionedObject, VersionVector, WriteItem, WriteResult } from './types.js';

/** Wall-clock time in unix milliseconds. */
export interface Clock {
  now(): number;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Uniform numbers in [0, 1). */
export interface Random {
  next(): number;
}

/** Where a node's peer port listens. Used before the node's id is known (seeds, CLUSTER MEET). */
export interface PeerAddress {
  host: string;
  /** The peer (cluster) port, not the client port. */
  port: number;
}

/**
 * Request/response messaging between nodes. A request resolves with the
 * peer's single answer, or rejects (timeout, connection refused, unknown
 * node); the cluster core treats every rejection alike: no answer.
 */
export interface Transport {
  request(to: NodeId, msg: PeerMessage, timeoutMs: number): Promise<PeerMessage>;
  /**
   * The same, to an address whose node id we do not know yet: the seeds a
   * lonely node gossips with, and CLUSTER MEET. The answer tells us the id.
   */
  requestAddress(to: PeerAddress, msg: PeerMessage, timeoutMs: number): Promise<PeerMessage>;
  /**
   * Sends one replica write to a node and tells `waiter` how it went; likewise
   * sendRead for one replica read. The items for one node queued in one turn
   * of the event loop may travel as one request (writeBatch, readBatch: see
   * protocol/peer.ts), so an item costs no request of its own; each still has
   * its own result, and every waiter hears exactly once.
   */
  sendWrite(to: NodeId, item: WriteItem, waiter: WriteWaiter, timeoutMs: number): void;
  sendRead(to: NodeId, item: ReadItem, waiter: ReadWaiter, timeoutMs: number): void;
  /** Likewise one write for an owner to coordinate (coordinateBatch). */
  sendCoordinate(to: NodeId, item: CoordinateItem, waiter: CoordinateWaiter, timeoutMs: number): void;
}

/** Hears the outcome of one item sent with sendWrite, sendRead or sendCoordinate (a QuorumTally is one). */
export interface Waiter<T> {
  answer(node: NodeId, value: T): void;
  /** `code` is the transport's (PeerError) code when the whole request failed, e.g. UNREACHABLE. */
  fail(node: NodeId, reason: string, code?: string): void;
}
/** A write is durable there; the value is the replica's prior version vector when a reported write did not account for it. */
export type WriteWaiter = Waiter<VersionVector | null>;
/** The replica's copy, encoded and checked (null: it has none). */
export type ReadWaiter = Waiter<Buffer | null>;
/** The coordinating owner's count for the write. */
export type CoordinateWaiter = Waiter<number>;

/**
 * How items of one kind travel together: the request that carries them, and
 * how its answer (or the reason the whole request failed) reaches each
 * item's waiter. Shared by every Transport.
 */
export interface Batching<I, T> {
  message(items: I[]): PeerMessage;
  /** `askAlone(i)` sends item i again in a request of its own (a readBatch answer that had no room for it). */
  settle(node: NodeId, waiters: ReadonlyArray<Waiter<T>>, answer: PeerMessage | Error, askAlone: (i: number) => void): void;
  /** Roughly what an item adds to the request, to cut batches by size. */
  itemBytes(item: I): number;
}

/**
 * Hands each waiter its item's result from the answer to a batch: `results`
 * picks the per-item results out of an answer of the expected type, and
 * `deliver` tells one waiter one result. An answer of no use at all (an
 * error, a failed request, the wrong type or count) fails every item.
 */
function settleBatch<R, T>(
  node: NodeId,
  waiters: ReadonlyArray<Waiter<T>>,
  answer: PeerMessage | Error,
  results: (m: PeerMessage) => R[] | undefined,
  deliver: (w: Waiter<T>, node: NodeId, r: R, i: number) => void,
): void {
  const rs = answer instanceof Error ? undefined : results(answer);
  if (rs === undefined || rs.length !== waiters.length) {
    const reason =
      answer instanceof Error || answer.type === 'error'
        ? answer.message
        : rs === undefined
          ? `unexpected ${answer.type}`
          : `${answer.type} with ${rs.length} results for ${waiters.length} items`;
    const code = answer instanceof Error ? (answer as Error & { code?: unknown }).code : undefined;
    for (const w of waiters) w.fail(node, reason, typeof code === 'string' ? code : undefined);
    return;
  }
  for (let i = 0; i < waiters.length; i++) deliver(waiters[i]!, node, rs[i]!, i);
}

/** Marks items as in a request: from now on nothing may join or replace them (see Coordinator, Queued). */
function markSent<I extends { sent?: boolean }>(items: I[]): I[] {
  for (const item of items) item.sent = true;
  return items;
}

export const writeBatching: Batching<WriteItem, VersionVector | null> = {
  message: (items) => ({ type: 'writeBatch', items: markSent(items) }), // its version is now fixed (see WriteItem.sent)
  settle: (node, waiters, answer) =>
    settleBatch(
      node,
      waiters,
      answer,
      (m) => (m.type === 'writtenBatch' ? m.results : undefined),
      (w, n, r: WriteResult) => (r === null ? w.answer(n, null) : 'seen' in r ? w.answer(n, r.seen) : w.fail(n, r.error)),
    ),
  itemBytes: (item) => item.key.length + item.encoded.length,
};

export const readBatching: Batching<ReadItem, Buffer | null> = {
  message: (items) => ({ type: 'readBatch', items: markSent(items) }), // asked now: a later GET may not share it (see ReadItem.sent)
  settle: (node, waiters, answer, askAlone) =>
    settleBatch(
      node,
      waiters,
      answer,
      (m) => (m.type === 'objects' ? m.results : undefined),
      (w, n, r: ReadResult, i) => {
        if (r === null || Buffer.isBuffer(r)) w.answer(n, r);
        else if ('error' in r) w.fail(n, r.error);
        else askAlone(i);
      },
    ),
  itemBytes: (item) => item.key.length,
};

export const coordinateBatching: Batching<CoordinateItem, number> = {
  message: (items) => ({ type: 'coordinateBatch', items: markSent(items) }), // its value is now fixed (see CoordinateItem.sent)
  settle: (node, waiters, answer) =>
    settleBatch(
      node,
      waiters,
      answer,
      (m) => (m.type === 'coordinated' ? m.results : undefined),
      (w, n, r: CoordinateResult) => (typeof r === 'number' ? w.answer(n, r) : w.fail(n, r.error)),
    ),
  itemBytes: (item) => item.key.length + (item.value?.length ?? 0),
};

/** One item as a request of its own: for transports that do not batch (tests), and before a connection is up. */
export function sendAlone<I, T>(
  transport: Pick<Transport, 'request'>,
  kind: Batching<I, T>,
  to: NodeId,
  item: I,
  waiter: Waiter<T>,
  timeoutMs: number,
): void {
  // Alone, the item is first in its answer, which always has room for it.
  const askedAlready = (): void => waiter.fail(to, 'the answer had no room for the only item asked');
  transport.request(to, kind.message([item]), timeoutMs).then(
    (m) => kind.settle(to, [waiter], m, askedAlready),
    (e: Error) => kind.settle(to, [waiter], e, askedAlready),
  );
}

/** What a transport calls with each incoming request; the returned message is the answer. */
export type PeerHandler = (from: NodeId, msg: PeerMessage) => Promise<PeerMessage> | PeerMessage;

export const systemClock: Clock = {
  now: () => Date.now(),
};

/**
 * Milliseconds that never step back (not unix time). For the gossip driver and
 * failure detector: a wall clock stepping back would hide failures until it
 * caught up, and one stepping forward would fake them.
 */
export const monotonicClock: Clock = {
  now: () => performance.now(),
};

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export const systemRandom: Random = {
  next: () => Math.random(),
};

/**
 * A seeded PRNG (mulberry32): the same seed gives the same sequence on every
 * machine. For simulations and tests; also handy for reproducible tooling.
 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let x = Math.imul(a ^ (a >>> 15), 1 | a);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** seededRandom as a plain function, for code that wants `() => number` (tests, benches). */
export function seededRandomFn(seed: number): () => number {
  const random = seededRandom(seed);
  return () => random.next();
}

/** A uniformly random integer in [0, n). */
export function randomInt(random: Random, n: number): number {
  return Math.floor(random.next() * n);
}

/** `k` distinct elements of `items` in random order (all of them when k >= length). */
export function sample<T>(random: Random, items: readonly T[], k: number): T[] {
  const pool = items.slice();
  const take = Math.min(k, pool.length);
  // Partial Fisher-Yates: only the first `take` positions are shuffled.
  for (let i = 0; i < take; i++) {
    const j = i + randomInt(random, pool.length - i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, take);
}

/**
 * This node's replica of the keys it owns: the local store seen as versioned
 * objects.
 * - `readEncoded`: the copy as stored (checked, not decoded), what a replica
 *   answers other nodes' reads with.
 * - `decode`: a checked copy of a key, this node's or another's, decoded;
 *   recent ones are kept decoded, so a hot key is not decoded on every read.
 * - `apply`: merges an incoming version (its encoding, and its decoded form
 *   when the caller has it) into the local copy, never replacing it blindly.
 *   Returns null when the version accounted for the copy (or there was none),
 *   else the copy's version vector, also when the version changed nothing
 *   (its dot already seen there: see SegmentReplica).
 * - `whenDurable`: when applied writes are on disk.
 */
export interface ReplicaStore {
  read(key: Buffer): VersionedObject | null | Promise<VersionedObject | null>;
  readEncoded(key: Buffer): Buffer | null | Promise<Buffer | null>;
  decode(key: Buffer, encoded: Buffer): VersionedObject;
  /** Bumped by every change to the local copies (a write applied, a clear): equal counts, nothing changed between. */
  readonly changes: number;
  apply(key: Buffer, encoded: Buffer, object?: VersionedObject): VersionVector | null | Promise<VersionVector | null>;
  whenDurable(cb: (err: Error | null) => void): void;
  /** One step over the local keys (tombstoned ones included); cursor 0 starts and ends. */
  scan(cursor: number, count: number): { cursor: number; keys: Buffer[] };
  keys(): Iterable<Buffer>;
  clear(): Promise<void>;
}
