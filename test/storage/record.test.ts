// The record codec (protocol/record.ts): round trips, every single-bit flip
// detected, every truncation reported as incomplete, garbage lengths rejected,
// and no input ever makes the decoder throw.

import t from 'tap';
import { crc32c } from '@node-rs/crc32';
import {
  decodeRecord,
  decodeSegmentHeader,
  encodeRecord,
  encodeRecordInto,
  encodeSegmentHeader,
  RECORD_HEADER_BYTES,
  recordLength,
  RecordFlag,
  RecordType,
  SEGMENT_HEADER_BYTES,
  SegmentFlag,
} from '../../protocol/record.js';
import type { RecordFields } from '../../protocol/record.js';
import { keyBytesMax } from '../../src/constants.js';
import { limits, rng } from './helpers.js';

const sample: RecordFields = {
  type: RecordType.Put,
  flags: RecordFlag.Zstd,
  timestampMs: 1_700_000_000_123,
  expiresAtMs: 1_700_000_060_000,
  key: Buffer.from('user:1000'),
  value: Buffer.from('a value of some length, with bytes \x00\x01\xff'),
};

t.test('round trip', async (t) => {
  const cases: RecordFields[] = [
    sample,
    { type: RecordType.Tombstone, flags: 0, timestampMs: 5, expiresAtMs: 0, key: Buffer.from('gone'), value: Buffer.alloc(0) },
    { type: RecordType.Put, flags: 0, timestampMs: 0, expiresAtMs: 0, key: Buffer.alloc(0), value: Buffer.alloc(0) },
    { type: RecordType.Put, flags: 0, timestampMs: Number.MAX_SAFE_INTEGER, expiresAtMs: Number.MAX_SAFE_INTEGER, key: Buffer.alloc(keyBytesMax, 7), value: Buffer.alloc(100_000, 9) },
  ];
  for (const rec of cases) {
    const buf = encodeRecord(rec);
    t.equal(buf.length, recordLength(rec.key.length, rec.value.length));
    const r = decodeRecord(buf, 0, buf.length, limits);
    if (r.kind !== 'ok') throw new Error(`decode failed: ${JSON.stringify(r)}`);
    t.equal(r.length, buf.length);
    t.equal(r.record.type, rec.type);
    t.equal(r.record.flags, rec.flags);
    t.equal(r.record.timestampMs, rec.timestampMs);
    t.equal(r.record.expiresAtMs, rec.expiresAtMs);
    t.same(r.record.key, rec.key);
    t.same(r.record.value, rec.value);
  }

  // At an offset inside a larger buffer, with other bytes after it.
  const len = recordLength(sample.key.length, sample.value.length);
  const big = Buffer.alloc(len + 100, 0xaa);
  t.equal(encodeRecordInto(sample, big, 40), len);
  const r = decodeRecord(big, 40, big.length, limits);
  t.equal(r.kind, 'ok');
  t.equal(r.kind === 'ok' && r.length, len);
  t.throws(() => encodeRecordInto(sample, big, 41 + 100), RangeError, 'refuses to write past the buffer');
});

t.test('every single-bit flip is detected as corrupt', async (t) => {
  for (const rec of [sample, { ...sample, type: RecordType.Tombstone, flags: 0, value: Buffer.alloc(0) } as RecordFields]) {
    const good = encodeRecord(rec);
    let corrupt = 0;
    for (let byte = 0; byte < good.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(good);
        bad[byte]! ^= 1 << bit;
        const r = decodeRecord(bad, 0, bad.length, limits);
        if (r.kind === 'corrupt') corrupt++;
        else t.fail(`flip of byte ${byte} bit ${bit} gave ${r.kind}`);
      }
    }
    t.equal(corrupt, good.length * 8);
  }
});

t.test('every truncation is incomplete, never corrupt', async (t) => {
  const good = encodeRecord(sample);
  for (let cut = 0; cut < good.length; cut++) {
    const r = decodeRecord(good, 0, cut, limits);
    t.same(r, { kind: 'incomplete', needBytes: cut < RECORD_HEADER_BYTES ? RECORD_HEADER_BYTES : good.length }, `cut at ${cut}`);
  }
});

/** Rewrites a header field and fixes the header checksum, so only the value itself is wrong. */
function withField(buf: Buffer, offset: number, value: number): Buffer {
  const b = Buffer.from(buf);
  b.writeUInt32LE(value, offset);
  b.writeUInt32LE(crc32c(b.subarray(8, RECORD_HEADER_BYTES)), 4);
  return b;
}

t.test('garbage lengths are corrupt, even with a valid header checksum', async (t) => {
  const good = encodeRecord(sample);
  for (const [name, offset, max] of [['key', 12, limits.keyBytesMax], ['value', 16, limits.valueBytesMax]] as const) {
    for (const len of [max + 1, 0xffff_ffff]) {
      const r = decodeRecord(withField(good, offset, len), 0, good.length, limits);
      t.equal(r.kind, 'corrupt', `${name} length ${len}`);
      t.match(r.kind === 'corrupt' && r.reason, `${name} length`);
    }
  }
  // A tombstone cannot carry a value.
  const tomb = encodeRecord({ ...sample, type: RecordType.Tombstone, flags: 0, value: Buffer.alloc(0) });
  t.equal(decodeRecord(withField(tomb, 16, 3), 0, tomb.length + 3, limits).kind, 'corrupt');
});

t.test('a damaged length is corrupt, not a torn record (the header checksum)', async (t) => {
  // keyLength grown by one: within limits, and the record now claims more bytes
  // than there are. Without the header checksum this would read as a torn tail.
  const good = encodeRecord(sample);
  const bad = Buffer.from(good);
  bad.writeUInt32LE(sample.key.length + 1, 12);
  const r = decodeRecord(bad, 0, bad.length, limits);
  t.equal(r.kind, 'corrupt');
  t.match(r.kind === 'corrupt' && r.reason, 'header checksum');
});

t.test('a damaged body reports the record length from its verified header', async (t) => {
  const bad = encodeRecord(sample);
  bad[bad.length - 1]! ^= 0x10;
  t.same(decodeRecord(bad, 0, bad.length, limits), {
    kind: 'corrupt',
    reason: 'record checksum mismatch',
    length: bad.length,
  });
});

t.test('never throws on random bytes (100k buffers)', async (t) => {
  const random = rng(1);
  const kinds = { ok: 0, incomplete: 0, corrupt: 0 };
  const good = encodeRecord(sample);
  for (let i = 0; i < 100_000; i++) {
    let buf: Buffer;
    if (i % 4 === 3) {
      // A valid record with one byte changed: must never decode as ok.
      buf = Buffer.from(good);
      const at = Math.floor(random() * buf.length);
      buf[at] = (buf[at]! + 1 + Math.floor(random() * 255)) & 0xff;
    } else {
      buf = Buffer.allocUnsafe(Math.floor(random() * 120));
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(random() * 256);
      // Half of them with plausible type/flags/reserved bytes, to get past the cheap checks.
      if (i % 2 === 0 && buf.length >= RECORD_HEADER_BYTES) {
        buf[8] = 1 + (i % 3 === 0 ? 1 : 0);
        buf[9] = 0;
        buf.writeUInt16LE(0, 10);
        buf.writeUInt32LE(crc32c(buf.subarray(8, RECORD_HEADER_BYTES)), 4);
      }
    }
    const offset = buf.length > 0 ? Math.floor(random() * Math.min(buf.length, 4)) : 0;
    let r;
    try {
      r = decodeRecord(buf, offset, buf.length, limits);
    } catch (err) {
      t.fail(`threw on case ${i}: ${String(err)}`);
      return;
    }
    kinds[r.kind]++;
    if (i % 4 === 3 && r.kind === 'ok') t.fail(`a changed byte decoded as ok (case ${i})`);
  }
  t.equal(kinds.ok, 0, 'random bytes never verify');
  t.ok(kinds.corrupt > 50_000 && kinds.incomplete > 1000, `all kinds seen: ${JSON.stringify(kinds)}`);
});

t.test('segment header', async (t) => {
  const h = {
    segmentId: 123456789012,
    createdAtMs: 1_700_000_000_000,
    flags: SegmentFlag.GenerationStart | SegmentFlag.CompactionOutput,
    orderKey: 123456789000,
  };
  const buf = encodeSegmentHeader(h);
  t.equal(buf.length, SEGMENT_HEADER_BYTES);
  t.same(decodeSegmentHeader(buf), { kind: 'ok', header: h });
  for (let cut = 0; cut < buf.length; cut++) {
    t.equal(decodeSegmentHeader(buf.subarray(0, cut)).kind, 'incomplete');
  }
  for (let byte = 0; byte < buf.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = Buffer.from(buf);
      bad[byte]! ^= 1 << bit;
      if (decodeSegmentHeader(bad).kind !== 'corrupt') t.fail(`flip of byte ${byte} bit ${bit} not detected`);
    }
  }
  // A version this code does not know, even with a correct checksum.
  const v3 = Buffer.from(buf);
  v3[4] = 3;
  v3.writeUInt32LE(crc32c(v3.subarray(0, 36)), 36);
  t.match(decodeSegmentHeader(v3), { kind: 'corrupt', reason: /version/ });
});
