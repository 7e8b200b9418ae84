// The hot value cache: decoded (decompressed) values by key, bounded in bytes.
// A hit makes get() synchronous, which is the whole point: no Promise and no
// disk read on the hot path. The store keeps it coherent with the index
// (every put sets it, every delete drops it).

import { LRUCache } from 'lru-cache';
import { cacheEntryOverheadBytes } from '../constants.js';

export class ValueCache {
  private readonly lru: LRUCache<string, Buffer> | null;
  hits = 0;
  misses = 0;

  constructor(private readonly maxBytes: number) {
    // lru-cache needs a positive bound; a budget of 0 turns the cache off.
    this.lru =
      maxBytes > 0
        ? new LRUCache<string, Buffer>({
            maxSize: maxBytes,
            sizeCalculation: (value, key) => ValueCache.cost(key, value),
          })
        : null;
  }

  static cost(key: string, value: Buffer): number {
    return key.length + value.length + cacheEntryOverheadBytes;
  }

  /** Whether a value of this size would be kept at all (lru-cache refuses larger ones). */
  fits(key: string, value: Buffer): boolean {
    return this.lru !== null && ValueCache.cost(key, value) <= this.maxBytes;
  }

  get(key: string): Buffer | undefined {
    const v = this.lru?.get(key);
    if (v === undefined) this.misses++;
    else this.hits++;
    return v;
  }

  set(key: string, value: Buffer): void {
    this.lru?.set(key, value);
  }

  delete(key: string): void {
    this.lru?.delete(key);
  }

  clear(): void {
    this.lru?.clear();
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }
}
