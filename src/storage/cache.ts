// The hot value cache: decoded (decompressed) values with their keys, by
// index entry id, bounded in bytes. A hit makes get() synchronous, which is
// the whole point: no Promise and no disk read on the hot path. It also holds
// the key, because the index does not: a fingerprint match on a cached entry
// is verified here without a disk read. The store keeps it coherent with the
// index (every put sets it, every delete drops it, and an entry id is only
// reused after its key was deleted).

import { LRUCache } from 'lru-cache';
import { cacheEntryOverheadBytes } from '../constants.js';

export interface CachedRecord {
  key: Buffer;
  value: Buffer;
}

export class ValueCache {
  private readonly lru: LRUCache<number, CachedRecord> | null;
  hits = 0;
  misses = 0;

  constructor(private readonly maxBytes: number) {
    // lru-cache needs a positive bound; a budget of 0 turns the cache off.
    this.lru =
      maxBytes > 0
        ? new LRUCache<number, CachedRecord>({
            maxSize: maxBytes,
            sizeCalculation: (r) => ValueCache.cost(r.key, r.value),
          })
        : null;
  }

  static cost(key: Buffer, value: Buffer): number {
    return key.length + value.length + cacheEntryOverheadBytes;
  }

  /** Whether a record of this size would be kept at all (lru-cache refuses larger ones). */
  fits(key: Buffer, value: Buffer): boolean {
    return this.lru !== null && ValueCache.cost(key, value) <= this.maxBytes;
  }

  /** A read: counted, and makes the entry most recently used. */
  get(id: number): CachedRecord | undefined {
    const r = this.lru?.get(id);
    if (r === undefined) this.misses++;
    else this.hits++;
    return r;
  }

  /** A look without side effects (key verification, SCAN). */
  peek(id: number): CachedRecord | undefined {
    return this.lru?.peek(id);
  }

  set(id: number, record: CachedRecord): void {
    this.lru?.set(id, record);
  }

  delete(id: number): void {
    this.lru?.delete(id);
  }

  clear(): void {
    this.lru?.clear();
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }
}
