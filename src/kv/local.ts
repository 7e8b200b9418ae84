// KeyValue for a single node: every key lives in this node's segment store
// (N=R=W=1). Read-modify-writes are serialised per key: when all their reads
// are hot they run synchronously (nothing can interleave in one JS turn); when
// a read must go to disk, the keys are locked until the update is applied and
// later commands on those keys queue behind it, so INCR never loses a SET.

import type { SegmentStore } from '../storage/store.js';
import { type Entry, type KeyValue, type Maybe, type ScanPage, type Update, isPromise } from './keyvalue.js';

export class LocalKeyValue implements KeyValue {
  /** key (latin1) → the tail of the chain of operations waiting on that key. */
  private readonly locks = new Map<string, Promise<void>>();

  constructor(private readonly store: SegmentStore) {}

  get(key: Buffer): Maybe<Entry | undefined> {
    if (this.locks.size > 0 && this.locks.has(key.toString('latin1'))) {
      return this.locked([key], () => this.store.get(key));
    }
    return this.store.get(key);
  }

  set(key: Buffer, value: Buffer, expiresAtMs: number): Maybe<void> {
    if (this.locks.size > 0 && this.locks.has(key.toString('latin1'))) {
      return this.locked([key], () => this.store.put(key, value, expiresAtMs));
    }
    this.store.put(key, value, expiresAtMs);
  }

  delete(keys: Buffer[]): Maybe<number> {
    const run = (): number => {
      let n = 0;
      for (const k of keys) if (this.store.delete(k)) n++;
      return n;
    };
    return this.anyLocked(keys) ? this.locked(keys, run) : run();
  }

  exists(keys: Buffer[]): Maybe<number> {
    const run = (): number => {
      let n = 0;
      for (const k of keys) if (this.store.has(k)) n++;
      return n;
    };
    return this.anyLocked(keys) ? this.locked(keys, run) : run();
  }

  update<T>(keys: Buffer[], fn: (current: Array<Entry | undefined>) => Update<T>): Maybe<T> {
    if (!this.anyLocked(keys)) {
      const current = keys.map((k) => this.store.get(k));
      if (!current.some(isPromise)) return this.apply(keys, current as Array<Entry | undefined>, fn);
    }
    return this.locked(keys, async () => {
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

  private anyLocked(keys: Buffer[]): boolean {
    if (this.locks.size === 0) return false;
    return keys.some((k) => this.locks.has(k.toString('latin1')));
  }

  /** Runs op after every earlier locked operation on any of keys, holding them until it ends. */
  private locked<T>(keys: Buffer[], op: () => Maybe<T>): Promise<T> {
    const names = [...new Set(keys.map((k) => k.toString('latin1')))];
    const before = names.map((n) => this.locks.get(n)).filter((p): p is Promise<void> => p !== undefined);
    const run = Promise.all(before).then(op);
    const done = run.then(
      () => undefined,
      () => undefined,
    );
    for (const n of names) this.locks.set(n, done);
    void done.then(() => {
      for (const n of names) if (this.locks.get(n) === done) this.locks.delete(n);
    });
    return run;
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
