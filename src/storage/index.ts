// The key directory: for every live key, where its newest record lives.
// Everything else in the store reaches it through the small KeyIndex
// interface, so a compact typed-array index can replace MapIndex later
// without touching the callers.
//
// Keys are `key.toString('latin1')`: a binary-safe 1:1 mapping of bytes to a
// JavaScript string, which makes them usable as Map keys.
//
// SCAN guarantee: every key gets a slot id, taken from a counter that only
// grows, when it enters the index; overwriting a key keeps its slot. Slots are
// kept in slot-id order, and a scan cursor is the next slot id to visit. So a
// key present for the whole scan has one fixed slot that the cursor passes
// exactly once, however many keys are added or removed meanwhile. Deleted
// slots leave holes that are squeezed out now and then; since slot ids are
// not renumbered, outstanding cursors stay valid (they are looked up by
// binary search).

import assert from 'node:assert/strict';

export interface IndexEntry {
  segmentId: number;
  /** Offset of the record within its segment file. */
  offset: number;
  /** Bytes of the whole record (header, key, stored value). */
  recordLength: number;
  /** Absolute unix ms, 0 = no expiry. */
  expiresAtMs: number;
  /** The record's flags (protocol/record.ts RecordFlag). */
  flags: number;
}

export interface KeyIndex {
  readonly size: number;
  /** Sum of recordLength over all entries: the bytes a compaction would keep. */
  readonly liveBytes: number;
  /** The entry of `key`. It is the index's own object: read it, do not keep it. */
  get(key: string): Readonly<IndexEntry> | undefined;
  /** Points `key` at a record (fields are copied). */
  set(key: string, entry: IndexEntry): void;
  delete(key: string): boolean;
  clear(): void;
  keys(): IterableIterator<string>;
  /** Up to `count` keys from `cursor` on (0 starts); the returned cursor is 0 at the end. */
  scan(cursor: number, count: number): { cursor: number; keys: string[] };
  randomKey(): string | undefined;
}

class Slot implements IndexEntry {
  constructor(
    public segmentId: number,
    public offset: number,
    public recordLength: number,
    public expiresAtMs: number,
    public flags: number,
    readonly slotId: number,
  ) {}
}

/** Squeeze out holes only when there are many, so the cost is amortised over deletes. */
const holesCompactMin = 1024;
/** randomKey() probes this many slots before falling back to walking the map. */
const randomProbesMax = 32;

export class MapIndex implements KeyIndex {
  private readonly map = new Map<string, Slot>();
  /** Keys in slot-id order; undefined marks a deleted slot (a hole). */
  private slotKeys: (string | undefined)[] = [];
  /** slotIds[i] is the slot id of slotKeys[i]; strictly increasing. */
  private slotIds: number[] = [];
  private holes = 0;
  private nextSlotId = 1; // 0 is the "start" cursor
  private bytes = 0;

  get size(): number {
    return this.map.size;
  }

  get liveBytes(): number {
    return this.bytes;
  }

  get(key: string): Readonly<IndexEntry> | undefined {
    return this.map.get(key);
  }

  set(key: string, e: IndexEntry): void {
    const cur = this.map.get(key);
    if (cur) {
      this.bytes += e.recordLength - cur.recordLength;
      cur.segmentId = e.segmentId;
      cur.offset = e.offset;
      cur.recordLength = e.recordLength;
      cur.expiresAtMs = e.expiresAtMs;
      cur.flags = e.flags;
      return;
    }
    const slot = new Slot(e.segmentId, e.offset, e.recordLength, e.expiresAtMs, e.flags, this.nextSlotId++);
    this.map.set(key, slot);
    this.slotKeys.push(key);
    this.slotIds.push(slot.slotId);
    this.bytes += e.recordLength;
  }

  delete(key: string): boolean {
    const slot = this.map.get(key);
    if (!slot) return false;
    this.map.delete(key);
    this.bytes -= slot.recordLength;
    const i = this.positionOf(slot.slotId);
    assert.equal(this.slotIds[i], slot.slotId, 'index slot missing');
    assert.equal(this.slotKeys[i], key, 'index slot holds another key');
    this.slotKeys[i] = undefined;
    this.holes++;
    if (this.holes >= holesCompactMin && this.holes * 2 > this.slotKeys.length) this.compact();
    return true;
  }

  clear(): void {
    this.map.clear();
    this.slotKeys = [];
    this.slotIds = [];
    this.holes = 0;
    this.bytes = 0;
    // nextSlotId keeps growing, so a cursor from before the clear simply runs out.
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  scan(cursor: number, count: number): { cursor: number; keys: string[] } {
    assert(count >= 1, 'scan count must be at least 1');
    const keys: string[] = [];
    let i = cursor === 0 ? 0 : this.positionOf(cursor);
    const n = this.slotKeys.length;
    while (i < n && keys.length < count) {
      const k = this.slotKeys[i++];
      if (k !== undefined) keys.push(k);
    }
    return { cursor: i < n ? this.slotIds[i]! : 0, keys };
  }

  randomKey(): string | undefined {
    if (this.map.size === 0) return undefined;
    // Holes are at most about half of the slots, so a probe hits a key with p >= 1/2.
    for (let probe = 0; probe < randomProbesMax; probe++) {
      const k = this.slotKeys[Math.floor(Math.random() * this.slotKeys.length)];
      if (k !== undefined) return k;
    }
    return this.map.keys().next().value;
  }

  /** Index of the first slot whose id is >= slotId (binary search). */
  private positionOf(slotId: number): number {
    let lo = 0;
    let hi = this.slotIds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.slotIds[mid]! < slotId) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private compact(): void {
    const keys: string[] = [];
    const ids: number[] = [];
    for (let i = 0; i < this.slotKeys.length; i++) {
      const k = this.slotKeys[i];
      if (k !== undefined) {
        keys.push(k);
        ids.push(this.slotIds[i]!);
      }
    }
    this.slotKeys = keys;
    this.slotIds = ids;
    this.holes = 0;
    assert.equal(keys.length, this.map.size, 'index slots out of step with the map');
  }
}
