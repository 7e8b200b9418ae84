// The quorum coordinator: the KeyValue a cluster node serves clients with.
// Every key has a preference list of N owners (the ring). Reads ask all N and
// answer from the first R, merged by causality, and repair stale replicas in
// the background. Writes are versioned by an owner (the actor of the new dot)
// so that the new version supersedes every earlier acknowledged write whatever
// the wall clocks say: its context must include what N-W+1 owners hold (that
// intersects every W that acknowledged a write). A SET gets that from the
// owners' answers to the write itself and versions again only when one held
// something it missed (see coordinate); DEL and read-modify-writes read the
// context first. Writes answer after W durable acknowledgements; one that
// misses W is not rolled back (as in Dynamo): the error says so.
//
// The coordinator is written against ports (transport, replica store, clock),
// so tests can drive it over a fake network; src/node.ts wires the real ones.

import { type Entry, type KeyValue, type Maybe, type ScanPage, type Update, isPromise, then } from '../kv/keyvalue.js';
import { KeyLocks } from '../kv/locks.js';
import { decodeCheckedObject, encodedMaxHlc, encodeObject, nextVersionEncoded } from '../../protocol/object.js';
import type { HybridClock } from './hlc.js';
import { type Clock, type Random, type ReplicaStore, type Transport, type WriteWaiter, randomInt } from './ports.js';
import { type DoneListener, QuorumTally, WriteRound } from './quorum.js';
import type { Ring } from './ring.js';
import type { CoordinateItem, CoordinateResult, NodeId, PeerMessage, ReadItem, ReadResult, Sibling, VersionedObject, VersionVector, WriteItem, WriteResult } from './types.js';
import { emptyObject, equalObjects, merge, mergeVV, newestHlc, objectLimits, resolve, update } from './version.js';

export interface Quorum {
  r: number;
  w: number;
}

export interface CoordinatorPorts {
  self: NodeId;
  /** Wall clock (expiry). */
  clock: Clock;
  hlc: HybridClock;
  random: Random;
  transport: Transport;
  replica: ReplicaStore;
  /** The current ring (it changes with membership). */
  ring(): Ring;
  /** This node's failure detector verdict. */
  isUp(id: NodeId): boolean;
}

export interface CoordinatorOptions {
  quorum: Quorum;
  requestTimeoutMs: number;
  siblingsMax: number;
  /** Most bytes of objects in one readBatch answer (see #fitAnswer); below the peer frame limit. */
  readAnswerBytesMax: number;
}

/** A quorum was not reached; the first word tells clients to retry. */
export class QuorumError extends Error {
  override name = 'QuorumError';
  constructor(op: 'read' | 'write', detail: string, written: boolean) {
    super(
      `TRYAGAIN ${op} quorum not reached: ${detail}` +
        (written ? '; the write was not rolled back and may still reach every replica' : ''),
    );
  }
}

/** No owner of a key can be reached to coordinate it. */
export class NoOwnerError extends Error {
  override name = 'NoOwnerError';
  constructor(what: string) {
    super(`CLUSTERDOWN no reachable owner for ${what}`);
  }
}

/** A peer answered a request with an error message (its text is passed on as the reply). */
export class PeerReplyError extends Error {
  override name = 'PeerReplyError';
}

export interface CoordinatorStats {
  reads: number;
  writes: number;
  readRepairs: number;
  forwardedWrites: number;
  quorumFailures: number;
  /** SETs versioned a second time because an owner held writes the first version did not account for. */
  writeRetries: number;
  /** SETs whose version took the place of an earlier SET's still queued for the owners (see #versionSet). */
  writesCombined: number;
  /** SETs an owner sent to the key's first owner because the key was contended (see #noteContended). */
  contendedForwards: number;
  /** SETs sent to an owner whose value took the place of an earlier SET's still queued for it (see #forward). */
  forwardsCombined: number;
  /** GETs that shared the read of an earlier GET of the key still queued for the owners (see #read). */
  readsCombined: number;
}

const toEntry = (s: Sibling | undefined): Entry | undefined =>
  s === undefined || s.value === null ? undefined : { value: s.value, expiresAtMs: s.expiresAtMs };

/** Drops values from an object, keeping what causality and existence need (for version-only reads). */
export function withoutValues(obj: VersionedObject): VersionedObject {
  const empty = Buffer.alloc(0);
  return { vv: obj.vv, siblings: obj.siblings.map((s) => ({ ...s, value: s.value === null ? null : empty })) };
}

/** Read repair is best effort: nobody waits for its writes. */
const ignoreWrite: WriteWaiter = { answer: () => {}, fail: () => {} };

/** Cursor of a cluster-wide SCAN: which member (by index in the sorted ring nodes) and its local cursor. */
const scanNodeBits = 1024;

/** A SET's write round whose version is still queued for the other owners (see #versionSet). */
interface OpenSet {
  /** The one item queued for every other owner. */
  item: WriteItem;
  round: WriteRound;
}

/** A GET's read whose item is still queued for the other owners (see #read). */
interface OpenRead {
  item: ReadItem;
  owners: readonly NodeId[];
  /** Answers it waits for. */
  need: number;
  /** Until the read is decided; then null, so a closed entry holds no answers or values. */
  tally: QuorumTally<Buffer | null> | null;
  result: Promise<VersionedObject> | null;
  /** replica.changes when this node's copy was read (see #read). */
  localChanges: number;
}

/** A SET sent to an owner to coordinate, its item still queued for it (see #forward). */
interface OpenForward {
  item: CoordinateItem;
  to: NodeId;
  outcome: Promise<number>;
}

/**
 * How many bytes larger than the queued version a SET's version may be and
 * still take its place: the queue counted the queued one's size to cut
 * batches, and a version of the same key differs by a counter's byte or two
 * (a larger value starts a round of its own).
 */
const rideAlongSlackBytes = 64;

/** Queued entries kept before those already sent are swept (see Queued). */
const queuedSweepAt = 256;
/** Bytes (values, encoded versions) that closed Queued entries may hold before a sweep. */
const queuedSweepBytes = 1024 * 1024;

/**
 * A forwarded write may take its owner a context read and a write round,
 * each bounded by requestTimeoutMs: the forwarder waits for both plus this
 * margin, so the owner's verdict on each item of a batch arrives before the
 * batch times out (a timeout would fail every item, the done ones too).
 */
const forwardMarginMs = 500;

/** How long a node sends the SETs of a key it found contended to the key's first owner (see #noteContended). */
const contendedForMs = 1000;
/** Most keys noted as contended at once; past it no more are noted until some expire. */
const contendedKeysMax = 1024;

/** What every view of one node's coordinator shares. */
interface Shared {
  stats: CoordinatorStats;
  /** Serialises the writes this node coordinates, per key, so its dots for a key are issued in order. */
  locks: KeyLocks;
  /** SET rounds whose version has not gone on the wire yet, by key (latin1). */
  open: Queued<OpenSet>;
  /** SETs sent to an owner to coordinate whose item has not gone on the wire yet, by key (latin1). */
  forwards: Queued<OpenForward>;
  /** GETs' reads whose item has not gone on the wire yet, by key (latin1). */
  reads: Queued<OpenRead>;
  /** Keys whose SETs go to their first owner, until when (clock ms), by key (latin1): see #noteContended. */
  contended: Map<string, number>;
}

/** A write that may still be in progress: a WriteRound, or a SET riding along one. */
interface Pending {
  whenDone(fn: DoneListener): void;
}

export class Coordinator implements KeyValue {
  readonly #shared: Shared;

  constructor(
    private readonly ports: CoordinatorPorts,
    private readonly options: CoordinatorOptions,
    /** The levels this view uses (a connection may choose its own with withQuorum). */
    private readonly quorum: Quorum = options.quorum,
    shared?: Shared,
  ) {
    this.#shared = shared ?? {
      stats: {
        reads: 0,
        writes: 0,
        readRepairs: 0,
        forwardedWrites: 0,
        quorumFailures: 0,
        writeRetries: 0,
        writesCombined: 0,
        contendedForwards: 0,
        forwardsCombined: 0,
        readsCombined: 0,
      },
      locks: new KeyLocks(),
      // An item that failed without going out (a connection lost with it queued) never will: its round or
      // read is decided by then, so entries close on that too, and the sweep drops them.
      open: new Queued((e) => !e.item.sent && !e.round.settled),
      forwards: new Queued((e) => !e.item.sent),
      reads: new Queued((e) => !e.item.sent && e.tally !== null && e.tally.state === 'pending'),
      contended: new Map(),
    };
  }

  get stats(): CoordinatorStats {
    return this.#shared.stats;
  }

  get #locks(): KeyLocks {
    return this.#shared.locks;
  }

  /** The same coordinator with other consistency levels, for one connection. */
  withQuorum(q: Partial<Quorum>): Coordinator {
    return new Coordinator(this.ports, this.options, { r: q.r ?? this.quorum.r, w: q.w ?? this.quorum.w }, this.#shared);
  }

  get levels(): Quorum {
    return this.quorum;
  }

  owners(key: Buffer): readonly NodeId[] {
    return this.ports.ring().preferenceList(key);
  }

  /** The node that should coordinate a write: this one if it owns the key, else the first owner that is up. */
  writeCoordinator(key: Buffer, firstOwnerOnly: boolean): NodeId | undefined {
    const owners = this.owners(key);
    const self = this.ports.self;
    if (!firstOwnerOnly && owners.includes(self)) return self;
    for (const o of owners) if (o === self || this.ports.isUp(o)) return o;
    return undefined;
  }

  // --- reads ------------------------------------------------------------------

  get(key: Buffer): Promise<Entry | undefined> {
    this.stats.reads++;
    return this.#read(key, this.quorum.r, false).then((obj) => toEntry(resolve(obj, this.ports.clock.now())));
  }

  exists(keys: Buffer[]): Promise<number> {
    const now = this.ports.clock.now();
    return Promise.all(keys.map((k) => this.#read(k, this.quorum.r, true))).then(
      (objs) => objs.filter((o) => resolve(o, now) !== undefined).length,
    );
  }

  /**
   * Asks every owner of key for its copy, resolves with the merge of the first
   * `r` answers; a full read then repairs owners whose copy was behind.
   *
   * GETs of one key share a read. A full read (a GET's) whose item is still
   * queued for every other owner, with the same R and owners, is joined
   * instead of asked again: the joiner reads this node's copy afresh and
   * merges it into the shared result. So each of its R answers was taken
   * after it began (the other owners are asked when the item goes out), and
   * it sees every write acknowledged before it began, as a read of its own
   * would; a hot key then costs the owners one item per turn, not one per GET.
   * When no write has changed this node's replica since the shared read took
   * its copy (replica.changes), that copy is still the current one, and the
   * joiner does not read it again.
   */
  #read(key: Buffer, r: number, versionOnly: boolean, forWrite = false): Promise<VersionedObject> {
    const owners = this.owners(key);
    if (owners.length === 0) return Promise.reject(new NoOwnerError('the key (the ring is empty)'));
    if (versionOnly || forWrite) return this.#readRound(key, owners, r, versionOnly, forWrite, null);
    const name = key.toString('latin1');
    const open = this.#shared.reads.get(name);
    if (open !== undefined && open.need === Math.min(r, owners.length) && sameNodes(owners, open.owners)) {
      let fresh: Maybe<VersionedObject | null> = null;
      if (owners.includes(this.ports.self) && this.ports.replica.changes !== open.localChanges) {
        try {
          fresh = this.ports.replica.read(key);
        } catch {
          return this.#readRound(key, owners, r, versionOnly, forWrite, null); // this node's copy fails: a read of its own
        }
      }
      this.stats.readsCombined++;
      if (fresh === null) return open.result!;
      return open.result!.then((shared) => then(fresh, (mine) => (mine === null || mine === shared || equalObjects(mine, shared) ? shared : merge(shared, mine))));
    }
    return this.#readRound(key, owners, r, versionOnly, forWrite, name);
  }

  /** #read's own round: `openAs` (the key, for a GET) lets later GETs share it. */
  #readRound(key: Buffer, owners: readonly NodeId[], r: number, versionOnly: boolean, forWrite: boolean, openAs: string | null): Promise<VersionedObject> {
    const tally = new QuorumTally<Buffer | null>(owners, Math.min(r, owners.length));
    const localChanges = this.ports.replica.changes;
    // One item for every other owner; the transport batches a turn's reads per owner (readBatch).
    const item: ReadItem = { key, versionOnly, sent: false };
    for (const node of owners) {
      if (node === this.ports.self) {
        try {
          const local = this.#localCopy(key, versionOnly);
          if (local instanceof Promise) {
            local.then(
              (o) => tally.answer(node, o),
              (e: Error) => tally.fail(node, e.message),
            );
          } else tally.answer(node, local);
        } catch (e) {
          tally.fail(node, (e as Error).message);
        }
        continue;
      }
      this.ports.transport.sendRead(node, item, tally, this.options.requestTimeoutMs);
    }
    // (Not an async function: this is every GET's path, and each await costs.)
    const answered = (): VersionedObject => {
      const owned = owners.includes(this.ports.self);
      const merged = this.#merged(key, tally.answers, owned);
      if (!versionOnly) tally.whenSettled(() => this.#repair(key, tally.answers, owned));
      this.#observe(newestHlc(merged));
      return merged;
    };
    const entry: OpenRead | null = openAs === null ? null : { item, owners, need: tally.need, tally, result: null, localChanges };
    const result = tally.decided().then((state) => {
      if (entry !== null) entry.tally = entry.result = null; // closed: let the answers go
      if (state !== 'failed') return answered();
      // A write's context is best effort: with fewer owners reachable it versions over what did
      // answer (a write's availability is decided by its W acks, as in Dynamo). Causality with a
      // write that only unreachable owners hold is then lost; the two become siblings.
      if (!forWrite) {
        this.stats.quorumFailures++;
        throw new QuorumError('read', tally.describe(), false);
      }
      return tally.allSettled().then(answered);
    });
    if (entry !== null) {
      entry.result = result;
      this.#shared.reads.set(openAs!, entry, 0);
    }
    return result;
  }

  /**
   * This node's copy of key as a read is answered with: as stored, or
   * without values for a version-only read (a write's context needs none).
   * The same form from every owner, so that equal copies compare equal.
   */
  #localCopy(key: Buffer, versionOnly: boolean): Maybe<Buffer | null> {
    if (!versionOnly) return this.ports.replica.readEncoded(key);
    return then(this.ports.replica.read(key), (o) => (o === null ? null : encodeObject(withoutValues(o))));
  }

  /**
   * The merge of the copies of key that owners answered (encodings; null:
   * none). They usually agree, byte for byte, and then one is decoded and
   * nothing merged: equal objects have equal encodings (protocol/object.ts).
   * Only a key this node `owned` goes through the replica's cache of decoded
   * objects (others would push its own hot keys out).
   */
  #merged(key: Buffer, copies: ReadonlyMap<NodeId, Buffer | null>, owned: boolean): VersionedObject {
    const one = agreed(copies.values());
    if (one === null) return emptyObject();
    if (one !== undefined) return owned ? this.ports.replica.decode(key, one) : decodeCheckedObject(one, objectLimits);
    let out: VersionedObject | null = null;
    for (const copy of copies.values()) {
      if (copy === null) continue;
      const o = decodeCheckedObject(copy, objectLimits);
      out = out === null ? o : merge(out, o);
    }
    return out!;
  }

  /** Read repair: every owner that answered with less than the merge of all answers gets the merge. */
  #repair(key: Buffer, answers: ReadonlyMap<NodeId, Buffer | null>, owned: boolean): void {
    if (agreed(answers.values()) !== undefined) return; // the same copy everywhere (or none anywhere)
    const all = this.#merged(key, answers, owned);
    if (all.siblings.length === 0 && all.vv.size === 0) return;
    const encoded = encodeObject(all);
    for (const [node, copy] of answers) {
      if (copy !== null && copy.equals(encoded)) continue;
      this.stats.readRepairs++;
      if (node === this.ports.self) void Promise.resolve(this.ports.replica.apply(key, encoded, all)).catch(() => {});
      else this.ports.transport.sendWrite(node, { key, encoded, report: false }, ignoreWrite, this.options.requestTimeoutMs);
    }
  }

  // --- writes -----------------------------------------------------------------

  set(key: Buffer, value: Buffer, expiresAtMs: number): Promise<void> {
    return this.#writeOrForward(key, 'set', value, expiresAtMs).then(() => undefined);
  }

  delete(keys: Buffer[]): Promise<number> {
    return Promise.all(keys.map((k) => this.#writeOrForward(k, 'delete', null, 0))).then((ns) => ns.reduce((a, b) => a + b, 0));
  }

  /**
   * A blind write (SET) or delete, coordinated here if this node owns the key,
   * else by its first live owner; an owner that refuses the connection (dead
   * before the detector noticed) passes the turn to the next. A SET of a key
   * this node found contended goes to the first live owner too (see
   * #noteContended), unless that is this node.
   */
  #writeOrForward(key: Buffer, op: 'set' | 'delete', value: Buffer | null, expiresAtMs: number): Promise<number> {
    const self = this.ports.self;
    const owners = this.owners(key);
    if (owners.includes(self)) {
      if (op !== 'set' || this.#shared.contended.size === 0 || !this.#isContended(key)) return this.coordinate(key, op, value, expiresAtMs);
      const ahead: NodeId[] = [];
      for (const o of owners) {
        if (o === self) break;
        if (this.ports.isUp(o)) ahead.push(o);
      }
      if (ahead.length === 0) return this.coordinate(key, op, value, expiresAtMs);
      this.stats.contendedForwards++;
      return this.#forward(ahead, key, op, value, expiresAtMs, true);
    }
    const line = owners.filter((o) => this.ports.isUp(o));
    if (line.length === 0) return Promise.reject(new NoOwnerError('the key'));
    this.stats.forwardedWrites++;
    return this.#forward(line, key, op, value, expiresAtMs, false);
  }

  /**
   * Asks the owners in `line`, in order, to coordinate a write; when all
   * refuse the connection, `local` (if set) coordinates it here. The item
   * travels in the turn's coordinateBatch to that owner. A SET of a key
   * whose forwarded SET is still queued for the same owner with the same
   * levels rides along it, as SETs do on an owner (#versionSet): its value
   * takes the queued one's place and it shares that SET's outcome. Such SETs
   * were in progress at once and take effect in arrival order, so the one
   * replaced was overwritten, never lost; the owner gets one item per key
   * and turn instead of one per SET.
   */
  #forward(line: NodeId[], key: Buffer, op: 'set' | 'delete', value: Buffer | null, expiresAtMs: number, local: boolean): Promise<number> {
    const { r, w } = this.quorum;
    const name = op === 'set' ? key.toString('latin1') : null;
    if (name !== null) {
      const open = this.#shared.forwards.get(name);
      if (open !== undefined && open.to === line[0] && open.item.op === 'set' && open.item.r === r && open.item.w === w && value!.length <= open.item.value!.length + rideAlongSlackBytes) {
        this.stats.forwardsCombined++;
        open.item.value = value;
        open.item.expiresAtMs = expiresAtMs;
        return open.outcome;
      }
    }
    const item: CoordinateItem = { op, key, value, expiresAtMs, r, w, sent: false };
    const attempt = (i: number, item: CoordinateItem): Promise<number> =>
      this.#coordinateAt(line[i]!, item).catch((err: Error & { code?: string }) => {
        if (err.code !== 'UNREACHABLE') throw err;
        // The item as it is now: a SET that rode along has its value in it.
        const again: CoordinateItem = { ...item, sent: false };
        item.value = null; // the closed entry keeps no value
        if (i + 1 < line.length) return attempt(i + 1, again);
        if (local) return this.coordinate(key, again.op, again.value, again.expiresAtMs);
        throw err;
      });
    const outcome = attempt(0, item);
    if (name !== null) this.#shared.forwards.set(name, { item, to: line[0]!, outcome }, value!.length);
    return outcome;
  }

  /** One write for `node` to coordinate, in the turn's coordinateBatch to it. */
  #coordinateAt(node: NodeId, item: CoordinateItem): Promise<number> {
    return new Promise((resolve, reject) =>
      this.ports.transport.sendCoordinate(
        node,
        item,
        {
          answer: (_node, n) => {
            item.sent = true;
            item.value = null; // done: the closed entry keeps no value
            resolve(n);
          },
          // With a code the request itself failed (the transport's error); without, the owner's reply text.
          // Either way the item is no longer queued (it may have failed before going out): nothing may ride it.
          fail: (_node, reason, code) => {
            item.sent = true;
            reject(code === undefined ? new PeerReplyError(reason) : Object.assign(new PeerReplyError(`TRYAGAIN peer request failed: ${reason}`), { code }));
          },
        },
        2 * this.options.requestTimeoutMs + forwardMarginMs,
      ),
    );
  }

  /**
   * A SET this node coordinated missed a concurrent version of the key held
   * by other owners: several nodes are writing it at once, and each such SET
   * costs a second round. For contendedForMs the SETs of that key go to its
   * first live owner, which then versions them all: they combine there
   * (#versionSet) and need no second round. Keys that are not contended are
   * never noted, so they keep the one-hop path.
   */
  #noteContended(key: Buffer): void {
    const owners = this.owners(key);
    if (owners[0] === this.ports.self) return; // the first owner keeps coordinating
    const contended = this.#shared.contended;
    const now = this.ports.clock.now();
    if (contended.size >= contendedKeysMax) for (const [name, until] of contended) if (until <= now) contended.delete(name);
    if (contended.size < contendedKeysMax) contended.set(key.toString('latin1'), now + contendedForMs);
  }

  #isContended(key: Buffer): boolean {
    const contended = this.#shared.contended;
    const name = key.toString('latin1');
    const until = contended.get(name);
    if (until === undefined) return false;
    if (until > this.ports.clock.now()) return true;
    contended.delete(name);
    return false;
  }

  /**
   * Coordinates a SET (returns 1) or a DEL (returns 1 if the key existed) on
   * this node.
   *
   * A SET on an owner goes out in one round: the new version is built over the
   * local copy alone and sent to every owner, and each owner says whether the
   * version accounted for its copy (its context covered the owner's, see
   * accountsFor). The write is done once W owners have it durably AND at least
   * N-W+1 owners (this one included) said "accounted for": N-W+1 intersects
   * every set of W that acknowledged an earlier write, so this version
   * supersedes every write acknowledged before it, as a context read first
   * would have ensured. If an owner held something the version did not account
   * for (a write coordinated elsewhere, or this node's copy was behind), the
   * coordinator versions again over the vvs those owners reported, which
   * supersedes that version and everything they held, and waits for W acks of
   * that one: the slow path costs one more round, as the context read did.
   *
   * A DEL (whose answer depends on the quorum's values) and a SET by a node
   * that does not hold the key read the causal context from the owners first.
   * Either way the per-key lock covers only local work (read the local copy,
   * build the version, apply it), so writes to a hot key do not queue behind
   * network round trips.
   */
  coordinate(key: Buffer, op: 'set' | 'delete', value: Buffer | null, expiresAtMs: number): Promise<number> {
    this.stats.writes++;
    try {
      const owners = this.owners(key);
      if (op === 'set' && owners.includes(this.ports.self)) return this.#setAsOwner(key, owners.length, { value: value!, expiresAtMs });
      return this.#writeWithContext(key, op, value, expiresAtMs);
    } catch (e) {
      return Promise.reject(e as Error); // callers (MSET's loop) expect a rejection, as from the async function it was
    }
  }

  /** A SET on an owner (see coordinate): the hot path of writes, so no async function of its own. */
  #setAsOwner(key: Buffer, n: number, write: Entry): Promise<number> {
    const { w } = this.quorum;
    const need = n - Math.min(w, n) + 1;
    const first = this.#locks.runNow([key], () =>
      then(this.ports.replica.readEncoded(key), (local) => this.#versionSet(key, this.#nextEncoded(local, write), w, need)),
    );
    return new Promise((resolve, reject) =>
      whenDone(first, reject, (err, unaccounted) => {
        if (err !== null) reject(err);
        else if (unaccounted.length === 0) resolve(1);
        else {
          this.#noteContended(key);
          resolve(this.#setAgain(key, write, w, unaccounted));
        }
      }),
    );
  }

  /** The slow path of #setAsOwner: version again over the vvs of the owners the first version missed. */
  #setAgain(key: Buffer, write: Entry, w: number, unaccounted: VersionVector[]): Promise<number> {
    this.stats.writeRetries++;
    const context: VersionedObject = { vv: unaccounted.reduce(mergeVV), siblings: [] };
    const second = this.#locks.runNow([key], () =>
      then(this.ports.replica.read(key), (local) => this.#versionSet(key, encodeObject(this.#nextVersion(local === null ? context : merge(local, context), write)), w, 0)),
    );
    return new Promise((resolve, reject) => whenDone(second, reject, (err) => (err !== null ? reject(err) : resolve(1))));
  }

  /**
   * The version a SET writes over `known` (an encoding; null: no copy here),
   * built on the bytes (nextVersionEncoded): a plain SET decodes nothing.
   */
  #nextEncoded(known: Buffer | null, write: Entry): Buffer {
    if (known !== null) this.#observe(encodedMaxHlc(known));
    return nextVersionEncoded(known, this.ports.self, this.ports.hlc.now(), write.value, write.expiresAtMs);
  }

  /** Moves this node's HLC past the newest write seen in a copy (0: none), so a write stamped next orders after it. */
  #observe(hlc: number): void {
    if (hlc > 0) this.ports.hlc.observe(hlc);
  }

  /**
   * Sends a SET's new version (`encoded`, see #nextEncoded) to the other owners (#version),
   * unless a SET of the same key earlier in this turn still has its version
   * queued for them (not yet on the wire) with the same levels: then this one
   * rides along. Its version, built over the local copy that already holds
   * the queued one, takes the queued one's place, so the owners get only the
   * newer; the SET is done when that round is and its own local write is
   * durable. SETs in progress at once may take effect in any order, and this
   * order is the one they arrived in, so a SET acknowledged this way was
   * overwritten by a newer one, never lost. A hot key then costs the owners
   * one item per turn instead of one per SET.
   */
  #versionSet(key: Buffer, encoded: Buffer, w: number, contextNeed: number): Maybe<Pending> {
    const name = key.toString('latin1');
    const open = this.#shared.open.get(name);
    if (
      open !== undefined &&
      open.item.report === contextNeed > 0 &&
      open.round.w === Math.min(w, open.round.owners.length) &&
      encoded.length <= open.item.encoded.length + rideAlongSlackBytes &&
      sameNodes(this.owners(key), open.round.owners)
    ) {
      return this.#rideAlong(key, open, encoded);
    }
    return this.#version(key, encoded, w, contextNeed, name);
  }

  /** See #versionSet: `encoded` replaces the version queued in `open` for every other owner. */
  #rideAlong(key: Buffer, open: OpenSet, encoded: Buffer): Maybe<Pending> {
    this.stats.writesCombined++;
    open.item.encoded = encoded;
    const rider = new Rider(open.round, this.#writeFailed);
    return then(
      this.#applyHere(key, encoded, (err) => rider.local(err)),
      () => rider,
    );
  }

  /** A DEL, or a SET by a node that does not hold the key: read the causal context first (see coordinate). */
  async #writeWithContext(key: Buffer, op: 'set' | 'delete', value: Buffer | null, expiresAtMs: number): Promise<number> {
    const { w } = this.quorum;
    const context = await this.#read(key, this.#contextNeed(key, false), true, true);
    const outcome = await this.#locks.run([key], async () => {
      const local = this.#isOwner(key) ? await this.ports.replica.read(key) : null;
      const known = local === null ? context : merge(local, context);
      if (op === 'delete' && resolve(known, this.ports.clock.now()) === undefined) return undefined;
      // Awaiting #version waits for the local apply only (the next write here must see it), not the acks.
      return this.#version(key, encodeObject(this.#nextVersion(known, op === 'set' ? { value: value!, expiresAtMs } : null)), w);
    });
    if (outcome === undefined) return 0;
    await outcome.acked;
    return 1;
  }

  update<T>(keys: Buffer[], fn: (current: Array<Entry | undefined>) => Update<T>): Promise<T> {
    this.stats.writes++;
    return this.#update(keys, fn);
  }

  #isOwner(key: Buffer): boolean {
    return this.owners(key).includes(this.ports.self);
  }

  /** A write round that missed W: counted, and the error its client gets. */
  readonly #writeFailed = (detail: string): Error => {
    this.stats.quorumFailures++;
    return new QuorumError('write', detail, true);
  };

  /** Answers a write's context read needs: N-W+1 intersect every set of W that acknowledged an earlier write. */
  #contextNeed(key: Buffer, withValues: boolean): number {
    const n = this.owners(key).length;
    const { r, w } = this.quorum;
    return Math.max(withValues ? r : 1, n - Math.min(w, n) + 1);
  }

  /**
   * A read-modify-write (INCR, APPEND, SET NX, MSETNX...): under this node's
   * locks on its keys, read the current values from the quorum, decide,
   * version and apply the writes locally; the W acks are awaited after the
   * locks are released.
   */
  async #update<T>(keys: Buffer[], decide: (current: Array<Entry | undefined>) => Update<T>): Promise<T> {
    const { w } = this.quorum;
    const pending: Array<Promise<unknown>> = [];
    const result = await this.#locks.run(keys, async () => {
      const contexts = await Promise.all(keys.map((k) => this.#read(k, this.#contextNeed(k, true), false)));
      const now = this.ports.clock.now();
      const { writes, result } = decide(contexts.map((c) => toEntry(resolve(c, now))));
      if (writes) {
        for (let i = 0; i < keys.length; i++) {
          const wr = writes[i];
          if (wr === undefined) continue;
          const local = this.#isOwner(keys[i]!) ? await this.ports.replica.read(keys[i]!) : null;
          const known = local === null ? contexts[i]! : merge(local, contexts[i]!);
          pending.push((await this.#version(keys[i]!, encodeObject(this.#nextVersion(known, wr)), w)).acked);
        }
      }
      return result;
    });
    await Promise.all(pending);
    return result;
  }

  /**
   * Sends a new version of one key (#nextVersion over the local copy merged
   * with the quorum's context: it holds every dot this node issued for the
   * key, so the new counter is above all of them) to the other owners and
   * applies it locally. Returns once applied here (synchronously when the
   * local store answers at once), with the write round for the W wait.
   * `openAs` (the key, for a SET) lets later SETs ride along (#versionSet).
   *
   * With `contextNeed` > 0, the round also waits until that many owners (this
   * one included: the version was built over its copy) answered, and resolves
   * with the version vectors of the owners whose copy the version did not
   * account for (empty: it supersedes everything they held). Answers beyond
   * the W acks are best effort, as a context read is: with fewer owners
   * reachable, the write stands on its W acks.
   */
  #version(key: Buffer, encoded: Buffer, w: number, contextNeed = 0, openAs: string | null = null): Maybe<WriteRound> {
    const self = this.ports.self;
    const owners = this.owners(key);
    const wNeed = Math.min(w, owners.length);
    // On failure the round waits for every owner (the local fsync too), so the error counts them all.
    const tally = new WriteRound(owners, wNeed, Math.max(wNeed, Math.min(contextNeed, owners.length)), this.#writeFailed);
    // One item for every other owner; the transport batches a turn's writes per owner (writeBatch).
    const item: WriteItem = { key, encoded, report: contextNeed > 0, sent: false };
    for (const node of owners) {
      if (node !== self) this.ports.transport.sendWrite(node, item, tally, this.options.requestTimeoutMs);
    }
    if (openAs !== null) this.#shared.open.set(openAs, { item, round: tally }, item.key.length + item.encoded.length);
    if (!owners.includes(self)) return tally;
    return then(
      this.#applyHere(key, encoded, (err) => (err === null ? tally.answer(self, null) : tally.fail(self, err))),
      () => tally,
    );
  }

  /** The new version of a key over `known` (its siblings and context), with this node's next dot. */
  #nextVersion(known: VersionedObject, write: Entry | null): VersionedObject {
    this.#observe(newestHlc(known));
    return update(
      known,
      known.vv,
      this.ports.self,
      this.ports.hlc.now(),
      write === null ? null : write.value,
      write === null ? 0 : write.expiresAtMs,
      this.options.siblingsMax,
    );
  }

  /** Applies a version to the local copy; `heard` gets null once it is durable, or why it failed. Waits only for the apply. */
  #applyHere(key: Buffer, encoded: Buffer, heard: (err: string | null) => void): Maybe<void> {
    const durable = (): void => this.ports.replica.whenDurable((err) => heard(err ? err.message : null));
    try {
      const applied = this.ports.replica.apply(key, encoded);
      if (!isPromise(applied)) return durable();
      return applied.then(durable, (e: Error) => heard(e.message));
    } catch (e) {
      heard((e as Error).message);
    }
  }

  // --- the whole keyspace -----------------------------------------------------------

  /**
   * A cluster-wide SCAN walks the ring's nodes in id order; from each it keeps
   * the keys it is responsible for (the first owner that is up), so a key is
   * returned once even though N nodes hold it.
   */
  async scan(cursor: string, count: number): Promise<ScanPage> {
    const nodes = this.ports.ring().nodes;
    let c = Number(cursor);
    let index = c % scanNodeBits;
    let local = Math.floor(c / scanNodeBits);
    const keys: Buffer[] = [];
    while (index < nodes.length && keys.length < count) {
      const node = nodes[index]!;
      let page: { cursor: number; keys: Buffer[] } = { cursor: 0, keys: [] };
      if (node === this.ports.self || this.ports.isUp(node)) {
        page = await this.#scanNode(node, local, count);
        for (const k of page.keys) if (this.#responsible(k) === node) keys.push(k);
      }
      if (page.cursor === 0) {
        index++;
        local = 0;
      } else {
        local = page.cursor;
      }
    }
    c = index >= nodes.length ? 0 : local * scanNodeBits + index;
    return { cursor: String(c), keys };
  }

  /** The node that answers for a key in SCAN / DBSIZE: its first owner that is up. */
  #responsible(key: Buffer): NodeId | undefined {
    for (const o of this.owners(key)) if (o === this.ports.self || this.ports.isUp(o)) return o;
    return undefined;
  }

  #scanNode(node: NodeId, cursor: number, count: number): Promise<{ cursor: number; keys: Buffer[] }> {
    if (node === this.ports.self) return this.scanLocal(cursor, count);
    return this.#ask(node, { type: 'scan', cursor, count }).then((m) => {
      if (m.type === 'scanPage') return { cursor: m.cursor, keys: m.keys };
      throw new PeerReplyError(`ERR unexpected answer ${m.type} to scan`);
    });
  }

  /** One step over this node's keys, without the deleted and expired ones. */
  async scanLocal(cursor: number, count: number): Promise<{ cursor: number; keys: Buffer[] }> {
    const page = this.ports.replica.scan(cursor, count);
    const now = this.ports.clock.now();
    const objs = await Promise.all(page.keys.map((k) => this.ports.replica.read(k)));
    return { cursor: page.cursor, keys: page.keys.filter((_, i) => objs[i] !== null && resolve(objs[i]!, now) !== undefined) };
  }

  /** Live keys this node is responsible for (DBSIZE adds these up over the cluster). */
  async countLocal(): Promise<number> {
    const now = this.ports.clock.now();
    let n = 0;
    for (const k of this.ports.replica.keys()) {
      if (this.#responsible(k) !== this.ports.self) continue;
      const obj = await this.ports.replica.read(k);
      if (obj !== null && resolve(obj, now) !== undefined) n++;
    }
    return n;
  }

  async size(): Promise<number> {
    const counts = await Promise.all(
      this.ports.ring().nodes.map((node) => {
        if (node === this.ports.self) return this.countLocal();
        if (!this.ports.isUp(node)) return 0;
        return this.#ask(node, { type: 'dbsize' }).then((m) => (m.type === 'count' ? m.n : 0));
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  async randomKey(): Promise<Buffer | undefined> {
    const nodes = this.ports.ring().nodes;
    // A step of SCAN from a random node; a few tries cover an unlucky empty node.
    for (let attempt = 0; attempt < 8 && nodes.length > 0; attempt++) {
      const index = randomInt(this.ports.random, nodes.length);
      const page = await this.scan(String(index), 20);
      if (page.keys.length > 0) return page.keys[randomInt(this.ports.random, page.keys.length)];
    }
    const first = await this.scan('0', 100);
    return first.keys[0];
  }

  /** FLUSHALL: every node clears its store; fails unless every member did. */
  async flushAll(): Promise<void> {
    const results = await Promise.allSettled(
      this.ports.ring().nodes.map((node) =>
        node === this.ports.self ? this.ports.replica.clear() : this.#ask(node, { type: 'flushAll' }).then(() => undefined),
      ),
    );
    const failed = results.filter((r) => r.status === 'rejected').length;
    if (failed > 0) throw new QuorumError('write', `FLUSHALL reached ${results.length - failed} of ${results.length} nodes`, true);
  }

  /**
   * Every write this coordinator resolved was already durable on W owners
   * (that is what resolving waits for), so there is nothing more to wait for
   * here. Waiting for this node's own store as well, as a single node does,
   * made every reply wait for the local disk even when two other owners had
   * acknowledged, and put each local fsync stall on every client's latency.
   */
  whenDurable(cb: (err: Error | null) => void): void {
    queueMicrotask(() => cb(null));
  }

  /** See whenDurable: the server skips the wait. */
  readonly writesResolveDurable = true;

  // --- the replica side: requests from other coordinators ------------------------

  /**
   * Answers the peer messages addressed to the data path; undefined for
   * others. `errorText` turns a write's failure into the reply its client
   * gets (the server's mapping, for coordinated writes).
   */
  handle(msg: PeerMessage, errorText: (e: Error) => string = (e) => e.message): Promise<PeerMessage> | PeerMessage | undefined {
    switch (msg.type) {
      case 'readBatch':
        return this.#readItems(msg.items);
      case 'writeBatch':
        return this.#applyWrites(msg.items);
      case 'coordinateBatch':
        return this.#coordinateItems(msg.items, errorText);
      case 'scan':
        return this.scanLocal(msg.cursor, msg.count).then((p): PeerMessage => ({ type: 'scanPage', cursor: p.cursor, keys: p.keys }));
      case 'dbsize':
        return this.countLocal().then((n): PeerMessage => ({ type: 'count', n }));
      case 'flushAll':
        return this.ports.replica.clear().then((): PeerMessage => ({ type: 'ack' }));
      default:
        return undefined;
    }
  }

  /**
   * The owner side of a coordinateBatch: coordinates each write, in order
   * (so SETs of one key combine here as they do from clients), and answers
   * once all are done, with each item's count or error.
   */
  #coordinateItems(items: CoordinateItem[], errorText: (e: Error) => string): Promise<PeerMessage> {
    const results: CoordinateResult[] = new Array<CoordinateResult>(items.length).fill(0);
    let view: Coordinator = this;
    const waits = items.map((item, i) => {
      if (item.r !== view.quorum.r || item.w !== view.quorum.w) view = this.withQuorum({ r: item.r, w: item.w });
      return view.coordinate(item.key, item.op, item.value, item.expiresAtMs).then(
        (n) => void (results[i] = n),
        (e: Error) => void (results[i] = { error: errorText(e) }),
      );
    });
    return Promise.all(waits).then((): PeerMessage => ({ type: 'coordinated', results }));
  }

  /**
   * The replica side of a readBatch: each item's local copy, in order; as
   * stored (not decoded) unless it is version-only, whose values are dropped.
   */
  #readItems(items: ReadItem[]): PeerMessage | Promise<PeerMessage> {
    const results: ReadResult[] = new Array<ReadResult>(items.length).fill(null);
    const waits = eachItem<ReadItem, ReadResult>(
      items,
      (item) => this.#localCopy(item.key, item.versionOnly),
      (i, o) => (results[i] = o),
      (i, error) => (results[i] = { error }),
    );
    const answer = (): PeerMessage => ({ type: 'objects', results: this.#fitAnswer(results) });
    return waits === null ? answer() : waits.then(answer);
  }

  /**
   * Keeps a readBatch answer under readAnswerBytesMax (the values of a batch
   * of small keys can be large): the objects past it are left out, marked
   * `again`, and the coordinator asks for each alone. The first always stays,
   * so every request makes progress.
   */
  #fitAnswer(results: ReadResult[]): ReadResult[] {
    let bytes = 0;
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (r === null || !Buffer.isBuffer(r)) continue;
      bytes += r.length;
      if (i > 0 && bytes > this.options.readAnswerBytesMax) results[i] = { again: true };
    }
    return results;
  }

  /**
   * The replica side of a writeBatch: merges each version into the local copy,
   * in order, and answers once they are all durable, with each item's result
   * (a reported write says whether it accounted for the copy it found). An
   * item that fails (a full disk) fails alone.
   */
  #applyWrites(items: WriteItem[]): Promise<PeerMessage> {
    const results: WriteResult[] = new Array<WriteResult>(items.length).fill(null);
    const waits = eachItem(
      items,
      (item) => this.ports.replica.apply(item.key, item.encoded),
      (i, unaccounted) => {
        if (unaccounted !== null && items[i]!.report) results[i] = { seen: unaccounted };
      },
      (i, error) => (results[i] = { error }),
    );
    const durable = (): Promise<PeerMessage> =>
      new Promise((resolveAnswer) =>
        this.ports.replica.whenDurable((err) => {
          if (err) for (let i = 0; i < results.length; i++) if (results[i] === null || 'seen' in results[i]!) results[i] = { error: err.message };
          resolveAnswer({ type: 'writtenBatch', results });
        }),
      );
    return waits === null ? durable() : waits.then(durable);
  }

  /** A request to a peer; an `error` answer becomes a rejection carrying the peer's text. */
  #ask(node: NodeId, msg: PeerMessage): Promise<PeerMessage> {
    return this.ports.transport.request(node, msg, this.options.requestTimeoutMs).then((m) => {
      if (m.type === 'error') throw new PeerReplyError(m.message);
      return m;
    });
  }
}

/**
 * Runs `op` on each item in order and reports each outcome by index; returns
 * null when every op answered at once, else a Promise settled when all have.
 * A throw or rejection fails that item alone.
 */
function eachItem<I, T>(
  items: readonly I[],
  op: (item: I) => T | Promise<T>,
  done: (i: number, value: T) => void,
  failed: (i: number, error: string) => void,
): Promise<void> | null {
  let waits: Array<Promise<void>> | null = null;
  for (let i = 0; i < items.length; i++) {
    try {
      const v = op(items[i]!);
      if (!(v instanceof Promise)) done(i, v);
      else {
        (waits ??= []).push(
          v.then(
            (x) => done(i, x),
            (e: Error) => failed(i, e.message),
          ),
        );
      }
    } catch (e) {
      failed(i, (e as Error).message);
    }
  }
  return waits === null ? null : Promise.all(waits).then(() => undefined);
}

/** The one copy all of `copies` are (null: none has one), or undefined when they differ. */
function agreed(copies: Iterable<Buffer | null>): Buffer | null | undefined {
  let first: Buffer | null | undefined;
  for (const c of copies) {
    if (first === undefined) first = c;
    else if (c === null || first === null ? c !== first : c !== first && !c.equals(first)) return undefined;
  }
  return first ?? null;
}

/**
 * Entries whose item is still queued for the wire, by key (latin1): while
 * `isOpen` (the item neither sent nor failed), a later operation on the key
 * may join it. Closed entries are swept once the map holds sweepAt entries
 * or queuedSweepBytes of what they hold, rather than each removed by a
 * listener of its own: on a path where every SET is of another key, that
 * listener was most of what riding along cost.
 */
class Queued<E> {
  readonly #entries = new Map<string, { entry: E; bytes: number }>();
  #sweepAt = queuedSweepAt;
  #bytes = 0;
  #sweepBytes = queuedSweepBytes;

  constructor(private readonly isOpen: (e: E) => boolean) {}

  /** The key's entry, if still open. */
  get(name: string): E | undefined {
    const e = this.#entries.get(name);
    return e === undefined || !this.isOpen(e.entry) ? undefined : e.entry;
  }

  /** Notes an entry holding `bytes` (in place of the key's last one); a closed one costs its place until a sweep. */
  set(name: string, entry: E, bytes: number): void {
    const entries = this.#entries;
    if (entries.size >= this.#sweepAt || this.#bytes >= this.#sweepBytes) {
      this.#bytes = 0;
      for (const [n, e] of entries) {
        if (!this.isOpen(e.entry)) entries.delete(n);
        else this.#bytes += e.bytes;
      }
      // A turn with more writes than that (a deep pipeline) would sweep at every one: wait for twice what is left.
      this.#sweepAt = Math.max(queuedSweepAt, 2 * entries.size);
      this.#sweepBytes = Math.max(queuedSweepBytes, 2 * this.#bytes);
    }
    entries.set(name, { entry, bytes });
    this.#bytes += bytes;
  }
}

/**
 * A SET that rode along another's round (see Coordinator #versionSet): done
 * when that round is, which counts the acks of the owners that got this SET's
 * version, and this node's own write of it is durable (the round counted the
 * write it replaced).
 */
class Rider implements Pending {
  #waiting = 2;
  #err: Error | null = null;
  #unaccounted: VersionVector[] = [];
  #onDone: DoneListener | null = null;

  constructor(
    round: WriteRound,
    private readonly failed: (detail: string) => Error,
  ) {
    round.whenDone((err, unaccounted) => {
      this.#err ??= err;
      this.#unaccounted = unaccounted;
      this.#one();
    });
  }

  /** This node's write of the version is durable (null) or failed. */
  local(err: string | null): void {
    if (err !== null) this.#err ??= this.failed(`this node's write failed: ${err}`);
    this.#one();
  }

  whenDone(fn: DoneListener): void {
    if (this.#waiting === 0) fn(this.#err, this.#unaccounted);
    else this.#onDone = fn;
  }

  #one(): void {
    if (--this.#waiting === 0) this.#onDone?.(this.#err, this.#unaccounted);
  }
}

/** Calls fn when a write (once it has started: `p` may still be applying here) is done; `reject` if it could not start. */
function whenDone(p: Maybe<Pending>, reject: (e: Error) => void, fn: DoneListener): void {
  if (isPromise(p)) p.then((w) => w.whenDone(fn), reject);
  else p.whenDone(fn);
}

function sameNodes(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
