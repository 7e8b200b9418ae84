// The hint file format: what the key directory needs from one sealed
// segment, without the values, so that start-up reads a few bytes per key
// instead of every record (Bitcask's hint files). This file is the ONE home
// of that format (docs/storage.md describes it in prose). Pure codec.
//
// All integers are little-endian. `000000000042.hint` describes
// `000000000042.seg`:
//
//   header (32 bytes)
//   offset size field
//        0    4 magic          "DKVH"
//        4    1 version        HINT_FORMAT_VERSION (1)
//        5    3 reserved       0
//        8    8 segmentId      u64, must match the segment
//       16    8 segmentBytes   u64, length of the segment file described; a
//                              segment of any other length is scanned instead
//       24    4 entryCount     u32
//       28    4 headerCrc      CRC32C of bytes 0..27
//
//   then entryCount entries, in the segment's record order, each:
//        0    1 type           as the record (1 = put, 2 = tombstone)
//        1    1 flags          as the record
//        2    2 reserved       0
//        4    4 keyLength      u32
//        8    4 offset         u32, of the record in the segment
//       12    4 recordLength   u32, bytes of the whole record
//       16    8 expiresAtMs    u64, 0 = none
//       24    k key
//
//   then a 4-byte trailer: CRC32C of every entry byte (32..end-4).
//
// One checksum for the whole body: a hint file is read whole and used whole,
// or not at all (its segment is scanned instead), so there is nothing to gain
// from finding which entry is damaged.

import { crc32c } from './crc32c.js';
import { RECORD_FLAGS_KNOWN, RECORD_HEADER_BYTES, RecordType } from './record.js';

export const HINT_MAGIC = Buffer.from('DKVH', 'latin1');
export const HINT_FORMAT_VERSION = 1;
export const HINT_HEADER_BYTES = 32;
export const HINT_ENTRY_HEADER_BYTES = 24;
const HINT_TRAILER_BYTES = 4;
const two32 = 0x1_0000_0000;

export interface HintEntry {
  type: RecordType;
  flags: number;
  key: Buffer;
  offset: number;
  recordLength: number;
  expiresAtMs: number;
}

/** Bytes one entry takes in a hint file. */
export function hintEntryBytes(keyLength: number): number {
  return HINT_ENTRY_HEADER_BYTES + keyLength;
}

/**
 * Builds a hint file entry by entry: whole in memory (finish), or streamed,
 * handing out the entries so far with takeEntries() and the header and the
 * rest at the end with finishStreamed(), so that a hint of a large segment
 * never sits whole in memory.
 */
export class HintBuilder {
  private buf: Buffer;
  private used = HINT_HEADER_BYTES;
  private count = 0;
  private lastOffset = -1;
  /** CRC32C of the entry bytes already handed out by takeEntries(). */
  private takenCrc = 0;
  private taken = false;

  constructor(private readonly segmentId: number, sizeHint = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(sizeHint, HINT_HEADER_BYTES + HINT_TRAILER_BYTES));
  }

  get entries(): number {
    return this.count;
  }

  add(e: HintEntry): void {
    if (e.offset <= this.lastOffset) throw new RangeError('hint entries must come in offset order');
    if (e.offset >= two32 || e.recordLength >= two32) throw new RangeError('hint offset or length over u32');
    if (e.recordLength < RECORD_HEADER_BYTES + e.key.length) throw new RangeError('hint record length too small');
    this.lastOffset = e.offset;
    const need = hintEntryBytes(e.key.length);
    this.reserve(need + HINT_TRAILER_BYTES);
    const b = this.buf;
    const at = this.used;
    b[at] = e.type;
    b[at + 1] = e.flags;
    b.writeUInt16LE(0, at + 2);
    b.writeUInt32LE(e.key.length, at + 4);
    b.writeUInt32LE(e.offset, at + 8);
    b.writeUInt32LE(e.recordLength, at + 12);
    b.writeUInt32LE(e.expiresAtMs % two32, at + 16);
    b.writeUInt32LE(Math.floor(e.expiresAtMs / two32), at + 20);
    b.set(e.key, at + HINT_ENTRY_HEADER_BYTES);
    this.used += need;
    this.count++;
  }

  /**
   * The entry bytes added since the last call (they follow the 32-byte
   * header in the file, in call order). The view is valid until the next add().
   */
  takeEntries(): Buffer {
    const start = this.taken ? 0 : HINT_HEADER_BYTES;
    const out = this.buf.subarray(start, this.used);
    this.takenCrc = crc32c(this.buf, start, this.used, this.takenCrc);
    this.taken = true;
    this.used = 0;
    return out;
  }

  /** After takeEntries(): the header (for offset 0) and the rest of the file (after the entries taken). */
  finishStreamed(segmentBytes: number): { header: Buffer; rest: Buffer } {
    const start = this.taken ? 0 : HINT_HEADER_BYTES;
    this.reserve(HINT_TRAILER_BYTES);
    const crc = crc32c(this.buf, start, this.used, this.takenCrc);
    this.buf.writeUInt32LE(crc, this.used);
    const rest = Buffer.from(this.buf.subarray(start, this.used + HINT_TRAILER_BYTES));
    const header = Buffer.alloc(HINT_HEADER_BYTES);
    this.writeHeader(header, segmentBytes);
    return { header, rest };
  }

  /** The finished file for a segment of `segmentBytes` bytes (built whole in memory: no takeEntries()). */
  finish(segmentBytes: number): Buffer {
    if (this.taken) throw new Error('finish() after takeEntries(): use finishStreamed()');
    this.reserve(HINT_TRAILER_BYTES);
    const b = this.buf;
    this.writeHeader(b, segmentBytes);
    b.writeUInt32LE(crc32c(b, HINT_HEADER_BYTES, this.used), this.used);
    return b.subarray(0, this.used + HINT_TRAILER_BYTES);
  }

  private writeHeader(b: Buffer, segmentBytes: number): void {
    HINT_MAGIC.copy(b, 0);
    b[4] = HINT_FORMAT_VERSION;
    b.fill(0, 5, 8);
    b.writeUInt32LE(this.segmentId % two32, 8);
    b.writeUInt32LE(Math.floor(this.segmentId / two32), 12);
    b.writeUInt32LE(segmentBytes % two32, 16);
    b.writeUInt32LE(Math.floor(segmentBytes / two32), 20);
    b.writeUInt32LE(this.count, 24);
    b.writeUInt32LE(crc32c(b, 0, 28), 28);
  }

  private reserve(n: number): void {
    if (this.used + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + n));
    this.buf.copy(grown, 0, 0, this.used);
    this.buf = grown;
  }
}

export type HintDecodeResult =
  | { kind: 'ok'; segmentId: number; segmentBytes: number; entries: number }
  | { kind: 'corrupt'; reason: string };

/** What a hint file must describe to be used: the segment beside it, at its current size. */
export interface HintExpectation {
  segmentId: number;
  segmentBytes: number;
}

/** Keys up to this length are handed to decode callbacks in reused buffers (one per length). */
const scratchKeyBytesMax = 1024;

/**
 * The number of entries a hint file announces, from its first
 * HINT_HEADER_BYTES; undefined unless magic, version and header checksum are
 * good. For sizing the index before the entries are read; decodeHintFile
 * still verifies everything.
 */
export function hintEntryCount(header: Buffer): number | undefined {
  if (header.length < HINT_HEADER_BYTES || !header.subarray(0, 4).equals(HINT_MAGIC)) return undefined;
  if (header[4] !== HINT_FORMAT_VERSION || crc32c(header, 0, 28) !== header.readUInt32LE(28)) return undefined;
  return header.readUInt32LE(24);
}

/**
 * Verifies a whole hint file (and, with `expected`, that it describes that
 * segment) and, only if every check passes, calls `each` for every entry in
 * order. Never throws on bad bytes; nothing is reported for a file that fails.
 *
 * Start-up feeds millions of entries through `each`, so nothing is allocated
 * per entry: the entry object is reused, and `key` is a reused buffer (keys
 * up to 1 KiB) or a view into `buf`. Both are valid only during the call;
 * copy what you keep.
 */
export function decodeHintFile(
  buf: Buffer,
  keyBytesMax: number,
  each: (e: HintEntry) => void,
  expected?: HintExpectation,
): HintDecodeResult {
  if (buf.length < HINT_HEADER_BYTES + HINT_TRAILER_BYTES) return { kind: 'corrupt', reason: 'shorter than a hint header' };
  if (!buf.subarray(0, 4).equals(HINT_MAGIC)) return { kind: 'corrupt', reason: 'bad magic' };
  if (crc32c(buf, 0, 28) !== buf.readUInt32LE(28)) return { kind: 'corrupt', reason: 'hint header checksum mismatch' };
  if (buf[4] !== HINT_FORMAT_VERSION) return { kind: 'corrupt', reason: `unsupported hint version ${buf[4]}` };
  const segmentId = buf.readUInt32LE(12) * two32 + buf.readUInt32LE(8);
  const segmentBytes = buf.readUInt32LE(20) * two32 + buf.readUInt32LE(16);
  const count = buf.readUInt32LE(24);
  if (expected !== undefined && expected.segmentId !== segmentId) return { kind: 'corrupt', reason: `describes segment ${segmentId}` };
  if (expected !== undefined && expected.segmentBytes !== segmentBytes) {
    return { kind: 'corrupt', reason: `describes ${segmentBytes} bytes, the segment has ${expected.segmentBytes}` };
  }
  const bodyEnd = buf.length - HINT_TRAILER_BYTES;
  if (crc32c(buf, HINT_HEADER_BYTES, bodyEnd) !== buf.readUInt32LE(bodyEnd)) {
    return { kind: 'corrupt', reason: 'hint body checksum mismatch' };
  }

  // Walk once to validate every field before reporting any entry: a hint is all or nothing.
  let at = HINT_HEADER_BYTES;
  let lastEnd = 0;
  for (let i = 0; i < count; i++) {
    if (at + HINT_ENTRY_HEADER_BYTES > bodyEnd) return { kind: 'corrupt', reason: `entry ${i} runs past the end` };
    const type = buf[at];
    const keyLength = buf.readUInt32LE(at + 4);
    const offset = buf.readUInt32LE(at + 8);
    const recordLength = buf.readUInt32LE(at + 12);
    if (type !== RecordType.Put && type !== RecordType.Tombstone) return { kind: 'corrupt', reason: `entry ${i}: type ${type}` };
    // Checked here, not left to the index: a hint is applied all or nothing.
    if ((buf[at + 1]! & ~RECORD_FLAGS_KNOWN) !== 0 || buf.readUInt16LE(at + 2) !== 0) {
      return { kind: 'corrupt', reason: `entry ${i}: flags ${buf[at + 1]} or reserved bytes ${buf.readUInt16LE(at + 2)}` };
    }
    if (keyLength > keyBytesMax) return { kind: 'corrupt', reason: `entry ${i}: key length ${keyLength}` };
    if (offset < lastEnd || recordLength < RECORD_HEADER_BYTES + keyLength || offset + recordLength > segmentBytes) {
      return { kind: 'corrupt', reason: `entry ${i}: record at ${offset} (+${recordLength}) out of place` };
    }
    lastEnd = offset + recordLength;
    at += HINT_ENTRY_HEADER_BYTES + keyLength;
  }
  if (at !== bodyEnd) return { kind: 'corrupt', reason: 'bytes after the last entry' };

  const scratch: Buffer[] = [];
  const e: HintEntry = { type: RecordType.Put, flags: 0, key: buf, offset: 0, recordLength: 0, expiresAtMs: 0 };
  at = HINT_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const keyLength = buf.readUInt32LE(at + 4);
    const keyAt = at + HINT_ENTRY_HEADER_BYTES;
    if (keyLength <= scratchKeyBytesMax) {
      const k = (scratch[keyLength] ??= Buffer.allocUnsafe(keyLength));
      for (let j = 0; j < keyLength; j++) k[j] = buf[keyAt + j]!;
      e.key = k;
    } else {
      e.key = buf.subarray(keyAt, keyAt + keyLength);
    }
    e.type = buf[at] as RecordType;
    e.flags = buf[at + 1]!;
    e.offset = buf.readUInt32LE(at + 8);
    e.recordLength = buf.readUInt32LE(at + 12);
    e.expiresAtMs = buf.readUInt32LE(at + 20) * two32 + buf.readUInt32LE(at + 16);
    each(e);
    at = keyAt + keyLength;
  }
  return { kind: 'ok', segmentId, segmentBytes, entries: count };
}
