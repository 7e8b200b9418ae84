// A node's replica store in cluster mode: the segment store holding one
// encoded versioned object (protocol/object.ts) per key. Incoming versions are
// merged (DVV sync) into the local copy under a per-key lock, so concurrent
// writes from different coordinators are both kept as siblings, never lost.

import { decodeObject, encodeObject, objectExpiry } from '../../protocol/object.js';
import type { ReplicaStore } from '../cluster/ports.js';
import type { VersionedObject } from '../cluster/types.js';
import { equalObjects, merge, objectLimits } from '../cluster/version.js';
import type { Logger } from '../log.js';
import type { SegmentStore } from '../storage/store.js';
import { type Entry, isPromise, then } from './keyvalue.js';
import { KeyLocks } from './locks.js';

export class SegmentReplica implements ReplicaStore {
  readonly #locks = new KeyLocks();
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
    if (e === undefined) return null;
    const d = decodeObject(e.value, objectLimits);
    if (d.kind === 'ok') return d.object;
    this.corruptObjects++;
    this.log.error({ key: key.toString('latin1').slice(0, 200), reason: d.reason }, 'stored object does not decode; treating the key as missing here');
    return null;
  }

  apply(key: Buffer, incoming: VersionedObject): void | Promise<void> {
    if (!this.#locks.isLocked(key)) {
      const current = this.store.get(key);
      if (!isPromise(current)) return this.#write(key, this.#decode(key, current), incoming);
    }
    return this.#locks.run([key], async () => this.#write(key, this.#decode(key, await this.store.get(key)), incoming));
  }

  #write(key: Buffer, current: VersionedObject | null, incoming: VersionedObject): void {
    const merged = current === null ? incoming : merge(current, incoming);
    if (current !== null && equalObjects(merged, current)) return; // nothing new: no write
    this.store.put(key, encodeObject(merged), objectExpiry(merged));
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
    return this.store.clear();
  }
}
