// KeyValue for a single node: every key lives in this node's segment store
// (N=R=W=1). Read-modify-writes are serialised per key: when all their reads
// are hot they run synchronously (nothing can interleave in one JS turn); when
// a read must go to disk, the keys are locked until the update is applied and
// later commands on those keys queue behind it, so INCR never loses a SET.

import type { SegmentStore } from '../storage/store.js';
import { type Entry, type KeyValue, type Maybe, type ScanPage, type Update, isPromise } from './keyvalue.js';
import { KeyLocks } from './locks.js';

export class LocalKeyValue implements KeyValue {
  readonly #locks = new KeyLocks();

  constructor(private readonly store: SegmentStore) {}

  get(key: Buffer): Maybe<Entry | undefined> {
    if (this.#locks.isLocked(key)) return this.#locks.run([key], () => this.store.get(key));
    return this.store.get(key);
  }

  set(key: Buffer, value: Buffer, expiresAtMs: number): Maybe<void> {
    if (this.#locks.isLocked(key)) return this.#locks.run([key], () => this.store.put(key, value, expiresAtMs));
    this.store.put(key, value, expiresAtMs);
  }

  delete(keys: Buffer[]): Maybe<number> {
    const run = (): number => {
      let n = 0;
      for (const k of keys) if (this.store.delete(k)) n++;
      return n;
    };
    return this.#locks.anyLocked(keys) ? this.#locks.run(keys, run) : run();
  }

  exists(keys: Buffer[]): Maybe<number> {
    const run = (): number => {
      let n = 0;
      for (const k of keys) if (this.store.has(k)) n++;
      return n;
    };
    return this.#locks.anyLocked(keys) ? this.#locks.run(keys, run) : run();
  }

  update<T>(keys: Buffer[], fn: (current: Array<Entry | undefined>) => Update<T>): Maybe<T> {
    if (!this.#locks.anyLocked(keys)) {
      const current = keys.map((k) => this.store.get(k));
      if (!current.some(isPromise)) return this.apply(keys, current as Array<Entry | undefined>, fn);
    }
    return this.#locks.run(keys, async () => {
      const current = await Promise.all(keys.map((k) => this.store.get(k)));
      return this.apply(keys, current, fn);
    });
  }

  private apply<T>(keys: Buffer[], current: Array<Entry | undefined>, fn: (current: Array<Entry | undefined>) => Update<T>): T {
    const { writes, result } = fn(current);
    if (writes) {
      for (let i = 0; i < keys.length; i++) {
        const w = writes[i];
        if (w === null) this.store.delete(keys[i]!);
        else if (w !== undefined) this.store.put(keys[i]!, w.value, w.expiresAtMs);
      }
    }
    return result;
  }

  scan(cursor: string, count: number): ScanPage {
    const page = this.store.scan(Number(cursor), count);
    return { cursor: String(page.cursor), keys: page.keys };
  }

  size(): number {
    return this.store.size;
  }

  randomKey(): Buffer | undefined {
    return this.store.randomKey();
  }

  flushAll(): Promise<void> {
    return this.store.clear();
  }

  whenDurable(cb: (err: Error | null) => void): void {
    this.store.whenDurable(cb);
  }
}
