// SegmentStore behaviour: reads and writes, expiry, persistence across a
// restart, compression, the hot cache, segment rotation, SCAN under
// mutation, clear(), limits and the directory lock.

import t from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordFlag, RecordType } from '../../protocol/record.js';
import { keyBytesMax, valueBytesMax } from '../../src/constants.js';
import {
  StorageClosedError,
  StorageLimitError,
  StorageLockedError,
} from '../../src/storage/store.js';
import { captureLog, durable, open, read, recordsOf, rng, segmentFiles, tempDir } from './helpers.js';

const b = (s: string) => Buffer.from(s);

t.test('put, get, overwrite, delete', async (t) => {
  const store = await open(tempDir(t));
  t.teardown(() => store.close());
  t.equal(store.get(b('a')), undefined);
  store.put(b('a'), b('1'), 0);
  const hit = store.get(b('a'));
  t.notOk(hit instanceof Promise, 'a fresh write is served synchronously');
  t.same(hit, { value: b('1'), expiresAtMs: 0 });
  store.put(b('a'), b('2'), 0);
  t.equal(await read(store, 'a'), '2', 'overwrite wins');
  t.ok(store.has(b('a')));
  t.equal(store.size, 1);
  t.equal(store.delete(b('a')), true);
  t.equal(store.delete(b('a')), false, 'second delete finds nothing');
  t.equal(store.get(b('a')), undefined);
  t.notOk(store.has(b('a')));
  t.equal(store.size, 0);
});

t.test('the store copies values: a caller reusing its buffer changes nothing', async (t) => {
  const store = await open(tempDir(t));
  t.teardown(() => store.close());
  const v = b('original');
  store.put(b('k'), v, 0);
  v.fill(0x21);
  t.equal(await read(store, 'k'), 'original');
});

t.test('expiry: invisible once expired, deleted lazily, dropped at restart', async (t) => {
  const dir = tempDir(t);
  let now = 1_000_000;
  const clock = () => now;
  let store = await open(dir, { now: clock });
  store.put(b('short'), b('x'), now + 100);
  store.put(b('forever'), b('y'), 0);
  store.put(b('later'), b('z'), now + 10_000);
  // An older version without expiry, superseded by one that expires: at restart
  // the expired record must still remove the key, not resurrect the old one.
  store.put(b('shadow'), b('old'), 0);
  store.put(b('shadow'), b('new'), now + 100);
  store.put(b('shadow2'), b('old'), 0); // same, but never read before the restart
  store.put(b('shadow2'), b('new'), now + 10_000);
  t.equal(store.expiryOf(b('short')), now + 100);
  t.equal(store.expiryOf(b('forever')), 0);
  t.equal(store.expiryOf(b('nothing')), undefined);
  t.equal(await read(store, 'short'), 'x');

  now += 100; // expiry is inclusive: at expiresAtMs the key is gone
  t.equal(store.size, 5, 'nothing touched yet');
  t.equal(store.get(b('short')), undefined);
  t.equal(store.size, 4, 'deleted on access');
  t.notOk(store.has(b('shadow')));
  t.equal(store.expiryOf(b('short')), undefined);
  t.equal(store.delete(b('short')), false, 'an expired key does not count as deleted');
  t.equal(await read(store, 'later'), 'z');
  await store.close();

  now += 20_000; // 'later' expires while the node is down
  store = await open(dir, { now: clock });
  t.teardown(() => store.close());
  t.equal(store.size, 1, 'only the key without expiry is indexed');
  t.equal(await read(store, 'forever'), 'y');
  t.equal(await read(store, 'shadow'), undefined);
  t.equal(await read(store, 'shadow2'), undefined, 'an expired newer record is not undone by an older one');
  t.ok(store.stats().recovery.expiredDropped >= 1);
});

t.test('the background sweep removes expired keys nobody reads', async (t) => {
  let now = 5_000;
  const store = await open(tempDir(t), { now: () => now });
  t.teardown(() => store.close());
  for (let i = 0; i < 300; i++) store.put(b(`e${i}`), b('v'), now + 10);
  store.put(b('stay'), b('v'), 0);
  now += 10;
  // 300 keys at 200 per run every 100 ms: two runs suffice.
  const deadline = Date.now() + 3000;
  while (store.size > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal(store.size, 1, 'swept without any read');
  t.ok(store.has(b('stay')));
});

t.test('restart: everything written is there after close and reopen', async (t) => {
  const dir = tempDir(t);
  const random = rng(7);
  const expected = new Map<string, Buffer>();
  let store = await open(dir);
  // Binary keys (every byte value, the empty key) and values of many sizes.
  for (let i = 0; i < 2000; i++) {
    const key = i < 256 ? Buffer.from([i]) : i === 256 ? Buffer.alloc(0) : b(`key:${i % 700}`);
    const value = Buffer.alloc(Math.floor(random() * 3000));
    for (let j = 0; j < value.length; j++) value[j] = Math.floor(random() * 4) + 65; // compressible-ish
    store.put(key, value, 0);
    expected.set(key.toString('latin1'), value);
    if (i % 13 === 0) {
      const victim = b(`key:${(i * 7) % 700}`);
      if (store.delete(victim)) expected.delete(victim.toString('latin1'));
    }
  }
  await store.close();

  store = await open(dir, { cacheBytes: 0 });
  t.teardown(() => store.close());
  t.equal(store.size, expected.size);
  let wrong = 0;
  for (const [k, v] of expected) {
    const e = await store.get(Buffer.from(k, 'latin1'));
    if (!e || !e.value.equals(v)) wrong++;
  }
  t.equal(wrong, 0, 'every value intact');
  t.equal(store.stats().recovery.corruptRecordsSkipped, 0);
  t.same(new Set([...store.keys()].map((k) => k.toString('latin1'))), new Set(expected.keys()));
});

t.test('compression: used when it pays, not for incompressible values', async (t) => {
  const dir = tempDir(t);
  let store = await open(dir, { compressBytesMin: 1000 });
  const compressible = Buffer.alloc(20_000, 'abcabcabd');
  const random = rng(3);
  const noise = Buffer.alloc(20_000);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(random() * 256);
  const small = Buffer.alloc(1000, 'a'); // not over compressBytesMin
  store.put(b('text'), compressible, 0);
  store.put(b('noise'), noise, 0);
  store.put(b('small'), small, 0);
  await store.close();

  const flags = new Map(recordsOf(segmentFiles(dir)[0]!).map((r) => [r.record.key.toString(), r.record]));
  t.equal(flags.get('text')!.flags & RecordFlag.Zstd, RecordFlag.Zstd, 'compressible value stored compressed');
  t.ok(flags.get('text')!.value.length < 1000, 'and much smaller');
  t.equal(flags.get('noise')!.flags, 0, 'incompressible value stored as is');
  t.equal(flags.get('small')!.flags, 0, 'value at the threshold stored as is');

  store = await open(dir, { cacheBytes: 0 });
  t.teardown(() => store.close());
  t.same((await store.get(b('text')))!.value, compressible, 'decompressed on a disk read');
  t.same((await store.get(b('noise')))!.value, noise);
  t.same((await store.get(b('small')))!.value, small);
});

t.test('a small cache forces disk reads that return the right values', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir, { cacheBytes: 2048 });
  t.teardown(() => store.close());
  for (let i = 0; i < 200; i++) store.put(b(`k${i}`), Buffer.alloc(100, i), 0);
  await durable(store);
  let cold = 0;
  for (let i = 0; i < 200; i++) {
    const r = store.get(b(`k${i}`));
    if (r instanceof Promise) cold++;
    const e = await r;
    if (!e?.value.equals(Buffer.alloc(100, i))) t.fail(`k${i} wrong`);
  }
  t.ok(cold > 150, `most reads went to disk (${cold})`);
  const s = store.stats();
  t.ok(s.cacheMisses >= cold);
  t.ok(s.cacheBytes <= 2048, 'cache stays within its budget');
  // A value read from disk is cached: reading it again is synchronous.
  await store.get(b('k3'));
  t.notOk(store.get(b('k3')) instanceof Promise);
});

t.test('a record still in the pending batch is read from memory', async (t) => {
  const store = await open(tempDir(t), { cacheBytes: 0 });
  t.teardown(() => store.close());
  store.put(b('fresh'), b('not on disk yet'), 0);
  t.equal(store.stats().pendingBytes > 0, true);
  const e = store.get(b('fresh'));
  t.notOk(e instanceof Promise, 'served synchronously from the batch');
  t.equal((e as { value: Buffer }).value.toString(), 'not on disk yet');
  const big = Buffer.alloc(50_000, 'q'); // compressed in the batch
  store.put(b('big'), big, 0);
  t.same((store.get(b('big')) as { value: Buffer }).value, big);
});

t.test('rotation across several segments', async (t) => {
  const dir = tempDir(t);
  let store = await open(dir, { segmentBytesMax: 1024, compressBytesMin: 1 << 20 });
  for (let i = 0; i < 100; i++) store.put(b(`key${i}`), Buffer.alloc(100, i), 0);
  await store.close();
  const files = segmentFiles(dir);
  t.ok(files.length >= 10, `${files.length} segments`);
  for (const f of files) t.ok(fs.statSync(f).size <= 1024, `${path.basename(f)} within segmentBytesMax`);
  t.ok(recordsOf(files[0]!).length >= 1);

  // A record larger than a segment still gets written (alone in its segment).
  store = await open(dir, { segmentBytesMax: 1024, cacheBytes: 0, compressBytesMin: 1 << 20 });
  store.put(b('huge'), Buffer.alloc(5000, 1), 0);
  await durable(store);
  t.equal(store.stats().segments, files.length + 1);
  t.equal(store.size, 101);
  for (let i = 0; i < 100; i++) {
    if (!(await store.get(b(`key${i}`)))?.value.equals(Buffer.alloc(100, i))) t.fail(`key${i}`);
  }
  t.same((await store.get(b('huge')))?.value, Buffer.alloc(5000, 1));
  await store.close();
});

t.test('scan: every key present throughout is returned, despite adds and deletes', async (t) => {
  const store = await open(tempDir(t));
  t.teardown(() => store.close());
  const stable = new Set<string>();
  for (let i = 0; i < 6000; i++) {
    store.put(b(`k${i}`), b('v'), 0);
    if (i % 3 === 0) stable.add(`k${i}`);
  }
  const seen = new Set<string>();
  let cursor = 0;
  let steps = 0;
  let deleted = 0;
  let added = 0;
  do {
    const r = store.scan(cursor, 10);
    for (const k of r.keys) seen.add(k.toString());
    cursor = r.cursor;
    steps++;
    // Between steps, delete keys that are not stable (mostly ones the scan has
    // passed, which shifts positions) and add new ones.
    for (let j = 0; j < 12; j++) {
      const victim = `k${3 * (deleted % 2000) + 1 + (deleted % 2)}`;
      deleted++;
      store.delete(b(victim));
    }
    for (let j = 0; j < 5; j++) store.put(b(`new${added++}`), b('v'), 0);
    // Overwrites keep a key's place.
    store.put(b(`k${(steps * 3) % 6000}`), b('w'), 0);
  } while (cursor !== 0 && steps < 10_000);
  t.equal(cursor, 0, 'the scan ends');
  const missing = [...stable].filter((k) => !seen.has(k));
  t.same(missing, [], 'no stable key missed');
  t.ok(deleted > 2000, 'enough deletes to compact the slot table mid-scan');

  // Without mutation: each key exactly once.
  const once: string[] = [];
  cursor = 0;
  do {
    const r = store.scan(cursor, 100);
    once.push(...r.keys.map((k) => k.toString()));
    cursor = r.cursor;
  } while (cursor !== 0);
  t.equal(once.length, store.size);
  t.equal(new Set(once).size, once.length);
});

t.test('keys() and randomKey() skip expired keys', async (t) => {
  let now = 1000;
  const store = await open(tempDir(t), { now: () => now });
  t.teardown(() => store.close());
  t.equal(store.randomKey(), undefined);
  store.put(b('live'), b('1'), 0);
  for (let i = 0; i < 50; i++) store.put(b(`dead${i}`), b('1'), now + 1);
  now += 1;
  t.same([...store.keys()].map(String), ['live']);
  for (let i = 0; i < 20; i++) t.equal(store.randomKey()?.toString(), 'live');
});

t.test('clear(): data and files gone, later writes kept', async (t) => {
  const dir = tempDir(t);
  let store = await open(dir, { segmentBytesMax: 1024 });
  for (let i = 0; i < 50; i++) store.put(b(`old${i}`), Buffer.alloc(100, 1), 0);
  await durable(store);
  const before = segmentFiles(dir);
  t.ok(before.length > 2);
  const copies = before.map((f) => [f, fs.readFileSync(f)] as const);

  const clearing = store.clear();
  t.equal(store.size, 0, 'empty at once');
  t.equal(store.get(b('old1')), undefined);
  store.put(b('new'), b('after'), 0); // issued after the clear: must survive it
  await clearing;
  const after = segmentFiles(dir);
  t.notOk(after.some((f) => before.includes(f)), 'old segment files deleted');
  await store.close();

  store = await open(dir);
  t.equal(store.size, 1);
  t.equal(await read(store, 'new'), 'after');
  await store.close();

  // A crash after the new generation was durable but before the old files were
  // deleted: put them back. They must stay dead and be removed.
  for (const [f, data] of copies) fs.writeFileSync(f, data);
  const log = captureLog();
  store = await open(dir, { logger: log.logger });
  t.teardown(() => store.close());
  t.equal(store.size, 1, 'old generation not resurrected');
  t.equal(await read(store, 'old1'), undefined);
  t.equal(store.stats().recovery.obsoleteSegmentsDeleted, copies.length);
  t.notOk(segmentFiles(dir).some((f) => before.includes(f)), 'obsolete files deleted at open');
});

t.test('limits are enforced with a typed error', async (t) => {
  const store = await open(tempDir(t));
  t.teardown(() => store.close());
  t.throws(() => store.put(Buffer.alloc(keyBytesMax + 1), b('v'), 0), StorageLimitError);
  // A stand-in with only a length: the check must come before any copy.
  t.throws(() => store.put(b('k'), { length: valueBytesMax + 1 } as Buffer, 0), StorageLimitError);
  store.put(Buffer.alloc(keyBytesMax, 1), b('v'), 0);
  t.equal(store.size, 1, 'a key at the limit is fine');
});

t.test('a closed store refuses use', async (t) => {
  const store = await open(tempDir(t));
  await store.close();
  t.throws(() => store.get(b('a')), StorageClosedError);
  t.throws(() => store.put(b('a'), b('1'), 0), StorageClosedError);
  await store.close(); // idempotent
});

t.test('loading progress is reported', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir, { segmentBytesMax: 4096 });
  for (let i = 0; i < 100; i++) store.put(b(`k${i}`), Buffer.alloc(200, i), 0);
  await store.close();
  const calls: Array<[number, number]> = [];
  const again = await open(dir, { onProgress: (done, total) => calls.push([done, total]) });
  t.teardown(() => again.close());
  const total = segmentFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0);
  t.ok(calls.length >= 2);
  t.same(calls.at(-1), [total, total]);
  t.ok(calls.every(([d], i) => i === 0 || d >= calls[i - 1]![0]), 'monotonic');
});

t.test('the lock keeps a second store out of the directory', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  await t.rejects(open(dir), StorageLockedError, 'a second store in this process');
  await t.rejects(open(path.join(dir, '.')), StorageLockedError, 'also under another spelling of the path');

  // Another process.
  const storeModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/storage/store.js');
  const script = `
    import { SegmentStore } from ${JSON.stringify(storeModule)};
    import { pino } from 'pino';
    try {
      await SegmentStore.open({ dir: ${JSON.stringify(dir)}, fsync: 'no', segmentBytesMax: 1 << 20, cacheBytes: 0,
        compressBytesMin: 1024, compressLevel: 3, logger: pino({ level: 'silent' }) });
      console.log('OPENED');
    } catch (err) { console.log(err.name + ': ' + err.message); }`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd() }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  t.match(out, /StorageLockedError: data directory .* is in use by process \d+/);
  await store.close();

  // After close the directory is free again; a lock left by a dead process is stale.
  fs.writeFileSync(path.join(dir, 'LOCK'), '999999999\n');
  const log = captureLog();
  const again = await open(dir, { logger: log.logger });
  t.match(log.problems().join('\n'), /stale lock/);
  await again.close();
  t.notOk(fs.existsSync(path.join(dir, 'LOCK')), 'released on close');
});

t.test('the store file layout is what the codec says', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  store.put(b('k'), b('v'), 0);
  store.delete(b('k'));
  await store.close();
  const recs = recordsOf(segmentFiles(dir)[0]!).map((r) => r.record.type);
  t.same(recs, [RecordType.Put, RecordType.Tombstone]);
  t.equal(path.basename(segmentFiles(dir)[0]!), '000000000001.seg');
});
