// The key directory: for every live key, where its newest record lives, in
// about 20-31 bytes of RAM per key and no JavaScript object or string per key.
// docs/storage.md ("The index") has the design and the figures.
//
// Entries live in chunked typed arrays (indexChunkEntries entries per chunk,
// so growth allocates one more chunk and never copies or doubles the entries).
// An entry is five u32 words:
//
//   word 0  h1          low 32 bits of the key's 64-bit hash (its home slot is h1 & mask)
//   word 1  fp << 8 | flags   fp: bits 8-31 of the high hash word (24-bit fingerprint);
//                       flags: bits 0-3 the record's flags, 0x40 has an expiry, 0x80 live
//   word 2  segmentId   (a free entry: the next free entry id)
//   word 3  offset
//   word 4  recordLength
//
// The hash table is a Uint32Array of slots, open addressing with linear
// probing and backward-shift deletion (no tombstones). A slot is 0 (empty) or
// `tag << 28 | entryId`, the tag being 4 more bits of the hash, so most
// non-matching slots are skipped without touching the entry. Entry ids are
// never 0 and are reused through a free list threaded through word 2.
//
// The full key is not kept. A candidate whose h1, tag and fingerprint all match
// is confirmed by a KeyVerifier that compares the real key (from the hot
// cache, the pending write batch or a pread of the record: the store supplies
// it). A mismatch (a false match, about alpha * 2^-(60 - log2 slots) per
// lookup) continues probing.
//
// SCAN walks entry ids: an entry id never moves (rehashing moves slots, not
// entries; relocate() repoints an entry in place), so a key present for the
// whole scan has one fixed id that the cursor passes once.
//
// Expiry (f64 ms) is kept only for keys that have one, in ExpiryMap (entry id
// -> expiresAtMs, 12 bytes a slot), flagged by 0x40 in word 1.

import assert from 'node:assert/strict';
import { expirySlotsMin, indexChunkEntries, indexKeysMax, indexLoadFactorMax, indexSlotsMin } from '../constants.js';
import type { KeyHash, KeyHasher } from './hash.js';

export interface IndexEntry {
  segmentId: number;
  /** Offset of the record within its segment file. */
  offset: number;
  /** Bytes of the whole record (header, key, stored value). */
  recordLength: number;
  /** Absolute unix ms, 0 = no expiry. */
  expiresAtMs: number;
  /** The record's flags (protocol/record.ts RecordFlag); bits 0-3 only. */
  flags: number;
}

/** Whether entry `id` is the entry of `key` (the index only knows hashes). */
export type KeyVerifier = (id: number, key: Buffer) => boolean;

const words = 5;
const wH1 = 0;
const wFpFlags = 1;
const wSeg = 2;
const wOff = 3;
const wLen = 4;

const flagLive = 0x80;
const flagTtl = 0x40;
const recordFlagsMask = 0x0f;

const idBits = 28;
const idMask = 2 ** idBits - 1;
const tagMask = 0xf;
const chunkShift = Math.log2(indexChunkEntries);
const chunkMask = indexChunkEntries - 1;
const u32Max = 0xffff_ffff;
/** Largest table: 2^30 slots (4 GiB) is far beyond indexKeysMax / indexLoadFactorMax. */
const slotsMax = 2 ** 30;
/** scan() visits at most count * this many entry ids per call (free ids are skipped), as Redis bounds empty buckets. */
const scanVisitFactor = 10;
const randomProbesMax = 32;

assert(Number.isInteger(chunkShift) && chunkShift <= idBits, 'indexChunkEntries must be a power of two');
assert(indexKeysMax <= idMask, 'indexKeysMax needs more id bits');
assert(indexKeysMax / indexLoadFactorMax <= slotsMax, 'table would outgrow slotsMax');

export class CompactIndex {
  /** Decides fingerprint matches; the owner (store, recovery) sets it. */
  verify: KeyVerifier;
  /** After set/update/remove/relocate: the replaced location's segment (-1 if the key was new) and record length. */
  prevSegmentId = -1;
  prevRecordLength = 0;

  private readonly hasher: KeyHasher;
  private readonly h: KeyHash = { h1: 0, h2: 0 };
  private chunks: Uint32Array[] = [];
  /** Next never-used entry id (ids start at 1; 0 marks an empty slot). */
  private highWater = 1;
  private freeHead = 0;
  private count = 0;
  private bytes = 0;
  private table: Uint32Array;
  private mask: number;
  private growAt: number;
  private readonly expiry = new ExpiryMap();
  private readonly segBytes = new Map<number, number>();
  /** Time spent rehashing, for the figures (ms). */
  rehashMs = 0;

  constructor(opts: { hasher: KeyHasher; verify?: KeyVerifier; slots?: number }) {
    this.hasher = opts.hasher;
    this.verify = opts.verify ?? (() => assert.fail('index used before a key verifier was set'));
    const slots = opts.slots ?? indexSlotsMin;
    assert(slots >= 2 && (slots & (slots - 1)) === 0, 'slots must be a power of two');
    this.table = new Uint32Array(slots);
    this.mask = slots - 1;
    this.growAt = Math.floor(slots * indexLoadFactorMax);
  }

  /** Live keys. */
  get size(): number {
    return this.count;
  }

  /** Sum of recordLength over all entries: the bytes a compaction would keep. */
  get liveBytes(): number {
    return this.bytes;
  }

  /** Bytes of RAM the index holds in typed arrays (entries, table, expiry map). */
  get memoryBytes(): number {
    return this.chunks.length * indexChunkEntries * words * 4 + this.table.byteLength + this.expiry.memoryBytes;
  }

  /** Keys with an expiry (each costs an ExpiryMap slot on top). */
  get expiringKeys(): number {
    return this.expiry.size;
  }

  get slots(): number {
    return this.table.length;
  }

  /** The hash the index uses for `key` (the same hasher; written into `out`). */
  hash(key: Buffer, out: KeyHash): void {
    this.hasher(key, out);
  }

  // --- lookups ---------------------------------------------------------------------

  /** The entry id of `key`, or 0. */
  find(key: Buffer, verify: KeyVerifier = this.verify): number {
    this.hasher(key, this.h);
    const at = this.locate(key, this.h.h1, this.h.h2, verify);
    return at < 0 ? 0 : this.table[at]! & idMask;
  }

  isLive(id: number): boolean {
    return id >= 1 && id < this.highWater && (this.word(id, wFpFlags) & flagLive) !== 0;
  }

  segmentIdOf(id: number): number {
    return this.word(id, wSeg);
  }

  offsetOf(id: number): number {
    return this.word(id, wOff);
  }

  recordLengthOf(id: number): number {
    return this.word(id, wLen);
  }

  recordFlagsOf(id: number): number {
    return this.word(id, wFpFlags) & recordFlagsMask;
  }

  hasExpiry(id: number): boolean {
    return (this.word(id, wFpFlags) & flagTtl) !== 0;
  }

  /** Absolute unix ms, 0 = none. */
  expiresAtOf(id: number): number {
    if ((this.word(id, wFpFlags) & flagTtl) === 0) return 0;
    const at = this.expiry.get(id);
    assert(at !== undefined, 'entry flagged with an expiry has none');
    return at;
  }

  /** The entry of id, copied into `out`. */
  entry(id: number, out: IndexEntry): IndexEntry {
    assert(this.isLive(id), 'entry of a free id');
    out.segmentId = this.segmentIdOf(id);
    out.offset = this.offsetOf(id);
    out.recordLength = this.recordLengthOf(id);
    out.flags = this.recordFlagsOf(id);
    out.expiresAtMs = this.expiresAtOf(id);
    return out;
  }

  /** Whether the current entry of `key` is exactly the record at (segmentId, offset). No verification read: the location proves identity. */
  isAt(key: Buffer, segmentId: number, offset: number): boolean {
    return this.locateAt(key, segmentId, offset) >= 0;
  }

  /**
   * Reads the table slot where a key of hash `h1` starts probing, and returns
   * it. For batches (start-up): touching a batch's slots in a tight loop lets
   * the CPU overlap the cache misses, which set() one key at a time cannot
   * (each probe of a table larger than the CPU cache waits ~200 ns here).
   */
  touch(h1: number): number {
    return this.table[h1 & this.mask]!;
  }

  // --- updates ---------------------------------------------------------------------

  /** Points `key` at a record (fields copied); returns its entry id. prevSegmentId/prevRecordLength tell what it replaced. */
  set(key: Buffer, e: IndexEntry, verify: KeyVerifier = this.verify): number {
    this.hasher(key, this.h);
    return this.setHashed(key, this.h.h1, this.h.h2, e, verify);
  }

  /** set() for a key whose hash() the caller already took (start-up's batches). */
  setHashed(key: Buffer, h1: number, h2: number, e: IndexEntry, verify: KeyVerifier = this.verify): number {
    const at = this.locate(key, h1, h2, verify);
    if (at >= 0) {
      const id = this.table[at]! & idMask;
      this.update(id, e);
      return id;
    }
    return this.insert(~at, h1, h2, e);
  }

  /** Repoints the entry `id` (from find) at a new record; its id does not change. */
  update(id: number, e: IndexEntry): void {
    assert(this.isLive(id), 'update of a free id');
    checkEntry(e);
    const c = this.chunks[id >>> chunkShift]!;
    const b = (id & chunkMask) * words;
    const oldSeg = c[b + wSeg]!;
    const oldLen = c[b + wLen]!;
    this.prevSegmentId = oldSeg;
    this.prevRecordLength = oldLen;
    if (oldSeg === e.segmentId) {
      this.account(oldSeg, e.recordLength - oldLen);
    } else {
      this.account(oldSeg, -oldLen);
      this.account(e.segmentId, e.recordLength);
    }
    this.bytes += e.recordLength - oldLen;
    c[b + wSeg] = e.segmentId;
    c[b + wOff] = e.offset;
    c[b + wLen] = e.recordLength;
    let w1 = (c[b + wFpFlags]! & ~0xff) | flagLive | e.flags;
    if (e.expiresAtMs !== 0) {
      this.expiry.set(id, e.expiresAtMs);
      w1 |= flagTtl;
    } else if ((c[b + wFpFlags]! & flagTtl) !== 0) {
      this.expiry.delete(id);
    }
    c[b + wFpFlags] = w1;
  }

  /** Removes `key`; returns the id it had, or 0. */
  delete(key: Buffer, verify: KeyVerifier = this.verify): number {
    this.hasher(key, this.h);
    return this.deleteHashed(key, this.h.h1, this.h.h2, verify);
  }

  /** delete() for a key whose hash() the caller already took. */
  deleteHashed(key: Buffer, h1: number, h2: number, verify: KeyVerifier = this.verify): number {
    const at = this.locate(key, h1, h2, verify);
    if (at < 0) {
      this.prevSegmentId = -1;
      this.prevRecordLength = 0;
      return 0;
    }
    const id = this.table[at]! & idMask;
    this.removeAt(at, id);
    return id;
  }

  /** Removes the entry `id` (from find or scan). */
  remove(id: number): void {
    assert(this.isLive(id), 'remove of a free id');
    const mask = this.mask;
    let pos = this.word(id, wH1) & mask;
    for (;;) {
      const s = this.table[pos]!;
      assert(s !== 0, 'live entry missing from the table');
      if ((s & idMask) === id) break;
      pos = (pos + 1) & mask;
    }
    this.removeAt(pos, id);
  }

  /**
   * Compare-and-set for compaction: repoints `key` at `to` only if its entry
   * still points at (fromSegmentId, fromOffset). The entry id (SCAN position)
   * is unchanged. No verification read: the location proves identity.
   */
  relocate(key: Buffer, fromSegmentId: number, fromOffset: number, to: IndexEntry): boolean {
    const at = this.locateAt(key, fromSegmentId, fromOffset);
    if (at < 0) return false;
    this.update(this.table[at]! & idMask, to);
    return true;
  }

  /**
   * Grows the table now so that `keys` keys fit without another rehash
   * (start-up calls this with the hint files' entry counts: one rehash of an
   * empty table instead of a doubling every few million keys).
   */
  reserve(keys: number): void {
    const target = Math.min(keys, indexKeysMax);
    let slots = this.table.length;
    while (Math.floor(slots * indexLoadFactorMax) < target && slots < slotsMax) slots *= 2;
    if (slots > this.table.length) this.grow(slots);
  }

  /** Shrinks the table to the smallest size that holds the keys present (after reserve() overestimated: start-up reserves for every hint entry, dead ones included). */
  fit(): void {
    let slots = indexSlotsMin;
    while (Math.floor(slots * indexLoadFactorMax) < this.count) slots *= 2;
    if (slots < this.table.length) this.grow(slots);
  }

  clear(): void {
    this.chunks = [];
    this.highWater = 1;
    this.freeHead = 0;
    this.count = 0;
    this.bytes = 0;
    this.table = new Uint32Array(indexSlotsMin);
    this.mask = indexSlotsMin - 1;
    this.growAt = Math.floor(indexSlotsMin * indexLoadFactorMax);
    this.expiry.clear();
    this.segBytes.clear();
  }

  // --- per segment -----------------------------------------------------------------

  /** Sum of recordLength of the entries in segment `segmentId`. */
  segmentLiveBytes(segmentId: number): number {
    return this.segBytes.get(segmentId) ?? 0;
  }

  /** [segmentId, live bytes] of every segment holding a live entry. */
  segmentsLiveBytes(): IterableIterator<[number, number]> {
    return this.segBytes.entries();
  }

  // --- iteration -------------------------------------------------------------------

  /**
   * Live entry ids from `cursor` on (0 starts), up to `count` of them and at
   * most count*10 ids visited; the returned cursor is 0 at the end.
   */
  scan(cursor: number, count: number): { cursor: number; ids: number[] } {
    assert(count >= 1, 'scan count must be at least 1');
    let id = Number.isFinite(cursor) && cursor >= 1 ? Math.floor(cursor) : 1;
    const ids: number[] = [];
    const end = this.highWater;
    let visits = count * scanVisitFactor;
    while (id < end && ids.length < count && visits-- > 0) {
      if ((this.word(id, wFpFlags) & flagLive) !== 0) ids.push(id);
      id++;
    }
    return { cursor: id < end ? id : 0, ids };
  }

  /** Live entry ids in id order (a snapshot of the bound, not of the entries). */
  *ids(): IterableIterator<number> {
    for (let id = 1; id < this.highWater; id++) if (this.isLive(id)) yield id;
  }

  /** A live entry id picked at random, or 0 when empty. */
  randomId(random: () => number = Math.random): number {
    if (this.count === 0) return 0;
    const n = this.highWater - 1;
    for (let i = 0; i < randomProbesMax; i++) {
      const id = 1 + Math.floor(random() * n);
      if (this.isLive(id)) return id;
    }
    // Sparse (many free ids): walk from a random start.
    const start = 1 + Math.floor(random() * n);
    for (let k = 0; k < n; k++) {
      const id = 1 + ((start - 1 + k) % n);
      if (this.isLive(id)) return id;
    }
    assert.fail('index count is positive but no entry is live');
  }

  /** Checks every invariant (slow: for tests). */
  check(): void {
    let inTable = 0;
    for (let pos = 0; pos < this.table.length; pos++) {
      const s = this.table[pos]!;
      if (s === 0) continue;
      inTable++;
      const id = s & idMask;
      assert(this.isLive(id), `slot ${pos} holds free id ${id}`);
      // Linear probing: every slot from the home slot to here is occupied.
      const home = this.word(id, wH1) & this.mask;
      for (let p = home; p !== pos; p = (p + 1) & this.mask) assert(this.table[p] !== 0, `gap between home ${home} and slot ${pos}`);
    }
    assert.equal(inTable, this.count, 'table and count disagree');
    let live = 0;
    let bytes = 0;
    let ttl = 0;
    const seg = new Map<number, number>();
    for (let id = 1; id < this.highWater; id++) {
      if (!this.isLive(id)) continue;
      live++;
      bytes += this.recordLengthOf(id);
      seg.set(this.segmentIdOf(id), (seg.get(this.segmentIdOf(id)) ?? 0) + this.recordLengthOf(id));
      if (this.hasExpiry(id)) ttl++;
    }
    assert.equal(live, this.count, 'live entries and count disagree');
    assert.equal(bytes, this.bytes, 'liveBytes drifted');
    assert.equal(ttl, this.expiry.size, 'expiry map and flags disagree');
    assert.deepEqual(new Map([...this.segBytes].filter(([, v]) => v !== 0)), seg, 'segment live bytes drifted');
    let free = 0;
    for (let id = this.freeHead; id !== 0; id = this.word(id, wSeg)) {
      assert(!this.isLive(id), 'a live id on the free list');
      free++;
    }
    assert.equal(free + live, this.highWater - 1, 'ids leaked');
  }

  // --- internals -------------------------------------------------------------------

  private word(id: number, w: number): number {
    return this.chunks[id >>> chunkShift]![(id & chunkMask) * words + w]!;
  }

  /** The table position of key's slot, or ~(the empty slot where it would go). */
  private locate(key: Buffer, h1: number, h2: number, verify: KeyVerifier): number {
    const table = this.table;
    const mask = this.mask;
    const tag = h2 & tagMask;
    const fp = h2 >>> 8;
    let pos = h1 & mask;
    for (;;) {
      const s = table[pos]!;
      if (s === 0) return ~pos;
      if (s >>> idBits === tag) {
        const id = s & idMask;
        const c = this.chunks[id >>> chunkShift]!;
        const b = (id & chunkMask) * words;
        if (c[b] === h1 && c[b + wFpFlags]! >>> 8 === fp && verify(id, key)) return pos;
      }
      pos = (pos + 1) & mask;
    }
  }

  /** Like locate, but the candidate must be at (segmentId, offset) instead of verified; -1 if none. */
  private locateAt(key: Buffer, segmentId: number, offset: number): number {
    this.hasher(key, this.h);
    const { h1, h2 } = this.h;
    const tag = h2 & tagMask;
    const fp = h2 >>> 8;
    let pos = h1 & this.mask;
    for (;;) {
      const s = this.table[pos]!;
      if (s === 0) return -1;
      if (s >>> idBits === tag) {
        const id = s & idMask;
        const c = this.chunks[id >>> chunkShift]!;
        const b = (id & chunkMask) * words;
        if (c[b] === h1 && c[b + wFpFlags]! >>> 8 === fp && c[b + wSeg] === segmentId && c[b + wOff] === offset) return pos;
      }
      pos = (pos + 1) & this.mask;
    }
  }

  private insert(pos: number, h1: number, h2: number, e: IndexEntry): number {
    checkEntry(e);
    assert(this.count < indexKeysMax, 'index full (the store checks indexKeysMax first)');
    if (this.count + 1 > this.growAt) {
      this.grow();
      pos = h1 & this.mask;
      while (this.table[pos] !== 0) pos = (pos + 1) & this.mask;
    }
    const id = this.allocate();
    const c = this.chunks[id >>> chunkShift]!;
    const b = (id & chunkMask) * words;
    let w1 = (h2 & ~0xff) | flagLive | e.flags;
    if (e.expiresAtMs !== 0) {
      this.expiry.set(id, e.expiresAtMs);
      w1 |= flagTtl;
    }
    c[b + wH1] = h1;
    c[b + wFpFlags] = w1;
    c[b + wSeg] = e.segmentId;
    c[b + wOff] = e.offset;
    c[b + wLen] = e.recordLength;
    this.table[pos] = ((h2 & tagMask) << idBits) | id;
    this.count++;
    this.bytes += e.recordLength;
    this.account(e.segmentId, e.recordLength);
    this.prevSegmentId = -1;
    this.prevRecordLength = 0;
    return id;
  }

  private removeAt(pos: number, id: number): void {
    const c = this.chunks[id >>> chunkShift]!;
    const b = (id & chunkMask) * words;
    assert((c[b + wFpFlags]! & flagLive) !== 0, 'removing a free entry');
    const seg = c[b + wSeg]!;
    const len = c[b + wLen]!;
    this.prevSegmentId = seg;
    this.prevRecordLength = len;
    this.account(seg, -len);
    this.bytes -= len;
    if ((c[b + wFpFlags]! & flagTtl) !== 0) this.expiry.delete(id);
    this.backwardShift(pos);
    c[b + wFpFlags] = 0;
    c[b + wSeg] = this.freeHead;
    this.freeHead = id;
    this.count--;
  }

  /** Empties slot `pos` and pulls later slots of the run back so no probe sequence has a gap. */
  private backwardShift(pos: number): void {
    const table = this.table;
    const mask = this.mask;
    let i = pos;
    let j = pos;
    for (;;) {
      j = (j + 1) & mask;
      const s = table[j]!;
      if (s === 0) break;
      const home = this.word(s & idMask, wH1) & mask;
      // s may fill the hole at i unless its home lies cyclically in (i, j].
      if (((j - home) & mask) >= ((j - i) & mask)) {
        table[i] = s;
        i = j;
      }
    }
    table[i] = 0;
  }

  private grow(slots = this.table.length * 2): void {
    const started = performance.now();
    const old = this.table;
    assert(slots <= slotsMax, 'index table at its largest');
    const table = new Uint32Array(slots);
    const mask = slots - 1;
    for (let p = 0; p < old.length; p++) {
      const s = old[p]!;
      if (s === 0) continue;
      let q = this.word(s & idMask, wH1) & mask;
      while (table[q] !== 0) q = (q + 1) & mask;
      table[q] = s;
    }
    this.table = table;
    this.mask = mask;
    this.growAt = Math.floor(slots * indexLoadFactorMax);
    this.rehashMs += performance.now() - started;
  }

  private allocate(): number {
    if (this.freeHead !== 0) {
      const id = this.freeHead;
      this.freeHead = this.word(id, wSeg);
      return id;
    }
    const id = this.highWater++;
    assert(id <= idMask, 'entry ids exhausted');
    const k = id >>> chunkShift;
    if (k === this.chunks.length) this.chunks.push(new Uint32Array(indexChunkEntries * words));
    return id;
  }

  private account(segmentId: number, delta: number): void {
    if (delta === 0) return;
    const v = (this.segBytes.get(segmentId) ?? 0) + delta;
    assert(v >= 0, 'segment live bytes below zero');
    if (v === 0) this.segBytes.delete(segmentId);
    else this.segBytes.set(segmentId, v);
  }
}

function checkEntry(e: IndexEntry): void {
  // Cheap range checks (TigerBeetle style): a value that does not fit its word would corrupt silently.
  if (!(e.segmentId >= 0 && e.segmentId <= u32Max && e.offset >= 0 && e.offset <= u32Max && e.recordLength > 0 && e.recordLength <= u32Max)) {
    assert.fail(`index entry out of range: segment ${e.segmentId} offset ${e.offset} length ${e.recordLength}`);
  }
  if ((e.flags & ~recordFlagsMask) !== 0) assert.fail(`record flags ${e.flags} do not fit the index`);
}

/**
 * entry id -> expiresAtMs for the keys that have an expiry: open addressing
 * (linear probing, backward-shift deletion) over a Uint32Array of ids and a
 * Float64Array of times; 12 bytes a slot, load at most indexLoadFactorMax.
 */
export class ExpiryMap {
  private ids = new Uint32Array(expirySlotsMin);
  private times = new Float64Array(expirySlotsMin);
  private mask = expirySlotsMin - 1;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get memoryBytes(): number {
    return this.ids.byteLength + this.times.byteLength;
  }

  get(id: number): number | undefined {
    const ids = this.ids;
    let pos = mix(id) & this.mask;
    for (;;) {
      const s = ids[pos]!;
      if (s === id) return this.times[pos];
      if (s === 0) return undefined;
      pos = (pos + 1) & this.mask;
    }
  }

  set(id: number, at: number): void {
    assert(id > 0 && at > 0);
    let pos = mix(id) & this.mask;
    for (;;) {
      const s = this.ids[pos]!;
      if (s === id) {
        this.times[pos] = at;
        return;
      }
      if (s === 0) break;
      pos = (pos + 1) & this.mask;
    }
    if (this.count + 1 > (this.mask + 1) * indexLoadFactorMax) {
      this.grow();
      pos = mix(id) & this.mask;
      while (this.ids[pos] !== 0) pos = (pos + 1) & this.mask;
    }
    this.ids[pos] = id;
    this.times[pos] = at;
    this.count++;
  }

  delete(id: number): boolean {
    const ids = this.ids;
    const mask = this.mask;
    let i = mix(id) & mask;
    for (;;) {
      const s = ids[i]!;
      if (s === 0) return false;
      if (s === id) break;
      i = (i + 1) & mask;
    }
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const s = ids[j]!;
      if (s === 0) break;
      const home = mix(s) & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        ids[i] = s;
        this.times[i] = this.times[j]!;
        i = j;
      }
    }
    ids[i] = 0;
    this.count--;
    return true;
  }

  clear(): void {
    this.ids = new Uint32Array(expirySlotsMin);
    this.times = new Float64Array(expirySlotsMin);
    this.mask = expirySlotsMin - 1;
    this.count = 0;
  }

  private grow(): void {
    const oldIds = this.ids;
    const oldTimes = this.times;
    const slots = oldIds.length * 2;
    this.ids = new Uint32Array(slots);
    this.times = new Float64Array(slots);
    this.mask = slots - 1;
    for (let p = 0; p < oldIds.length; p++) {
      const id = oldIds[p]!;
      if (id === 0) continue;
      let q = mix(id) & this.mask;
      while (this.ids[q] !== 0) q = (q + 1) & this.mask;
      this.ids[q] = id;
      this.times[q] = oldTimes[p]!;
    }
  }
}

/** murmur3's finaliser: spreads sequential entry ids over the expiry map. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
