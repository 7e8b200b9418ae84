// The compact index on its own: the hash against the reference vectors,
// random operations against a Map (seeded), rehashing, backward-shift
// deletion, forced fingerprint collisions resolved by verification, SCAN
// stability across growth and relocate, the compaction API and its per-segment
// accounting, and 1M keys within 32 bytes each. Then the same collisions
// through a real SegmentStore (cold reads, writes, restart).

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { halfSipHash, seededHasher } from '../../src/storage/hash.js';
import type { KeyHash, KeyHasher } from '../../src/storage/hash.js';
import { CompactIndex } from '../../src/storage/index.js';
import type { IndexEntry } from '../../src/storage/index.js';
import { durable, open, read, rng, tempDir } from './helpers.js';

const b = (s: string) => Buffer.from(s);

/**
 * A stand-in for the segment files: every set() gets a fresh location, and
 * the verifier reads the key "stored" there, as the store reads a record.
 */
class FakeRecords {
  private next = 1;
  readonly keyAt = new Map<string, string>();
  reads = 0;
  constructor(readonly index: CompactIndex) {
    index.verify = (id, key) => {
      this.reads++;
      return this.keyAt.get(`${index.segmentIdOf(id)}:${index.offsetOf(id)}`) === key.toString('latin1');
    };
  }
  location(key: string, seg = 1 + (this.next % 7), expiresAtMs = 0): IndexEntry {
    const offset = this.next++;
    this.keyAt.set(`${seg}:${offset}`, key);
    return { segmentId: seg, offset, recordLength: 36 + key.length + (offset % 50), expiresAtMs, flags: offset % 2 };
  }
  set(key: string, expiresAtMs = 0): IndexEntry {
    const e = this.location(key, undefined, expiresAtMs);
    this.index.set(b(key), e);
    return e;
  }
}

const seeded = seededHasher({ k0: 0x01234567, k1: 0x89abcdef });

t.test('HalfSipHash-2-4 matches the reference vectors (key 00..07, input 00..n-1)', async (t) => {
  // vectors_hsip32 of the reference implementation (github.com/veorq/SipHash), as little-endian u32.
  const expected = [0x5b9f35a9, 0xb85a4727, 0x03a662fa, 0x04e7fe8a, 0x89466e2a, 0x69b6fac5, 0x23fc6358, 0xc563cf8b, 0x8f84b8d0];
  const out: KeyHash = { h1: 0, h2: 0 };
  for (let n = 0; n < expected.length; n++) {
    const input = Buffer.from(Array.from({ length: n }, (_, i) => i));
    halfSipHash(input, 0x03020100, 0x07060504, 2, 4, false, out);
    t.equal(out.h1, expected[n], `input of ${n} bytes`);
  }
  // The index's variant: 64 bits, different for different seeds and keys.
  const a: KeyHash = { h1: 0, h2: 0 };
  seeded(b('hello'), a);
  const c: KeyHash = { h1: 0, h2: 0 };
  seededHasher({ k0: 1, k1: 2 })(b('hello'), c);
  t.not(`${a.h1}:${a.h2}`, `${c.h1}:${c.h2}`, 'the seed changes the hash');
  seeded(b('hellp'), c);
  t.not(`${a.h1}:${a.h2}`, `${c.h1}:${c.h2}`, 'one byte changes the hash');
});

/** Random operations against a Map, checking every answer and (now and then) every invariant. */
function propertyRun(t: Test, hasher: KeyHasher, seed: number, ops: number, keySpace: number): void {
  const index = new CompactIndex({ hasher, slots: 4 });
  const recs = new FakeRecords(index);
  const ref = new Map<string, IndexEntry>();
  const random = rng(seed);
  let slotsSeen = index.slots;
  for (let i = 0; i < ops; i++) {
    const key = `key:${Math.floor(random() * keySpace)}`;
    const r = random();
    if (r < 0.5) {
      const ttl = random() < 0.2 ? 1_700_000_000_000 + i : 0;
      const before = ref.get(key);
      const e = recs.set(key, ttl);
      ref.set(key, e);
      if (before) {
        if (index.prevSegmentId !== before.segmentId || index.prevRecordLength !== before.recordLength) t.fail(`prev of ${key}`);
      } else if (index.prevSegmentId !== -1) t.fail(`new ${key} reported a previous location`);
    } else if (r < 0.75) {
      const before = ref.get(key);
      const id = index.delete(b(key));
      if ((id !== 0) !== (before !== undefined)) t.fail(`delete ${key}`);
      ref.delete(key);
    } else {
      const id = index.find(b(key));
      const e = ref.get(key);
      if (e === undefined) {
        if (id !== 0) t.fail(`found deleted ${key}`);
      } else if (id === 0 || index.segmentIdOf(id) !== e.segmentId || index.offsetOf(id) !== e.offset || index.expiresAtOf(id) !== e.expiresAtMs || index.recordFlagsOf(id) !== e.flags) {
        t.fail(`wrong entry for ${key}`);
      }
    }
    if (index.slots !== slotsSeen) slotsSeen = index.slots;
    if (i % 5000 === 0) index.check();
  }
  index.check();
  t.equal(index.size, ref.size, 'size');
  let bytes = 0;
  let misplaced = 0;
  for (const [key, e] of ref) {
    bytes += e.recordLength;
    const id = index.find(b(key));
    if (id === 0 || index.offsetOf(id) !== e.offset) misplaced++;
  }
  t.equal(misplaced, 0, 'every key at its place');
  t.equal(index.liveBytes, bytes, 'liveBytes');
  t.ok(slotsSeen >= 256, `the table grew (4 -> ${slotsSeen} slots)`);
}

t.test('random operations agree with a Map (seeded hash)', async (t) => {
  for (const seed of [1, 2, 3]) propertyRun(t, seeded, seed, 40_000, 3000);
});

t.test('forced collisions: every key has the same hash; verification tells them apart', async (t) => {
  const same: KeyHasher = (_key, out) => {
    out.h1 = 0xfffffffe; // home slot at the very end of any table: runs wrap around
    out.h2 = 0x12345678;
  };
  propertyRun(t, same, 7, 6000, 300);
});

t.test('partial collisions: few home slots, fingerprints equal, wrap-around, backward shift', async (t) => {
  const few: KeyHasher = (key, out) => {
    const n = Number(key.toString().split(':')[1]);
    out.h1 = (0xffffff00 + (n % 5) * 0x11) >>> 0;
    out.h2 = n % 3 === 0 ? 0xabcdef01 : ((n * 2654435761) >>> 0);
  };
  propertyRun(t, few, 11, 20_000, 500);
});

t.test('deletes shift later entries back: no tombstones, lookups stay short', async (t) => {
  const index = new CompactIndex({ hasher: seeded, slots: 1024 });
  const recs = new FakeRecords(index);
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 700; i++) recs.set(`r${round}:${i}`);
    let missed = 0;
    for (let i = 0; i < 700; i++) if (index.delete(b(`r${round}:${i}`)) === 0) missed++;
    if (missed !== 0) t.fail(`round ${round}: ${missed} deletes missed`);
    index.check();
  }
  t.equal(index.size, 0);
  t.equal(index.slots, 1024, 'churn below the load factor never grows the table');
  // Free ids are reused: the entry arrays did not grow with the churn.
  for (let i = 0; i < 700; i++) recs.set(`again:${i}`);
  t.ok([...index.ids()].every((id) => id <= 700), 'ids reused from the free list');
});

t.test('scan is stable across table growth, deletes and relocate', async (t) => {
  const index = new CompactIndex({ hasher: seeded, slots: 16 });
  const recs = new FakeRecords(index);
  const stable: string[] = [];
  for (let i = 0; i < 300; i++) {
    recs.set(`s${i}`);
    if (i % 2 === 0) stable.push(`s${i}`);
  }
  const seen = new Set<number>();
  const seenKeys = new Set<string>();
  let cursor = 0;
  let step = 0;
  const slotsBefore = index.slots;
  do {
    const r = index.scan(cursor, 10);
    for (const id of r.ids) {
      seen.add(id);
      seenKeys.add(recs.keyAt.get(`${index.segmentIdOf(id)}:${index.offsetOf(id)}`)!);
    }
    cursor = r.cursor;
    step++;
    for (let j = 0; j < 8; j++) recs.set(`grow${step}:${j}`); // forces several rehashes
    const odd = `s${(step * 2 + 1) % 300}`;
    index.delete(b(odd));
    // Compaction moves a stable key (CAS on its current location).
    const key = stable[(step * 13) % stable.length]!;
    const id = index.find(b(key));
    const from = { seg: index.segmentIdOf(id), off: index.offsetOf(id) };
    const to = recs.location(key, 99);
    if (!index.relocate(b(key), from.seg, from.off, to)) t.fail(`relocate of ${key} refused`);
    if (index.find(b(key)) !== id) t.fail('relocate changed the entry id');
  } while (cursor !== 0 && step < 100_000);
  t.equal(cursor, 0, `the scan ended (${step} steps)`);
  t.ok(index.slots >= slotsBefore * 4, `the table grew during the scan (${slotsBefore} -> ${index.slots})`);
  t.same(stable.filter((k) => !seenKeys.has(k)), [], 'every key present throughout was returned');
  index.check();
});

t.test('isAt, relocate (compare-and-set) and per-segment live bytes', async (t) => {
  const index = new CompactIndex({ hasher: seeded });
  const recs = new FakeRecords(index);
  const a = recs.location('a', 1);
  const c = recs.location('c', 1);
  index.set(b('a'), a);
  index.set(b('c'), c);
  t.equal(index.segmentLiveBytes(1), a.recordLength + c.recordLength);
  t.ok(index.isAt(b('a'), 1, a.offset));
  t.notOk(index.isAt(b('a'), 1, c.offset), 'another location');
  t.notOk(index.isAt(b('zz'), 1, a.offset), 'another key');

  // The key is overwritten (a newer record in segment 2) before compaction copies the old one.
  const newer = recs.location('a', 2);
  index.set(b('a'), newer);
  t.equal(index.prevSegmentId, 1);
  t.equal(index.prevRecordLength, a.recordLength);
  const copy = recs.location('a', 3);
  t.notOk(index.relocate(b('a'), 1, a.offset, copy), 'a stale move is refused');
  t.ok(index.isAt(b('a'), 2, newer.offset), 'the newer record stays');

  const moved = { ...recs.location('c', 3), expiresAtMs: 5000 };
  t.ok(index.relocate(b('c'), 1, c.offset, moved));
  t.equal(index.prevSegmentId, 1);
  t.equal(index.segmentLiveBytes(1), 0, 'segment 1 holds nothing live');
  t.equal(index.segmentLiveBytes(2), newer.recordLength);
  t.equal(index.segmentLiveBytes(3), moved.recordLength);
  t.equal(index.expiresAtOf(index.find(b('c'))), 5000, 'relocate carries the expiry');
  t.same([...index.segmentsLiveBytes()].sort(), [[2, newer.recordLength], [3, moved.recordLength]]);
  index.delete(b('c'));
  t.equal(index.segmentLiveBytes(3), 0);
  t.equal(index.prevSegmentId, 3, 'delete reports the location it removed');
  index.check();
  index.clear();
  t.equal(index.segmentLiveBytes(2), 0);
  t.equal(index.size, 0);
  t.equal(index.scan(0, 10).cursor, 0);
});

t.test('expiry only for keys that have one', async (t) => {
  const index = new CompactIndex({ hasher: seeded });
  const recs = new FakeRecords(index);
  recs.set('plain');
  recs.set('ttl', 123456);
  t.equal(index.expiringKeys, 1);
  t.equal(index.expiresAtOf(index.find(b('plain'))), 0);
  t.equal(index.expiresAtOf(index.find(b('ttl'))), 123456);
  recs.set('ttl'); // PERSIST-like overwrite
  t.equal(index.expiringKeys, 0);
  recs.set('plain', 99);
  t.equal(index.expiresAtOf(index.find(b('plain'))), 99);
  index.delete(b('plain'));
  t.equal(index.expiringKeys, 0);
  for (let i = 0; i < 10_000; i++) recs.set(`t${i}`, 1 + i);
  for (let i = 0; i < 10_000; i += 2) index.delete(b(`t${i}`));
  for (let i = 1; i < 10_000; i += 2) if (index.expiresAtOf(index.find(b(`t${i}`))) !== 1 + i) t.fail(`t${i}`);
  index.check();
});

t.test('1M keys within 32 bytes of RAM each (the index counts its own typed arrays)', async (t) => {
  const index = new CompactIndex({ hasher: seeded });
  const n = 1_000_000;
  // The verifier derives the key from the location (offset = i), as a record read would.
  index.verify = (id, key) => key.toString() === `user:${index.offsetOf(id)}`;
  const e: IndexEntry = { segmentId: 1, offset: 0, recordLength: 152, expiresAtMs: 0, flags: 0 };
  for (let i = 0; i < n; i++) {
    e.offset = i;
    index.set(b(`user:${i}`), e);
  }
  t.equal(index.size, n);
  const perKey = index.memoryBytes / n;
  t.ok(perKey <= 32, `${perKey.toFixed(1)} bytes per key`);
  let wrong = 0;
  for (let i = 0; i < n; i += 97) if (index.offsetOf(index.find(b(`user:${i}`))) !== i) wrong++;
  t.equal(wrong, 0, 'lookups find their keys');
  t.equal(index.find(b('user:x')), 0);
  t.equal(index.segmentLiveBytes(1), 152 * n);
});

// --- through the store --------------------------------------------------------

const collide: KeyHasher = (_key, out) => {
  out.h1 = 42;
  out.h2 = 0xdeadbeef;
};

t.test('store: forced fingerprint collisions give right answers (cold reads, writes, restart)', async (t) => {
  const dir = tempDir(t);
  const n = 120;
  let store = await open(dir, { cacheBytes: 0, indexHasher: collide });
  for (let i = 0; i < n; i++) store.put(b(`k${i}`), b(`v${i}`), i % 4 === 0 ? Date.now() + 3_600_000 : 0);
  await durable(store);
  let wrong = 0;
  for (let i = 0; i < n; i++) if ((await read(store, `k${i}`)) !== `v${i}`) wrong++;
  t.equal(wrong, 0, 'every value read back (cold, through false matches)');
  t.ok(store.stats().falseMatches > 0, 'there were false matches to resolve');
  t.equal(await read(store, 'nope'), undefined);
  t.ok(store.has(b('k77')));
  t.notOk(store.has(b('k777')));
  t.ok(store.delete(b('k5')));
  t.notOk(store.delete(b('k5')));
  store.put(b('k6'), b('six'), 0);
  t.equal(store.expiryOf(b('k8'))! > 0, true);
  t.equal(store.expiryOf(b('k9')), 0);
  const scanned = new Set<string>();
  let cursor = 0;
  do {
    const r = store.scan(cursor, 16);
    for (const k of r.keys) scanned.add(k.toString());
    cursor = r.cursor;
  } while (cursor !== 0);
  t.equal(scanned.size, n - 1, 'scan reads every key from the records');
  t.notOk(scanned.has('k5'));
  await store.close();

  store = await open(dir, { cacheBytes: 0, indexHasher: collide });
  t.teardown(() => store.close());
  t.equal(store.size, n - 1, 'recovery verified every overwrite and delete');
  t.equal(await read(store, 'k5'), undefined);
  t.equal(await read(store, 'k6'), 'six');
  t.equal(await read(store, 'k119'), 'v119');
  t.same([...store.keys()].map(String).sort(), [...scanned].sort());
});

t.test('store: hash seed is kept in the data directory', async (t) => {
  const seedOf = (d: string) => fs.readFileSync(path.join(d, 'hash-seed'), 'latin1').trim();
  const dir = tempDir(t);
  const store = await open(dir);
  const seed = seedOf(dir);
  store.put(b('a'), b('1'), 0);
  await store.close();
  const again = await open(dir);
  t.teardown(() => again.close());
  t.equal(seedOf(dir), seed, 'same seed after a restart');
  t.match(seed, /^[0-9a-f]{16}$/);
  t.equal(await read(again, 'a'), '1');
  const other = tempDir(t);
  const s2 = await open(other);
  t.not(seedOf(other), seed, 'another directory, another seed');
  await s2.close();
});
