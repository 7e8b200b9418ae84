// Per-key mutual exclusion for read-modify-writes that may wait (a disk read,
// a quorum round). Operations on a key run one after another in arrival
// order; operations on other keys are not held up. An idle key costs nothing.

import type { Maybe } from './keyvalue.js';

export class KeyLocks {
  /** key (latin1) → the tail of the chain of operations holding or waiting for it. */
  readonly #tails = new Map<string, Promise<void>>();

  get size(): number {
    return this.#tails.size;
  }

  isLocked(key: Buffer): boolean {
    return this.#tails.size > 0 && this.#tails.has(key.toString('latin1'));
  }

  anyLocked(keys: readonly Buffer[]): boolean {
    if (this.#tails.size === 0) return false;
    return keys.some((k) => this.#tails.has(k.toString('latin1')));
  }

  /** Runs op once every earlier operation on any of `keys` has finished, holding them until it ends. */
  run<T>(keys: readonly Buffer[], op: () => Maybe<T>): Promise<T> {
    const names = [...new Set(keys.map((k) => k.toString('latin1')))];
    const before: Promise<void>[] = [];
    for (const n of names) {
      const tail = this.#tails.get(n);
      if (tail !== undefined) before.push(tail);
    }
    const result = (before.length === 0 ? Promise.resolve() : Promise.all(before)).then(op);
    this.#hold(names, result);
    return result;
  }

  /**
   * The same as run, without its Promise hops when no earlier operation holds
   * any of `keys`: op then starts at once, and if it waits (returns a Promise)
   * the keys stay held until that settles. Nothing else runs between the check
   * and op's start (one thread), so op holds the keys from its first line.
   */
  runNow<T>(keys: readonly Buffer[], op: () => Maybe<T>): Maybe<T> {
    if (this.anyLocked(keys)) return this.run(keys, op);
    const result = op();
    if (result instanceof Promise) this.#hold([...new Set(keys.map((k) => k.toString('latin1')))], result);
    return result;
  }

  #hold(names: readonly string[], result: Promise<unknown>): void {
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    for (const n of names) this.#tails.set(n, done);
    void done.then(() => {
      for (const n of names) if (this.#tails.get(n) === done) this.#tails.delete(n);
    });
  }
}
