// The on-disk format of the segment store: the segment file header and the
// framed records that follow it. This file is the ONE home of that format
// (docs/storage.md describes it in prose). It is a pure codec: bytes in,
// values out; no files, no timers, no imports from src/.
//
// All integers are little-endian. A segment file is:
//
//   segment header (40 bytes)
//   offset size field
//        0    4 magic          "DKVS" (0x44 0x4b 0x56 0x53)
//        4    1 version        SEGMENT_FORMAT_VERSION (2)
//        5    1 flags          bit 0: this segment starts a new generation;
//                              every segment with a lower id is obsolete (FLUSHALL)
//                              bit 1: written by a compaction (informational:
//                              protocol/commit.ts decides validity)
//        6    2 reserved       0
//        8    8 segmentId      u64, also the file name (000000000001.seg)
//       16    8 createdAtMs    u64 wall clock when the segment was started
//       24    8 orderKey       u64 where the segment's records sit in the log's
//                              order: segments replay by (orderKey, segmentId).
//                              A segment's own id, except for a compaction's
//                              output, which takes its newest input's orderKey
//       32    4 reserved       0
//       36    4 headerCrc      CRC32C of bytes 0..35
//
//   then records, back to back, each:
//   offset size field
//        0    4 crc            CRC32C of bytes 4..end of the record
//        4    4 headerCrc      CRC32C of bytes 8..35 (the rest of the fixed header)
//        8    1 type           1 = put, 2 = tombstone
//        9    1 flags          bit 0: value is zstd-compressed
//       10    2 reserved       0
//       12    4 keyLength      u32, <= limits.keyBytesMax
//       16    4 valueLength    u32, bytes stored (after compression), <= limits.valueBytesMax
//       20    8 timestampMs    u64 wall clock of the write
//       28    8 expiresAtMs    u64 absolute unix ms, 0 = no expiry
//       36    k key
//     36+k    v value
//
// Why two checksums: the record crc alone cannot tell "the file ends inside
// this record" (a torn write: cut it off) from "a bit flip in keyLength made
// the record look longer than the file" (corruption: skip it, keep what
// follows). The header crc lets the lengths be trusted before the decoder
// answers `incomplete`, so a torn tail is never confused with a damaged
// length in the middle of a file.
//
// Reserved bytes must be zero; a later version may give them a meaning
// (and bump SEGMENT_FORMAT_VERSION if old readers must refuse the file).

import { crc32c } from './crc32c.js';

export const SEGMENT_MAGIC = Buffer.from('DKVS', 'latin1');
export const SEGMENT_FORMAT_VERSION = 2;
export const SEGMENT_HEADER_BYTES = 40;
export const RECORD_HEADER_BYTES = 36;

export const SegmentFlag = {
  /** Every segment with a lower id is obsolete (written by FLUSHALL). */
  GenerationStart: 1,
  /** Written by a compaction. Informational: validity comes from the file's name and protocol/commit.ts. */
  CompactionOutput: 2,
} as const;
const segmentFlagsKnown = SegmentFlag.GenerationStart | SegmentFlag.CompactionOutput;

export const RecordType = {
  Put: 1,
  Tombstone: 2,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const RecordFlag = {
  /** The stored value is a zstd frame; decompress to get the user's bytes. */
  Zstd: 1,
} as const;
/** Every flag bit this version understands; a record (or hint entry) with another is corrupt. */
export const RECORD_FLAGS_KNOWN: number = RecordFlag.Zstd;
const recordFlagsKnown = RECORD_FLAGS_KNOWN;

/** Largest u64 field we accept: JavaScript numbers are exact up to 2^53. */
const u64HighMax = 0x1f_ffff;
const two32 = 0x1_0000_0000;

/** Bounds applied while decoding so garbage lengths are rejected as corrupt. */
export interface RecordLimits {
  keyBytesMax: number;
  valueBytesMax: number;
}

export interface RecordFields {
  type: RecordType;
  flags: number;
  timestampMs: number;
  expiresAtMs: number;
  key: Uint8Array;
  value: Uint8Array;
}

/** A decoded record; key and value are views into the decoded buffer, not copies. */
export interface DecodedRecord {
  type: RecordType;
  flags: number;
  timestampMs: number;
  expiresAtMs: number;
  key: Buffer;
  value: Buffer;
}

export type DecodeResult =
  | { kind: 'ok'; record: DecodedRecord; length: number }
  /** The bytes end inside this record; `needBytes` from its start would complete it. */
  | { kind: 'incomplete'; needBytes: number }
  /**
   * Damaged. `length` is set when only the body failed its checksum: the header
   * verified, so the next record should start `length` bytes on.
   */
  | { kind: 'corrupt'; reason: string; length?: number };

export interface SegmentHeader {
  segmentId: number;
  createdAtMs: number;
  flags: number;
  /** Replay position: segments replay by (orderKey, segmentId). */
  orderKey: number;
}

export type SegmentHeaderResult =
  | { kind: 'ok'; header: SegmentHeader }
  | { kind: 'incomplete'; needBytes: number }
  | { kind: 'corrupt'; reason: string };

// --- helpers -------------------------------------------------------------------

function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value % two32, offset);
  buf.writeUInt32LE(Math.floor(value / two32), offset + 4);
}

/** Reads a u64 as a number, or -1 when it does not fit in 53 bits. */
function readU64(buf: Buffer, offset: number): number {
  const high = buf.readUInt32LE(offset + 4);
  if (high > u64HighMax) return -1;
  return high * two32 + buf.readUInt32LE(offset);
}

function assertU53(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`record ${name} must be a non-negative safe integer, got ${value}`);
  }
}

// --- records ---------------------------------------------------------------------

/** Copies src into dst at `at`; a plain loop for the short keys and values that dominate (TypedArray.set has a fixed cost). */
function copyInto(src: Uint8Array, dst: Buffer, at: number): void {
  const n = src.length;
  if (n > 64) {
    dst.set(src, at);
    return;
  }
  for (let i = 0; i < n; i++) dst[at + i] = src[i]!;
}

/** Total bytes a record with these key and stored-value lengths occupies. */
export function recordLength(keyBytes: number, valueBytes: number): number {
  return RECORD_HEADER_BYTES + keyBytes + valueBytes;
}

/**
 * Encodes `rec` into `buf` at `offset` and returns the bytes written.
 * Invalid input (a programming error, not bad data) throws a RangeError.
 */
export function encodeRecordInto(rec: RecordFields, buf: Buffer, offset: number): number {
  const length = recordLength(rec.key.length, rec.value.length);
  if (offset < 0 || offset + length > buf.length) {
    throw new RangeError(`record of ${length} bytes does not fit at offset ${offset} of ${buf.length}`);
  }
  if (rec.type !== RecordType.Put && rec.type !== RecordType.Tombstone) {
    throw new RangeError(`unknown record type ${rec.type}`);
  }
  if ((rec.flags & ~recordFlagsKnown) !== 0 || rec.flags < 0 || rec.flags > 0xff) {
    throw new RangeError(`unknown record flags ${rec.flags}`);
  }
  if (rec.type === RecordType.Tombstone && (rec.value.length !== 0 || rec.flags !== 0)) {
    throw new RangeError('a tombstone has no value and no flags');
  }
  assertU53('timestampMs', rec.timestampMs);
  assertU53('expiresAtMs', rec.expiresAtMs);

  buf[offset + 8] = rec.type;
  buf[offset + 9] = rec.flags;
  buf.writeUInt16LE(0, offset + 10);
  buf.writeUInt32LE(rec.key.length, offset + 12);
  buf.writeUInt32LE(rec.value.length, offset + 16);
  writeU64(buf, rec.timestampMs, offset + 20);
  writeU64(buf, rec.expiresAtMs, offset + 28);
  copyInto(rec.key, buf, offset + RECORD_HEADER_BYTES);
  copyInto(rec.value, buf, offset + RECORD_HEADER_BYTES + rec.key.length);
  buf.writeUInt32LE(crc32c(buf, offset + 8, offset + RECORD_HEADER_BYTES), offset + 4);
  buf.writeUInt32LE(crc32c(buf, offset + 4, offset + length), offset);
  return length;
}

/** Encodes `rec` into a new Buffer of exactly its length. */
export function encodeRecord(rec: RecordFields): Buffer {
  const buf = Buffer.allocUnsafe(recordLength(rec.key.length, rec.value.length));
  encodeRecordInto(rec, buf, 0);
  return buf;
}

/**
 * Decodes and verifies the record starting at `offset`, looking no further
 * than `end`. Never throws on bad bytes: a damaged record is `corrupt`, a record
 * cut short by `end` is `incomplete`.
 */
export function decodeRecord(
  buf: Buffer,
  offset: number,
  end: number,
  limits: RecordLimits,
): DecodeResult {
  const available = end - offset;
  if (available < RECORD_HEADER_BYTES) return { kind: 'incomplete', needBytes: RECORD_HEADER_BYTES };

  // Cheap field checks first: resync after corruption calls this at every byte
  // offset, and most garbage fails here without paying for a checksum.
  const type = buf[offset + 8];
  if (type !== RecordType.Put && type !== RecordType.Tombstone) {
    return { kind: 'corrupt', reason: `unknown record type ${type}` };
  }
  const flags = buf[offset + 9]!;
  if ((flags & ~recordFlagsKnown) !== 0) return { kind: 'corrupt', reason: `unknown record flags ${flags}` };
  if (buf.readUInt16LE(offset + 10) !== 0) return { kind: 'corrupt', reason: 'reserved bytes not zero' };
  const keyLength = buf.readUInt32LE(offset + 12);
  if (keyLength > limits.keyBytesMax) {
    return { kind: 'corrupt', reason: `key length ${keyLength} over ${limits.keyBytesMax}` };
  }
  const valueLength = buf.readUInt32LE(offset + 16);
  if (valueLength > limits.valueBytesMax) {
    return { kind: 'corrupt', reason: `value length ${valueLength} over ${limits.valueBytesMax}` };
  }
  const timestampMs = readU64(buf, offset + 20);
  const expiresAtMs = readU64(buf, offset + 28);
  if (timestampMs < 0 || expiresAtMs < 0) return { kind: 'corrupt', reason: 'timestamp out of range' };
  if (type === RecordType.Tombstone && (valueLength !== 0 || flags !== 0)) {
    return { kind: 'corrupt', reason: 'tombstone with a value or flags' };
  }
  if (crc32c(buf, offset + 8, offset + RECORD_HEADER_BYTES) !== buf.readUInt32LE(offset + 4)) {
    return { kind: 'corrupt', reason: 'record header checksum mismatch' };
  }

  // The lengths are now trusted: running out of bytes means a torn record.
  const length = RECORD_HEADER_BYTES + keyLength + valueLength;
  if (available < length) return { kind: 'incomplete', needBytes: length };
  if (crc32c(buf, offset + 4, offset + length) !== buf.readUInt32LE(offset)) {
    return { kind: 'corrupt', reason: 'record checksum mismatch', length };
  }

  const keyStart = offset + RECORD_HEADER_BYTES;
  const valueStart = keyStart + keyLength;
  return {
    kind: 'ok',
    length,
    record: {
      type: type as RecordType,
      flags,
      timestampMs,
      expiresAtMs,
      key: buf.subarray(keyStart, valueStart),
      value: buf.subarray(valueStart, valueStart + valueLength),
    },
  };
}

// --- segment header -------------------------------------------------------------

export function encodeSegmentHeader(header: SegmentHeader): Buffer {
  assertU53('segmentId', header.segmentId);
  assertU53('createdAtMs', header.createdAtMs);
  assertU53('orderKey', header.orderKey);
  if ((header.flags & ~segmentFlagsKnown) !== 0 || header.flags < 0) {
    throw new RangeError(`unknown segment flags ${header.flags}`);
  }
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES); // zeroed: reserved bytes stay 0
  SEGMENT_MAGIC.copy(buf, 0);
  buf[4] = SEGMENT_FORMAT_VERSION;
  buf[5] = header.flags;
  writeU64(buf, header.segmentId, 8);
  writeU64(buf, header.createdAtMs, 16);
  writeU64(buf, header.orderKey, 24);
  buf.writeUInt32LE(crc32c(buf, 0, 36), 36);
  return buf;
}

/** Decodes and verifies a segment header at the start of `buf`. Never throws. */
export function decodeSegmentHeader(buf: Buffer): SegmentHeaderResult {
  if (buf.length < SEGMENT_HEADER_BYTES) return { kind: 'incomplete', needBytes: SEGMENT_HEADER_BYTES };
  if (!buf.subarray(0, 4).equals(SEGMENT_MAGIC)) return { kind: 'corrupt', reason: 'bad magic' };
  if (crc32c(buf, 0, 36) !== buf.readUInt32LE(36)) {
    return { kind: 'corrupt', reason: 'segment header checksum mismatch' };
  }
  // Checked after the crc so that a damaged byte reads as damage, not as a newer version.
  if (buf[4] !== SEGMENT_FORMAT_VERSION) {
    return { kind: 'corrupt', reason: `unsupported format version ${buf[4]}` };
  }
  const flags = buf[5]!;
  if ((flags & ~segmentFlagsKnown) !== 0) return { kind: 'corrupt', reason: `unknown segment flags ${flags}` };
  const segmentId = readU64(buf, 8);
  const createdAtMs = readU64(buf, 16);
  const orderKey = readU64(buf, 24);
  if (segmentId < 0 || createdAtMs < 0 || orderKey < 0) return { kind: 'corrupt', reason: 'segment id out of range' };
  if (buf.readUInt16LE(6) !== 0 || buf.readUInt32LE(32) !== 0) return { kind: 'corrupt', reason: 'reserved bytes not zero' };
  return { kind: 'ok', header: { segmentId, createdAtMs, flags, orderKey } };
}
