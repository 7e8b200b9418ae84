// Compaction and hint files over a real directory: space is reclaimed, every
// live key survives (also while writes go on), tombstones go only when no
// older record of their key can survive, and hint files make start-up skip
// the scan (and are ignored when damaged).

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { RecordType } from '../../protocol/record.js';
import type { SegmentStore } from '../../src/storage/store.js';
import { captureLog, durable, flipBit, open, read, recordsOf, segmentFiles, tempDir } from './helpers.js';

const on = { maintenance: true, compactionRateMB: 0, compactionCheckIntervalMs: 60_000, segmentBytesMax: 64 * 1024 };

function dirBytes(dir: string): number {
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /\.(compacting|commit|tmp)$/.test(f));
}

async function wrong(store: SegmentStore, expect: Map<string, string | undefined>): Promise<string[]> {
  const bad: string[] = [];
  for (const [k, v] of expect) if ((await read(store, k)) !== v) bad.push(k);
  return bad;
}

/** Puts keys `${prefix}0` .. `${prefix}${n - 1}` with value(i) and returns what each must read. */
function fill(store: SegmentStore, n: number, prefix: string, value: (i: number) => string): Map<string, string | undefined> {
  const expect = new Map<string, string | undefined>();
  for (let i = 0; i < n; i++) {
    store.put(Buffer.from(`${prefix}${i}`), Buffer.from(value(i)), 0);
    expect.set(`${prefix}${i}`, value(i));
  }
  return expect;
}

function tombstonesIn(dir: string): number {
  return segmentFiles(dir).reduce((n, f) => n + recordsOf(f).filter((r) => r.record.type === RecordType.Tombstone).length, 0);
}

t.test('overwrites: compaction reclaims the space, keeps every key, and restart reads hints only', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir, on);
  const expect = new Map<string, string | undefined>();
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 2000; i++) {
      const v = `v${round}-${i}-${'x'.repeat(40)}`;
      store.put(Buffer.from(`key${i}`), Buffer.from(v), 0);
      expect.set(`key${i}`, v);
    }
  }
  await durable(store);
  const before = dirBytes(dir);
  const live = store.stats().liveBytes;
  await store.compactNow();
  const after = dirBytes(dir);
  const stats = store.stats();
  t.ok(stats.compaction.compactions >= 1, `${stats.compaction.compactions} compactions`);
  t.ok(after < before / 3, `directory from ${before} to ${after} bytes`);
  t.ok(after <= 1.5 * live + 2 * on.segmentBytesMax, `within 1.5x of live data ${live} (+ the active segment)`);
  t.same(await wrong(store, expect), [], 'every key reads its last value');
  t.same(leftovers(dir), [], 'no temporary, commit or .compacting file left');
  await store.close();

  const log = captureLog();
  const again = await open(dir, { ...on, logger: log.logger });
  const rec = again.stats().recovery;
  t.equal(rec.segmentsScanned, 0, 'no segment scanned');
  t.ok(rec.hintsUsed >= 1, `${rec.hintsUsed} hint files used`);
  t.same(await wrong(again, expect), [], 'every key after restart');
  t.same(log.problems(), []);
  await again.close();
});

t.test('compaction off: the background loop writes hints but compacts nothing; BGREWRITEAOF still compacts', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir, { ...on, compaction: false, compactionCheckIntervalMs: 20 });
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 1500; i++) store.put(Buffer.from(`key${i}`), Buffer.from(`v${round}-${'z'.repeat(40)}`), 0);
  }
  await durable(store);
  const sealed = store.stats().segments - 1;
  // Several background rounds: every sealed segment gets its hint, none is compacted.
  const deadline = Date.now() + 10_000;
  while (store.stats().compaction.hintsWritten < sealed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  t.equal(store.stats().compaction.hintsWritten, sealed, `hints for all ${sealed} sealed segments`);
  t.equal(store.stats().compaction.compactions, 0, 'no background compaction');
  await store.compactNow();
  t.ok(store.stats().compaction.compactions >= 1, 'compactNow compacts');
  await store.close();
});

t.test('a clean shutdown writes the hints still queued: the next start scans nothing', async (t) => {
  const dir = tempDir(t);
  // The background loop never runs (60 s interval): only close() can write these hints.
  const store = await open(dir, on);
  const expect = fill(store, 3000, 'key', (i) => `v-${i}-${'y'.repeat(60)}`);
  await durable(store);
  t.ok(store.stats().segments >= 3, `${store.stats().segments} segments`);
  t.equal(store.stats().compaction.hintsWritten, 0, 'no hint written before close');
  await store.close();
  const again = await open(dir, on);
  const rec = again.stats().recovery;
  t.equal(rec.segmentsScanned, 0, 'no segment scanned');
  t.equal(rec.hintsUsed, again.stats().segments, 'every segment from its hint');
  t.same(await wrong(again, expect), [], 'every key after restart');
  await again.close();
});

t.test('tombstones: kept while an older segment outside the compaction may hold the key, and during the grace period', async (t) => {
  const dir = tempDir(t);
  // Old segment A: k-del and many keys that stay live (A is never dead enough to be picked).
  let store = await open(dir, { ...on, tombstoneGraceSeconds: 0 });
  const expect = new Map<string, string | undefined>();
  store.put(Buffer.from('k-del'), Buffer.from('must stay deleted'), 0);
  for (let i = 0; i < 1500; i++) {
    store.put(Buffer.from(`stay${i}`), Buffer.from(`v${i}`.padEnd(40, '.')), 0);
    expect.set(`stay${i}`, `v${i}`.padEnd(40, '.'));
  }
  // Later segments: the delete, then churn that makes them dead enough to be picked.
  t.ok(store.delete(Buffer.from('k-del')));
  expect.set('k-del', undefined);
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 500; i++) store.put(Buffer.from(`churn${i}`), Buffer.from(`r${round}`.padEnd(60, '-')), 0);
  }
  for (let i = 0; i < 500; i++) expect.set(`churn${i}`, 'r5'.padEnd(60, '-'));
  await durable(store);
  await store.compactNow();
  // compactNow takes everything: that covers the first segment, so the tombstone may go.
  t.equal(tombstonesIn(dir), 0, 'a full compaction past the grace period drops the tombstone');
  await store.close();
  store = await open(dir, on);
  t.same(await wrong(store, expect), [], 'and k-del stays deleted after restart');
  await store.close();

  // Same again, but only the later segments are compacted: the tombstone must stay.
  const dir2 = tempDir(t);
  store = await open(dir2, { ...on, tombstoneGraceSeconds: 0, compactionMinDeadRatio: 0.5 });
  store.put(Buffer.from('k-del'), Buffer.from('must stay deleted'), 0);
  for (let i = 0; i < 1500; i++) store.put(Buffer.from(`stay${i}`), Buffer.from(`v${i}`.padEnd(40, '.')), 0);
  store.delete(Buffer.from('k-del'));
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 500; i++) store.put(Buffer.from(`churn${i}`), Buffer.from(`r${round}`.padEnd(60, '-')), 0);
  }
  await durable(store);
  const firstFile = segmentFiles(dir2)[0]!;
  t.ok(recordsOf(firstFile).some((r) => r.record.key.toString() === 'k-del'), 'k-del was put in the first segment');
  await (store as unknown as { compactor: { runNow(full: boolean): Promise<void> } }).compactor.runNow(false);
  t.ok(store.stats().compaction.compactions >= 1, 'the churned segments were compacted');
  t.ok(fs.existsSync(firstFile), 'the first segment was not (it is all live)');
  t.ok(tombstonesIn(dir2) >= 1, 'so the tombstone was kept');
  await store.close();
  store = await open(dir2, on);
  t.equal(await read(store, 'k-del'), undefined, 'k-del is not resurrected');
  await store.close();

  // A grace period that has not passed keeps the tombstone even in a full compaction.
  const dir3 = tempDir(t);
  store = await open(dir3, { ...on, tombstoneGraceSeconds: 3600 });
  store.put(Buffer.from('gone'), Buffer.from('x'), 0);
  store.delete(Buffer.from('gone'));
  await durable(store);
  await store.compactNow();
  t.equal(tombstonesIn(dir3), 1, 'tombstone younger than the grace period kept');
  await store.close();
});

t.test('writes and deletes during a compaction all land', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir, { ...on, compactionRateMB: 2 }); // slow, so writes interleave
  const expect = new Map<string, string | undefined>();
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 2000; i++) store.put(Buffer.from(`key${i}`), Buffer.from(`a${round}-${i}`.padEnd(50, '.')), 0);
  }
  for (let i = 0; i < 2000; i++) expect.set(`key${i}`, `a4-${i}`.padEnd(50, '.'));
  await durable(store);
  let done = false;
  const compaction = store.compactNow().then(() => (done = true));
  let n = 0;
  while (!done) {
    for (let j = 0; j < 50; j++, n++) {
      const k = `key${(n * 7) % 2000}`;
      if (n % 5 === 0) {
        store.delete(Buffer.from(k));
        expect.set(k, undefined);
      } else {
        store.put(Buffer.from(k), Buffer.from(`b${n}`), 0);
        expect.set(k, `b${n}`);
      }
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await compaction;
  t.ok(n > 200, `${n} writes during the compaction`);
  t.same(await wrong(store, expect), [], 'every key has its last write');
  await store.close();
  const again = await open(dir, on);
  t.same(await wrong(again, expect), [], 'also after restart');
  await again.close();
});

t.test('an unreadable hint file (a directory in its place) is logged and its segment scanned', async (t) => {
  const dir = tempDir(t);
  let store = await open(dir, on);
  const expect = fill(store, 3000, 'k', (i) => `value ${i}`.padEnd(60, '*'));
  await store.close(); // writes every hint
  const hints = fs.readdirSync(dir).filter((f) => f.endsWith('.hint')).sort();
  t.ok(hints.length >= 3, `${hints.length} hint files`);
  // The middle one: the hints before and after it are still read ahead and used.
  const victim = path.join(dir, hints[1]!);
  fs.rmSync(victim);
  fs.mkdirSync(victim);
  const log = captureLog();
  store = await open(dir, { ...on, logger: log.logger });
  const rec = store.stats().recovery;
  t.equal(rec.hintsRejected, 1, 'that hint rejected');
  t.equal(rec.hintsUsed, hints.length - 1, 'the others used');
  t.equal(rec.segmentsScanned, 1, 'its segment scanned instead');
  t.ok(log.problems().some((m) => m.includes(victim)), 'and the log names the file');
  t.same(await wrong(store, expect), [], 'nothing lost');
  await store.close();
});

t.test('a damaged hint file is ignored and its segment scanned', async (t) => {
  const dir = tempDir(t);
  let store = await open(dir, on);
  const expect = fill(store, 3000, 'k', (i) => `value ${i}`.padEnd(60, '*'));
  await store.compactNow(); // writes every hint
  await store.close();
  const hints = fs.readdirSync(dir).filter((f) => f.endsWith('.hint'));
  t.ok(hints.length >= 2, `${hints.length} hint files`);
  const victim = path.join(dir, hints[0]!);
  for (const offset of [5, 40, fs.statSync(victim).size - 2]) {
    flipBit(victim, offset, 1);
    const log = captureLog();
    store = await open(dir, { ...on, logger: log.logger });
    const rec = store.stats().recovery;
    t.equal(rec.hintsRejected, 1, `flip at ${offset}: hint rejected`);
    t.equal(rec.segmentsScanned, 1, 'its segment scanned instead');
    t.ok(log.problems().some((m) => m.includes(victim)), 'and the log names the file');
    t.same(await wrong(store, expect), [], 'nothing lost');
    await store.close();
    flipBit(victim, offset, 1); // repaired for the next case
  }
});

// Start-up sizes the table for every hint entry (overwrites and deletes included), then fits it to the live keys.
t.test('index table after a restart from hints is sized for keys, not for records', async (t) => {
  const dir = tempDir(t);
  const opts = { maintenance: true, compaction: false, compactionRateMB: 0, compactionCheckIntervalMs: 60_000, segmentBytesMax: 256 * 1024 };
  const store = await open(dir, opts);
  // 100 keys, each overwritten 2,000 times: 200,000 records, 100 live keys.
  for (let round = 0; round < 2000; round++) {
    for (let i = 0; i < 100; i++) store.put(Buffer.from(`key${i}`), Buffer.from(`v${round}`), 0);
    if (round % 100 === 99) await durable(store);
  }
  await durable(store);
  const slotsBefore = (store as unknown as { index: { slots: number } }).index.slots;
  await store.close(); // writes the queued hints

  const again = await open(dir, { ...opts, logger: captureLog().logger });
  const rec = again.stats().recovery;
  const slots = (again as unknown as { index: { slots: number } }).index.slots;
  t.ok(rec.hintsUsed > 10, `${rec.hintsUsed} hints used, ${rec.segmentsScanned} scanned`);
  t.equal(again.size, 100);
  t.ok(slots <= 4 * slotsBefore, `table has ${slots} slots after restart (${slots * 4} bytes) for ${again.size} keys; ${slotsBefore} before the restart`);
  await again.close();
});

t.test('restart from hints only: overwrites, deletes and expired keys in one segment come back as they were', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir, { ...on, segmentBytesMax: 1024 * 1024 });
  const expect = fill(store, 500, 'k', (i) => `first ${i}`);
  // More than a batch (64) of overwrites, deletes and short TTLs, mixed, all in the same segment.
  for (let i = 0; i < 500; i += 3) {
    store.put(Buffer.from(`k${i}`), Buffer.from(`second ${i}`), 0);
    expect.set(`k${i}`, `second ${i}`);
  }
  for (let i = 1; i < 500; i += 5) {
    store.delete(Buffer.from(`k${i}`));
    expect.set(`k${i}`, undefined);
  }
  for (let i = 2; i < 500; i += 7) {
    store.put(Buffer.from(`k${i}`), Buffer.from('short-lived'), Date.now() + 300);
    expect.set(`k${i}`, undefined);
  }
  await durable(store);
  t.equal(store.stats().segments, 1, 'one segment');
  await store.close();
  await new Promise((r) => setTimeout(r, 400));
  const again = await open(dir, on);
  const rec = again.stats().recovery;
  t.equal(rec.segmentsScanned, 0, 'nothing scanned');
  t.equal(rec.hintsUsed, 1, 'the hint used');
  t.ok(rec.expiredDropped >= 70, `${rec.expiredDropped} expired records dropped`);
  t.same(await wrong(again, expect), [], 'every key as it was');
  t.equal(again.size, [...expect.values()].filter((v) => v !== undefined).length, 'and no other key');
  await again.close();
});
