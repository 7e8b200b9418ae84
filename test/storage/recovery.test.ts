// Recovery at open and verification at read time: torn tails are cut, damaged
// records and headers are skipped and logged with file and offset, the node
// always opens, and a damaged record found at runtime is never served.

import t from 'tap';
import * as fs from 'node:fs';
import { RECORD_HEADER_BYTES } from '../../protocol/record.js';
import { StorageCorruptError } from '../../src/storage/store.js';
import type { SegmentStore } from '../../src/storage/store.js';
import { captureLog, flipBit, open, read, recordsOf, segmentFiles, tempDir } from './helpers.js';

const b = (s: string) => Buffer.from(s);
const valueOf = (i: number) => `value-${i}-`.repeat(3);

/** Writes keys k0..k(n-1) in a store with small segments and closes it. */
async function populate(dir: string, n: number, segmentBytesMax = 1 << 20): Promise<void> {
  const store = await open(dir, { segmentBytesMax });
  for (let i = 0; i < n; i++) store.put(b(`k${i}`), b(valueOf(i)), 0);
  await store.close();
}

async function missingOrWrong(store: SegmentStore, keys: number[]): Promise<number[]> {
  const bad: number[] = [];
  for (const i of keys) if ((await read(store, `k${i}`)) !== valueOf(i)) bad.push(i);
  return bad;
}

const range = (n: number) => [...Array(n).keys()];

t.test('a torn last record is cut off, wherever the tear is', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 5);
  const file = segmentFiles(dir)[0]!;
  const original = fs.readFileSync(file);
  const last = recordsOf(file).at(-1)!;
  t.equal(last.offset + last.length, original.length);

  for (let cut = last.offset + 1; cut < original.length; cut++) {
    fs.writeFileSync(file, original.subarray(0, cut));
    const log = captureLog();
    const store = await open(dir, { logger: log.logger });
    const bad = await missingOrWrong(store, [0, 1, 2, 3]);
    const torn = await read(store, 'k4');
    const stats = store.stats().recovery;
    await store.close();
    if (bad.length > 0 || torn !== undefined || stats.tornTailsTruncated !== 1 || stats.bytesTruncated !== cut - last.offset) {
      t.fail(`cut at ${cut}: bad ${bad}, torn ${torn}, ${JSON.stringify(stats)}`);
      return;
    }
    t.equal(fs.statSync(file).size, last.offset, `cut at ${cut}: truncated to the torn record's start`);
    if (!log.problems().some((m) => m.includes(file) && m.includes(`offset ${last.offset}`))) {
      t.fail(`cut at ${cut}: no log line naming ${file} and offset ${last.offset}`);
    }
  }
});

t.test('a bit flipped in a sealed segment: logged with file and offset, the rest intact', async (t) => {
  for (const where of ['value', 'keyLength'] as const) {
    const dir = tempDir(t);
    await populate(dir, 60, 512);
    const files = segmentFiles(dir);
    t.ok(files.length >= 4, `${files.length} segments`);
    const file = files[1]!;
    const recs = recordsOf(file);
    const victim = recs[Math.floor(recs.length / 2)]!;
    t.ok(recs.length >= 3 && victim !== recs.at(-1), 'a record in the middle');
    const victimKey = victim.record.key.toString();
    const size = fs.statSync(file).size;
    // In the value only the body checksum fails; in keyLength the header does,
    // and recovery must find the next record by scanning.
    flipBit(file, where === 'value' ? victim.offset + RECORD_HEADER_BYTES + victim.record.key.length + 2 : victim.offset + 12, 3);

    const log = captureLog();
    const store = await open(dir, { logger: log.logger });
    const others = range(60).filter((i) => `k${i}` !== victimKey);
    t.same(await missingOrWrong(store, others), [], `${where}: every other key intact`);
    t.equal(await read(store, victimKey), undefined, `${where}: the damaged record is not served`);
    const stats = store.stats().recovery;
    t.equal(stats.corruptRecordsSkipped, 1);
    t.equal(stats.corruptBytesSkipped, victim.length, `${where}: resynced at the very next record`);
    t.equal(stats.tornTailsTruncated, 0);
    t.ok(
      log.problems().some((m) => m.includes(file) && m.includes(`offset ${victim.offset}`)),
      `${where}: log names ${file} and offset ${victim.offset}`,
    );
    t.equal(fs.statSync(file).size, size, 'a sealed segment is never modified');
    await store.close();
  }
});

t.test('damage in the middle of the last segment is skipped, not truncated', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 10);
  const file = segmentFiles(dir)[0]!;
  const recs = recordsOf(file);
  const size = fs.statSync(file).size;
  flipBit(file, recs[4]!.offset + 20); // timestamp: header checksum fails
  const store = await open(dir);
  t.teardown(() => store.close());
  t.same(await missingOrWrong(store, [0, 1, 2, 3, 5, 6, 7, 8, 9]), []);
  t.equal(await read(store, 'k4'), undefined);
  t.equal(fs.statSync(file).size, size, 'valid records after the damage are kept');
});

t.test('a garbage tail on the last segment (zero-filled pages) is cut off', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 10);
  const file = segmentFiles(dir)[0]!;
  const size = fs.statSync(file).size;
  fs.appendFileSync(file, Buffer.alloc(4096));
  const store = await open(dir);
  t.teardown(() => store.close());
  t.same(await missingOrWrong(store, range(10)), []);
  t.equal(fs.statSync(file).size, size);
  t.equal(store.stats().recovery.bytesTruncated, 4096);
});

t.test('a torn record at the end of a sealed segment is logged and left alone', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 40, 512);
  const files = segmentFiles(dir);
  const file = files[0]!;
  const last = recordsOf(file).at(-1)!;
  fs.truncateSync(file, last.offset + 10);
  const log = captureLog();
  const store = await open(dir, { logger: log.logger });
  t.teardown(() => store.close());
  const lost = Number(last.record.key.toString().slice(1));
  t.same(await missingOrWrong(store, range(40).filter((i) => i !== lost)), []);
  t.equal(fs.statSync(file).size, last.offset + 10, 'not truncated');
  t.ok(log.problems().some((m) => m.includes(file) && m.includes(`offset ${last.offset}`)));
});

t.test('a damaged segment header: the file is skipped and kept, the node opens', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 60, 512);
  const files = segmentFiles(dir);
  const file = files[1]!;
  const inIt = recordsOf(file).map((r) => Number(r.record.key.toString().slice(1)));
  flipBit(file, 9); // inside the segment id
  const log = captureLog();
  let store = await open(dir, { logger: log.logger });
  t.equal(store.stats().recovery.segmentsSkipped, 1);
  t.same(await missingOrWrong(store, range(60).filter((i) => !inIt.includes(i))), []);
  t.ok(log.problems().some((m) => m.includes(file) && m.includes('segment header')));
  t.ok(fs.existsSync(file), 'left in place for a human to look at');
  // New segments get ids past the damaged file: nothing collides.
  store.put(b('fresh'), b('write'), 0);
  await store.close();
  store = await open(dir);
  t.teardown(() => store.close());
  t.equal(await read(store, 'fresh'), 'write');
});

t.test('a record damaged on disk after open is never served', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 10);
  const log = captureLog();
  const store = await open(dir, { logger: log.logger, cacheBytes: 0 });
  t.teardown(() => store.close());
  const file = segmentFiles(dir)[0]!;
  const victim = recordsOf(file)[6]!;
  flipBit(file, victim.offset + victim.length - 1, 0);

  const r = store.get(b('k6'));
  t.ok(r instanceof Promise, 'a cold read');
  const err = await (r as Promise<unknown>).then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, StorageCorruptError);
  t.match((err as Error).message, file);
  t.match((err as Error).message, `offset ${victim.offset}`);
  t.ok(log.problems().some((m) => m.includes(file) && m.includes(`offset ${victim.offset}`)), 'logged');
  t.equal(store.stats().corruptReads, 1);
  t.same(await missingOrWrong(store, [0, 1, 2, 3, 4, 5, 7, 8, 9]), [], 'other reads unaffected');
});
