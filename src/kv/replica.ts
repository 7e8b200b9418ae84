// A node's replica store in cluster mode: the segment store holding one
// encoded versioned object (protocol/object.ts) per key. Incoming versions are
// merged (DVV sync) into the local copy under a per-key lock, so concurrent
// writes from different coordinators are both kept as siblings, never lost.
//
// Decoding an object on every access was a large part of a hot key's cost, so
// the decoded form of recently stored or read objects is kept next to the
// bytes it was decoded from (or encoded to). A read still asks the store and
// uses the decoded form only when the store returns those very bytes (same
// buffer, or equal content): the store stays the one source of truth, whatever
// else changes it (expiry, FLUSHALL, a rewrite of the storage layer).

import { decodeObject, encodeObjectOnce, objectExpiry } from '../../protocol/object.js';
import type { ReplicaStore } from '../cluster/ports.js';
import type { VersionedObject } from '../cluster/types.js';
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

export class SegmentReplica implements ReplicaStore {
  readonly #locks = new KeyLocks();
  /** key (latin1) → its last decoded or written object, oldest first (see #remember). */
  readonly #decoded = new Map<string, Decoded>();
  /** Objects that failed to decode (kept for INFO; the key reads as missing and repair rewrites it). */
  corruptObjects = 0;

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
    this.corruptObjects++;
    this.log.error({ key: key.toString('latin1').slice(0, 200), reason: d.reason }, 'stored object does not decode; treating the key as missing here');
    return null;
  }

  /**
   * Keeps the decoded form. A key already held is updated in place and keeps
   * its place, so eviction is first in, first out: moving it to the young end
   * on every write (delete, then set) made V8 rehash the Map every few hundred
   * writes of a hot key. A hot key evicted this way is decoded again once.
   */
  #remember(k: string, bytes: Buffer, object: VersionedObject): void {
    if (bytes.length > decodedObjectBytesMax) {
      this.#decoded.delete(k);
      return;
    }
    const known = this.#decoded.get(k);
    if (known !== undefined) {
      known.bytes = bytes;
      known.object = object;
      return;
    }
    if (this.#decoded.size >= decodedObjectsMax) this.#decoded.delete(this.#decoded.keys().next().value!);
    this.#decoded.set(k, { bytes, object });
  }

  /**
   * Merges `incoming` into the local copy; returns the copy as it was before
   * (null if none). `encoded`, incoming's encoding if the caller has it, is
   * stored as is when incoming supersedes the copy.
   */
  apply(key: Buffer, incoming: VersionedObject, encoded?: Buffer): VersionedObject | null | Promise<VersionedObject | null> {
    if (!this.#locks.isLocked(key)) {
      const current = this.store.get(key);
      if (!isPromise(current)) return this.#write(key, this.#decode(key, current), incoming, encoded);
    }
    return this.#locks.run([key], async () => this.#write(key, this.#decode(key, await this.store.get(key)), incoming, encoded));
  }

  #write(key: Buffer, current: VersionedObject | null, incoming: VersionedObject, encoded: Buffer | undefined): VersionedObject | null {
    // The common case (a coordinator's version built over this copy) needs no merge: it is the result.
    const merged = accountsFor(incoming, current) ? incoming : merge(current!, incoming);
    if (current !== null && equalObjects(merged, current)) return current; // nothing new: no write
    const bytes = merged === incoming && encoded !== undefined ? encoded : encodeObjectOnce(merged);
    this.store.put(key, bytes, objectExpiry(merged));
    this.#remember(key.toString('latin1'), bytes, merged);
    return current;
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
    this.#decoded.clear();
    return this.store.clear();
  }
}
