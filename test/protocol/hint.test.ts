// The hint file format (protocol/hint.ts): round trips, the streamed build
// gives the same bytes as the whole one, every damaged byte is refused, and a
// hint for another segment or length is refused.

import t from 'tap';
import { decodeHintFile, HINT_HEADER_BYTES, HintBuilder, hintEntryCount } from '../../protocol/hint.js';
import type { HintEntry } from '../../protocol/hint.js';
import { RECORD_HEADER_BYTES, RecordType } from '../../protocol/record.js';

const keyBytesMax = 64 * 1024;

/** Entries with keys of 0 B to 2 KiB (past the decoder's reused-buffer sizes), TTLs beyond 2^32 ms, both types. */
function entries(n: number): HintEntry[] {
  const out: HintEntry[] = [];
  let offset = 40;
  for (let i = 0; i < n; i++) {
    const key = Buffer.alloc(i % 7 === 6 ? 2000 + i : i % 20, 97 + (i % 26));
    const recordLength = RECORD_HEADER_BYTES + key.length + (i % 50);
    out.push({
      type: i % 5 === 4 ? RecordType.Tombstone : RecordType.Put,
      flags: i % 2,
      key,
      offset,
      recordLength,
      expiresAtMs: i % 3 === 0 ? 0 : 1_700_000_000_000 + i,
    });
    offset += recordLength;
  }
  return out;
}

function build(list: HintEntry[], segmentBytes: number): Buffer {
  const b = new HintBuilder(7, 64);
  for (const e of list) b.add(e);
  return Buffer.from(b.finish(segmentBytes));
}

function decoded(buf: Buffer, expected?: { segmentId: number; segmentBytes: number }): { result: ReturnType<typeof decodeHintFile>; got: HintEntry[] } {
  const got: HintEntry[] = [];
  const result = decodeHintFile(buf, keyBytesMax, (e) => got.push({ ...e, key: Buffer.from(e.key) }), expected);
  return { result, got };
}

const list = entries(300);
const segmentBytes = list.at(-1)!.offset + list.at(-1)!.recordLength;

t.test('round trip: every field of every entry, in order', async (t) => {
  const buf = build(list, segmentBytes);
  const { result, got } = decoded(buf, { segmentId: 7, segmentBytes });
  t.same(result, { kind: 'ok', segmentId: 7, segmentBytes, entries: list.length });
  t.equal(got.length, list.length);
  for (let i = 0; i < list.length; i++) {
    const [a, b] = [got[i]!, list[i]!];
    if (!a.key.equals(b.key) || a.type !== b.type || a.flags !== b.flags || a.offset !== b.offset || a.recordLength !== b.recordLength || a.expiresAtMs !== b.expiresAtMs) {
      t.fail(`entry ${i} differs`);
    }
  }
  t.equal(hintEntryCount(buf.subarray(0, HINT_HEADER_BYTES)), list.length, 'the header announces the count');
});

t.test('streamed build: the same bytes as a whole build, whatever the chunking', async (t) => {
  const whole = build(list, segmentBytes);
  for (const every of [1, 7, 50, 1000]) {
    const b = new HintBuilder(7, 64);
    const parts: Buffer[] = [Buffer.alloc(HINT_HEADER_BYTES)];
    list.forEach((e, i) => {
      b.add(e);
      if (i % every === every - 1) parts.push(Buffer.from(b.takeEntries()));
    });
    const { header, rest } = b.finishStreamed(segmentBytes);
    parts.push(rest);
    const file = Buffer.concat(parts);
    header.copy(file, 0);
    t.ok(file.equals(whole), `taken every ${every} entries`);
  }
  const b = new HintBuilder(7);
  b.add(list[0]!);
  b.takeEntries();
  t.throws(() => b.finish(segmentBytes), /finishStreamed/, 'finish() after takeEntries() is refused');
});

t.test('every flipped bit is refused, and nothing is reported for a refused file', async (t) => {
  const buf = build(list.slice(0, 20), list[19]!.offset + list[19]!.recordLength);
  let refused = 0;
  for (let at = 0; at < buf.length; at++) {
    const bad = Buffer.from(buf);
    bad[at]! ^= 1 << (at % 8);
    const { result, got } = decoded(bad);
    if (result.kind === 'corrupt' && got.length === 0) refused++;
  }
  t.equal(refused, buf.length, `${buf.length} flips refused`);
  for (const cut of [0, 10, HINT_HEADER_BYTES, buf.length - 1]) {
    t.equal(decoded(buf.subarray(0, cut)).result.kind, 'corrupt', `cut at ${cut}`);
  }
});

t.test('a hint describing another segment or another length is refused', async (t) => {
  const buf = build(list, segmentBytes);
  t.match(decoded(buf, { segmentId: 8, segmentBytes }).result, { kind: 'corrupt', reason: /segment 7/ });
  t.match(decoded(buf, { segmentId: 7, segmentBytes: segmentBytes + 1 }).result, { kind: 'corrupt', reason: /bytes/ });
  t.equal(decoded(buf, { segmentId: 8, segmentBytes }).got.length, 0);
});

t.test('the builder refuses entries out of order or that cannot be records', async (t) => {
  const b = new HintBuilder(1);
  b.add(list[1]!);
  t.throws(() => b.add(list[0]!), RangeError, 'offsets must grow');
  t.throws(() => b.add({ ...list[2]!, recordLength: 3 }), RangeError, 'a record is longer than its header and key');
  t.throws(() => b.add({ ...list[2]!, offset: 2 ** 32 }), RangeError, 'u32 offsets');
});

t.test('an entry with an unknown record flag is refused before anything is applied (its CRC is fine)', async (t) => {
  const bad = list.slice(0, 10).map((e, i) => (i === 7 ? { ...e, flags: 0x02 } : e));
  const { result, got } = decoded(build(bad, bad[9]!.offset + bad[9]!.recordLength));
  t.match(result, { kind: 'corrupt', reason: /entry 7: flags 2/ });
  t.equal(got.length, 0, 'nothing reported');
});
