// The hot value cache: decoded (decompressed) values with their keys, by
// index entry id, bounded in bytes. A hit makes get() synchronous, which is
// the whole point: no Promise and no disk read on the hot path. It also holds
// the key, because the index does not: a fingerprint match on a cached entry
// is verified here without a disk read. The store keeps it coherent with the
// index (every put sets it, every delete drops it, and an entry id is only
// reused after its key was deleted).

import { LRUCache } from 'lru-cache';
import { cacheEntryOverheadBytes } from '../constants.js';

/**
 * A cached record is ONE buffer: u32 key length (LE), the key, the value. One
 * Buffer object per entry instead of two (about 150 bytes of V8 object each)
 * keeps the real cost near what the budget charges.
 */
export type CachedRecord = Buffer;

export function cachedRecord(key: Uint8Array, value: Uint8Array): CachedRecord {
  const r = Buffer.allocUnsafe(4 + key.length + value.length);
  r.writeUInt32LE(key.length, 0);
  r.set(key, 4);
  r.set(value, 4 + key.length);
  return r;
}

export function cachedValue(r: CachedRecord): Buffer {
  return r.subarray(4 + r.readUInt32LE(0));
}

export function cachedKey(r: CachedRecord): Buffer {
  return r.subarray(4, 4 + r.readUInt32LE(0));
}

/** Whether the cached record is the record of `key`. */
export function cachedHoldsKey(r: CachedRecord, key: Buffer): boolean {
  const n = key.length;
  if (r.readUInt32LE(0) !== n) return false;
  if (n > 32) return r.compare(key, 0, n, 4, 4 + n) === 0;
  for (let i = 0; i < n; i++) if (r[4 + i] !== key[i]) return false;
  return true;
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
            sizeCalculation: (r) => r.length + cacheEntryOverheadBytes,
          })
        : null;
  }

  static cost(key: Uint8Array, value: Uint8Array): number {
    return 4 + key.length + value.length + cacheEntryOverheadBytes;
  }

  /** Whether a record of this size would be kept at all (lru-cache refuses larger ones). */
  fits(key: Uint8Array, value: Uint8Array): boolean {
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
