// A node's replica store in cluster mode: the segment store holding one
// encoded versioned object (protocol/object.ts) per key. Incoming versions are
// merged (DVV sync) into the local copy under a per-key lock, so concurrent
// writes from different coordinators are both kept as siblings, never lost.
// The common case, a new write over the copy, is recognised on the bytes
// (supersedesEncoded) and stored as it came, and reads for other nodes are
// answered with the stored bytes (readEncoded): a replica decodes only to merge.
//
// Decoding an object on every access was a large part of a hot key's cost, so
// the decoded form of recently stored or read objects is kept next to the
// bytes it was decoded from (or encoded to). A read still asks the store and
// uses the decoded form only when the store returns those very bytes (same
// buffer, or equal content): the store stays the one source of truth, whatever
// else changes it (expiry, FLUSHALL, a rewrite of the storage layer).

import * as assert from 'node:assert';
import { checkObject, decodeCheckedObject, decodeObject, encodedObjectExpiry, encodeObject, objectExpiry, supersedesEncoded } from '../../protocol/object.js';
import { viewBytesMin } from '../../protocol/peer.js';
import type { ReplicaStore } from '../cluster/ports.js';
import type { VersionedObject, VersionVector } from '../cluster/types.js';
import { accountsFor, equalObjects, merge, objectLimits } from '../cluster/version.js';
import { decodedObjectBytesMax, decodedObjectsMax } from '../constants.js';
import type { Logger } from '../log.js';
import type { SegmentStore } from '../storage/store.js';
import { type Entry, isPromise, then } from './keyvalue.js';
import { KeyLocks } from './locks.js';

interface Decoded {
  bytes: Buffer;
  object: VersionedObject;
}

// Byte fields the peer decoder hands over as views of a frame are never kept (see decodedObjectBytesMax).
assert.ok(decodedObjectBytesMax < viewBytesMin, 'decodedObjectBytesMax must stay below the peer decoder\'s viewBytesMin');

/**
 * The decoded forms, by key (latin1), bounded by decodedObjectsMax in two
 * generations: new entries go to the young map, and when it holds half the
 * bound it becomes the old one and the previous old map is dropped whole. A
 * key found only in the old map is set again in the young one when written
 * (its stale old entry goes with the next rotation). Why
 * not evict the oldest entry of one Map: V8 leaves a deleted Map entry as a
 * hole until the table is rebuilt, and finding the first live entry walks
 * every hole before it, so with random keys (every write an eviction) that
 * walk was 4-6% of a replica's CPU.
 */
class RecentObjects {
  #young = new Map<string, Decoded>();
  #old = new Map<string, Decoded>();

  get(k: string): Decoded | undefined {
    return this.#young.get(k) ?? this.#old.get(k);
  }

  set(k: string, bytes: Buffer, object: VersionedObject): void {
    const known = this.#young.get(k);
    if (known !== undefined) {
      // In place: a hot key's entry keeps its slot (no Map insert per write).
      known.bytes = bytes;
      known.object = object;
      return;
    }
    if (this.#young.size >= decodedObjectsMax / 2) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(k, { bytes, object });
  }

  delete(k: string): void {
    this.#young.delete(k);
    this.#old.delete(k);
  }

  clear(): void {
    this.#young.clear();
    this.#old.clear();
  }
}

export class SegmentReplica implements ReplicaStore {
  readonly #locks = new KeyLocks();
  /** key (latin1) → its last decoded or written object (see #remember). */
  readonly #decoded = new RecentObjects();
  /** Objects that failed to decode (kept for INFO; the key reads as missing and repair rewrites it). */
  corruptObjects = 0;
  /** Writes applied here (and clears): see ReplicaStore.changes. */
  changes = 0;

  constructor(
    private readonly store: SegmentStore,
    private readonly log: Logger,
  ) {}

  read(key: Buffer): VersionedObject | null | Promise<VersionedObject | null> {
    if (this.#locks.isLocked(key)) return this.#locks.run([key], () => this.#readNow(key));
    return this.#readNow(key);
  }

  #readNow(key: Buffer): VersionedObject | null | Promise<VersionedObject | null> {
    return then(this.store.get(key), (e) => this.#decode(key, e));
  }

  /** The local copy as stored (null if none): what a replica answers a read with, checked but not decoded. */
  readEncoded(key: Buffer): Buffer | null | Promise<Buffer | null> {
    if (!this.#locks.isLocked(key)) {
      const current = this.store.get(key);
      if (!isPromise(current)) return this.#checked(key, current);
    }
    return this.#locks.run([key], async () => this.#checked(key, await this.store.get(key)));
  }

  /** A stored copy, checked (not decoded); a damaged one is counted and reads as none. */
  #checked(key: Buffer, e: Entry | undefined): Buffer | null {
    if (e === undefined) return null;
    const reason = checkObject(e.value, objectLimits);
    if (reason === null) return e.value;
    this.#corrupt(key, reason);
    return null;
  }

  #decode(key: Buffer, e: Entry | undefined): VersionedObject | null {
    const k = key.toString('latin1');
    if (e === undefined) {
      this.#decoded.delete(k);
      return null;
    }
    const known = this.#decoded.get(k);
    if (known !== undefined && (known.bytes === e.value || known.bytes.equals(e.value))) return known.object;
    const d = decodeObject(e.value, objectLimits);
    if (d.kind === 'ok') {
      this.#remember(k, e.value, d.object);
      return d.object;
    }
    this.#decoded.delete(k);
    this.#corrupt(key, d.reason);
    return null;
  }

  /** `encoded`, a checked copy of key (this node's or another's), decoded; recent ones are kept decoded. */
  decode(key: Buffer, encoded: Buffer): VersionedObject {
    const k = key.toString('latin1');
    const known = this.#decoded.get(k);
    if (known !== undefined && (known.bytes === encoded || known.bytes.equals(encoded))) return known.object;
    const object = decodeCheckedObject(encoded, objectLimits);
    this.#remember(k, encoded, object);
    return object;
  }

  #corrupt(key: Buffer, reason: string): void {
    this.corruptObjects++;
    this.log.error({ key: key.toString('latin1').slice(0, 200), reason }, 'stored object does not decode; treating the key as missing here');
  }

  /** Keeps the decoded form, unless the object is too large to hold a copy of. */
  #remember(k: string, bytes: Buffer, object: VersionedObject): void {
    if (bytes.length > decodedObjectBytesMax) this.#decoded.delete(k);
    else this.#decoded.set(k, bytes, object);
  }

  /**
   * Merges a version, `encoded` (checked: built by a coordinator, or checked
   * on arrival), into the local copy. `object` is its decoded form when the
   * caller has it; otherwise it is decoded only if a merge needs it. Returns
   * null when the version accounted for the copy (or there was none), else
   * the copy's version vector (see accountsFor).
   */
  apply(key: Buffer, encoded: Buffer, object?: VersionedObject): VersionVector | null | Promise<VersionVector | null> {
    if (!this.#locks.isLocked(key)) {
      const current = this.store.get(key);
      if (!isPromise(current)) return this.#write(key, current, encoded, object);
    }
    return this.#locks.run([key], async () => this.#write(key, await this.store.get(key), encoded, object));
  }

  #write(key: Buffer, current: Entry | undefined, encoded: Buffer, object: VersionedObject | undefined): VersionVector | null {
    // The common case, a new write over the copy (or no copy): stored as it came, neither side decoded.
    if (current === undefined || supersedesEncoded(encoded, current.value)) {
      this.changes++;
      this.store.put(key, encoded, encodedObjectExpiry(encoded));
      if (object !== undefined) this.#remember(key.toString('latin1'), encoded, object);
      return null;
    }
    const prior = this.#decode(key, current);
    const incoming = object ?? decodeCheckedObject(encoded, objectLimits);
    const accounted = accountsFor(incoming, prior);
    const merged = accounted ? incoming : merge(prior!, incoming);
    // Nothing new: no write. Still reported when not accounted for: a version whose dot this copy has
    // already seen (its coordinator lost its own copy and reused a dot) changes nothing here, and its
    // coordinator must version again over this vv, or the write it acknowledges would be lost.
    if (prior !== null && equalObjects(merged, prior)) return accounted ? null : prior.vv;
    const bytes = merged === incoming ? encoded : encodeObject(merged);
    this.changes++;
    this.store.put(key, bytes, objectExpiry(merged));
    this.#remember(key.toString('latin1'), bytes, merged);
    return accounted ? null : prior!.vv;
  }

  whenDurable(cb: (err: Error | null) => void): void {
    this.store.whenDurable(cb);
  }

  scan(cursor: number, count: number): { cursor: number; keys: Buffer[] } {
    return this.store.scan(cursor, count);
  }

  keys(): Iterable<Buffer> {
    return this.store.keys();
  }

  clear(): Promise<void> {
    this.changes++;
    this.#decoded.clear();
    return this.store.clear();
  }
}
