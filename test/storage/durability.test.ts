// Durability: what whenDurable promises under each fsync policy, group commit
// (one write per event-loop turn, one fsync for many writes), and how the
// store behaves when the disk fails (ENOSPC, EIO) and then recovers.
// Faults are injected by replacing functions of the `io` object.

import t from 'tap';
import { RecordType } from '../../protocol/record.js';
import { writeRetryIntervalMs } from '../../src/constants.js';
import { io } from '../../src/storage/io.js';
import { Segment } from '../../src/storage/segment.js';
import { StorageWriteError } from '../../src/storage/store.js';
import type { SegmentStore } from '../../src/storage/store.js';
import { LogWriter } from '../../src/storage/writer.js';
import { captureLog, durable, open, read, recordsOf, segmentFiles, tempDir } from './helpers.js';

const b = (s: string) => Buffer.from(s);
const real = { ...io };
t.afterEach(() => Object.assign(io, real));

function whenDurable(store: SegmentStore): Promise<Error | null> {
  return new Promise((resolve) => store.whenDurable(resolve));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test("'always': whenDurable answers only after an fdatasync", async (t) => {
  const store = await open(tempDir(t), { fsync: 'always' });
  t.teardown(() => store.close());
  let synced = 0;
  io.fdatasync = async (fd) => {
    await real.fdatasync(fd);
    synced++;
  };
  store.put(b('k'), b('v'), 0);
  const err = await new Promise<Error | null>((resolve) =>
    store.whenDurable((e) => {
      t.ok(synced >= 1, 'a segment fdatasync completed before the callback');
      resolve(e);
    }),
  );
  t.equal(err, null);
  t.ok(store.stats().fsyncs >= 1);
  t.ok(store.stats().lastFsyncMs > 0);

  // Already durable: answered (asynchronously) without another fsync.
  const before = store.stats().fsyncs;
  let sync = true;
  const p = whenDurable(store).then(() => t.notOk(sync, 'never called back synchronously'));
  sync = false;
  await p;
  t.equal(store.stats().fsyncs, before);

  // Every write is synced under 'always', whether or not anyone asked.
  store.put(b('unwatched'), b('v'), 0);
  const deadline = Date.now() + 2000;
  while (store.stats().fsyncs === before && Date.now() < deadline) await sleep(5);
  t.equal(store.stats().fsyncs, before + 1);
});

t.test("'no' and 'everysec': whenDurable answers after write(), before any fsync", async (t) => {
  for (const fsync of ['no', 'everysec'] as const) {
    const store = await open(tempDir(t), { fsync });
    store.put(b('k'), b('v'), 0);
    t.equal(await whenDurable(store), null);
    const s = store.stats();
    t.equal(s.writes, 1, `${fsync}: written`);
    t.equal(s.fsyncs, 0, `${fsync}: not synced yet`);
    if (fsync === 'everysec') {
      const deadline = Date.now() + 2500;
      while (store.stats().fsyncs === 0 && Date.now() < deadline) await sleep(50);
      t.ok(store.stats().fsyncs > 0, 'everysec: synced within about a second');
    }
    await store.close();
    t.ok(store.stats().fsyncs > 0, `${fsync}: close syncs`);
  }
});

t.test('group commit: many puts in one turn, one write, at most two fsyncs', async (t) => {
  const store = await open(tempDir(t), { fsync: 'always' });
  t.teardown(() => store.close());
  const acks: Promise<Error | null>[] = [];
  for (let i = 0; i < 1000; i++) {
    store.put(b(`k${i}`), b(`v${i}`), 0);
    acks.push(whenDurable(store));
  }
  const errs = await Promise.all(acks);
  t.ok(errs.every((e) => e === null));
  const s = store.stats();
  t.equal(s.writes, 1, 'one write for the whole turn');
  t.ok(s.fsyncs <= 2, `fsyncs: ${s.fsyncs} (segment file, and directory for the new file)`);
  // The next turn's writes need one more write and one more fdatasync, no directory sync.
  store.put(b('next'), b('turn'), 0);
  t.equal(await whenDurable(store), null);
  t.equal(store.stats().writes, 2);
  t.equal(store.stats().fsyncs, s.fsyncs + 1);
});

t.test('a write arriving during an fsync waits for the next one', async (t) => {
  const store = await open(tempDir(t), { fsync: 'always' });
  t.teardown(() => store.close());
  store.put(b('warm'), b('up'), 0); // creates the file, so only segment syncs follow
  await durable(store);

  const events: string[] = [];
  let release: (() => void) | null = null;
  io.fdatasync = async (fd) => {
    events.push('sync-start');
    if (events.filter((e) => e === 'sync-start').length === 1) await new Promise<void>((r) => (release = r));
    await real.fdatasync(fd);
    events.push('sync-end');
  };
  store.put(b('a'), b('1'), 0);
  const a = whenDurable(store).then(() => events.push('a'));
  while (release === null) await sleep(1);
  // 'a' is written now but its fsync has not finished: asking again must wait for it.
  const c = whenDurable(store).then(() => events.push('c'));
  store.put(b('b'), b('2'), 0); // during the first fsync
  const bb = whenDurable(store).then(() => events.push('b'));
  (release as () => void)();
  await Promise.all([a, bb, c]);
  t.same(events, ['sync-start', 'sync-end', 'a', 'c', 'sync-start', 'sync-end', 'b']);
});

t.test('ENOSPC: callers get the error, writes are refused, reads work, a retry recovers', async (t) => {
  const dir = tempDir(t);
  const log = captureLog();
  let store = await open(dir, { fsync: 'always', logger: log.logger, cacheBytes: 0 });
  store.put(b('before'), b('ok'), 0);
  await durable(store);

  let failing = true;
  io.write = async (...args) => {
    if (failing) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return real.write(...args);
  };
  store.put(b('victim'), b('held in memory'), 0);
  const err = await whenDurable(store);
  t.type(err, StorageWriteError);
  t.match(err?.message, /ENOSPC/);
  t.equal(((err as StorageWriteError).cause as NodeJS.ErrnoException).code, 'ENOSPC');
  t.ok(store.stats().writeFailed);
  t.equal(store.stats().writeErrors, 1);
  t.match(log.problems().join('\n'), /write failed/);

  t.throws(() => store.put(b('new'), b('x'), 0), StorageWriteError, 'no new writes while failed');
  t.throws(() => store.delete(b('before')), StorageWriteError);
  t.type(await whenDurable(store), StorageWriteError, 'asking for durability while failed gets the error');
  t.equal(await read(store, 'before'), 'ok', 'reads from disk work');
  t.equal(await read(store, 'victim'), 'held in memory', 'the failed batch is still served');

  // Retries keep failing while the disk is full...
  await sleep(writeRetryIntervalMs * 2.5);
  t.ok(store.stats().writeErrors >= 2, 'retried');
  t.ok(store.stats().writeFailed);

  // ...and succeed once there is space again.
  failing = false;
  const deadline = Date.now() + 5000;
  while (store.stats().writeFailed && Date.now() < deadline) await sleep(20);
  t.notOk(store.stats().writeFailed, 'recovered');
  t.equal(await whenDurable(store), null);
  store.put(b('after'), b('fine'), 0);
  t.equal(await whenDurable(store), null);
  await store.close();

  store = await open(dir);
  t.teardown(() => store.close());
  t.equal(await read(store, 'before'), 'ok');
  t.equal(await read(store, 'victim'), 'held in memory', 'the retried batch reached the file');
  t.equal(await read(store, 'after'), 'fine');
  t.equal(store.stats().recovery.corruptRecordsSkipped, 0);
});

t.test('EIO on fdatasync is reported and retried', async (t) => {
  const store = await open(tempDir(t), { fsync: 'always' });
  t.teardown(() => store.close());
  store.put(b('warm'), b('up'), 0);
  await durable(store);
  let fails = 1;
  io.fdatasync = async (fd) => {
    if (fails-- > 0) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    return real.fdatasync(fd);
  };
  store.put(b('k'), b('v'), 0);
  const err = await whenDurable(store);
  t.type(err, StorageWriteError);
  t.match(err?.message, /EIO/);
  const deadline = Date.now() + 5000;
  while (store.stats().writeFailed && Date.now() < deadline) await sleep(20);
  t.notOk(store.stats().writeFailed);
  store.put(b('k2'), b('v2'), 0);
  t.equal(await whenDurable(store), null);
});

t.test('everysec: a slow fdatasync runs beside the writes and holds none of them up', async (t) => {
  const store = await open(tempDir(t), { fsync: 'everysec' });
  t.teardown(() => store.close());
  let syncing = false;
  io.fdatasync = async (fd) => {
    syncing = true;
    await sleep(1500);
    await real.fdatasync(fd);
    syncing = false;
  };
  store.put(b('first'), b('v'), 0);
  t.equal(await whenDurable(store), null);
  // The once-a-second fdatasync starts within a second or so.
  const deadline = Date.now() + 5000;
  while (!syncing && Date.now() < deadline) await sleep(10);
  t.ok(syncing, 'the background fdatasync is running');
  const started = Date.now();
  store.put(b('second'), b('v'), 0);
  t.equal(await whenDurable(store), null);
  const waited = Date.now() - started;
  t.ok(syncing, 'still syncing when the write was acknowledged');
  t.ok(waited < 500, `write acknowledged after ${waited} ms, not after the 1.5 s fdatasync`);
});

t.test('everysec: a failed background fdatasync refuses writes until a retry succeeds', async (t) => {
  const store = await open(tempDir(t), { fsync: 'everysec' });
  t.teardown(() => store.close());
  let fails = 1;
  io.fdatasync = async (fd) => {
    if (fails-- > 0) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    return real.fdatasync(fd);
  };
  // Keep writing while the background fdatasync fails: the failure lands in the middle of the loop's work.
  let refused = 0;
  const deadline = Date.now() + 5000;
  for (let i = 0; fails >= 0 && Date.now() < deadline; i++) {
    try {
      store.put(b(`k${i}`), b('v'), 0);
    } catch (err) {
      t.type(err, StorageWriteError);
      refused++;
    }
    await sleep(2);
  }
  t.ok(fails < 0, 'the background fdatasync failed once');
  const until = Date.now() + 5000;
  while (store.stats().writeFailed && Date.now() < until) await sleep(20);
  t.notOk(store.stats().writeFailed, `writes accepted again (${refused} refused meanwhile)`);
  store.put(b('after'), b('ok'), 0);
  t.equal(await whenDurable(store), null);
  t.equal(await read(store, 'after'), 'ok');
});

t.test('everysec: a background fdatasync that fails during a slow write is still retried', async (t) => {
  const store = await open(tempDir(t), { fsync: 'everysec' });
  t.teardown(() => store.close());
  let syncStarted = false;
  let fails = 1;
  io.fdatasync = async (fd) => {
    syncStarted = true;
    if (fails-- > 0) {
      await sleep(50);
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    }
    return real.fdatasync(fd);
  };
  store.put(b('k0'), b('v'), 0);
  t.equal(await whenDurable(store), null);
  const deadline = Date.now() + 5000;
  while (!syncStarted && Date.now() < deadline) await sleep(5);
  // The write loop is busy with this write for longer than the failed fsync's retry interval.
  io.write = async (...args) => {
    await sleep(2 * writeRetryIntervalMs + 100);
    return real.write(...args);
  };
  store.put(b('k1'), b('v'), 0);
  await whenDurable(store);
  io.write = real.write;
  const until = Date.now() + 5000;
  while (store.stats().writeFailed && Date.now() < until) await sleep(20);
  t.notOk(store.stats().writeFailed, 'the failure was retried and cleared');
});

t.test('close() reports a write it could not complete', async (t) => {
  const store = await open(tempDir(t));
  io.write = async () => {
    throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
  };
  store.put(b('k'), b('v'), 0);
  await t.rejects(store.close(), StorageWriteError);
});

// A compaction removes its inputs with forget() + settled() + close(): a background fdatasync that
// fails meanwhile must not put the forgotten segment back for a retry to sync a closing fd.
const putRecord = (k: string) => ({ type: RecordType.Put, flags: 0, timestampMs: 1, expiresAtMs: 0, key: Buffer.from(k), value: Buffer.from('v') });

t.test('a forgotten segment is never fdatasynced again, even when the background fdatasync fails', async (t) => {
  const dir = tempDir(t);
  const w = new LogWriter({ dir, fsync: 'everysec', logger: captureLog().logger, now: Date.now });
  t.teardown(() => w.stop());
  const a = Segment.inDir(dir, 1, false);
  const input = Segment.inDir(dir, 2, false);
  w.append(a, putRecord('k1'));
  w.append(input, putRecord('k2'));
  input.sealed = true;
  await new Promise((r) => w.whenDurable(r)); // both written: dirty = {a, input}

  // The background fdatasync syncs `a`, then fails on `input` after a moment.
  const synced: number[] = [];
  let calls = 0;
  io.fdatasync = async (fd) => {
    synced.push(fd);
    const n = calls++;
    if (n === 0) return real.fdatasync(fd);
    if (n === 1) {
      await sleep(50);
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    }
    await sleep(400); // a slow disk: the fd is used a while after the call
    return real.fdatasync(fd);
  };
  w.requestSync();
  await sleep(10); // the background fdatasync is running

  // Meanwhile a compaction removes `input` exactly as store.ts removeSegment does,
  // with a cold GET of one of its records still in flight (close waits for it).
  io.read = async (...args) => {
    await sleep(2 * writeRetryIntervalMs);
    return real.read(...args);
  };
  const inputFd = input.fd!;
  const reading = input.read(40, 10);
  w.forget(input);
  await w.settled();
  synced.length = 0;
  const closing = input.close();
  await reading;
  await closing;
  await sleep(2 * writeRetryIntervalMs + 800);

  t.notOk(synced.includes(inputFd), `fdatasync calls after forget()+settled(): fds ${JSON.stringify(synced)}; the forgotten segment's fd was ${inputFd}`);
  t.equal(w.writeErrors, 1, `write errors: ${w.writeErrors} (only the injected one)`);
  t.equal(w.failure, null, 'the writer recovered');
});

t.test('write batches are carved from one slab; a turn that fills it goes on in a new one, and every record stays intact', async (t) => {
  const dir = tempDir(t);
  const w = new LogWriter({ dir, fsync: 'no', logger: captureLog().logger, now: Date.now });
  t.teardown(() => w.stop());
  const seg = Segment.inDir(dir, 1, false);
  const other = Segment.inDir(dir, 2, false);
  const record = (k: string, bytes: number) => ({ ...putRecord(k), value: Buffer.alloc(bytes, k) });
  const length = (k: string, bytes: number) => 36 + k.length + bytes;
  const written = (): Promise<void> => new Promise((r) => w.whenDurable(() => r()));
  // The bytes of a record while it waits in its batch: a view of the batch's buffer.
  const pending = (s: Segment, offset: number, n: number) => w.readFromMemory(s, offset, n)!;

  // Small turns: each is a batch of its own, all from one allocation.
  const smalls: number[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for (let turn = 0; turn < 50; turn++) {
    for (let i = 0; i < 4; i++) {
      const offset = w.append(seg, record(`t${turn}-${i}`, 100));
      smalls.push(offset);
      buffers.add(pending(seg, offset, length(`t${turn}-${i}`, 100)).buffer);
    }
    await written();
  }
  t.equal(w.writes, 50, 'one write per turn');
  t.equal(buffers.size, 1, `50 small turns used ${buffers.size} buffers`);

  // A turn larger than a slab: the batch ends where the slab does and the next
  // one goes on in a new slab; nothing is copied, so earlier views stay put.
  const writesBefore = w.writes;
  const first = w.append(seg, record('big-0', 100));
  const early = pending(seg, first, length('big-0', 100));
  const copy = Buffer.from(early);
  const slabs = new Set<ArrayBufferLike>([early.buffer]);
  for (let i = 1; i <= 12; i++) {
    const offset = w.append(seg, record(`big-${i}`, 128 * 1024));
    slabs.add(pending(seg, offset, length(`big-${i}`, 128 * 1024)).buffer);
  }
  t.equal(slabs.size, 2, 'about 1.5 MiB in one turn: two slabs');
  t.equal(pending(seg, first, length('big-0', 100)).buffer, early.buffer, 'the first record did not move');
  t.same(early, copy);
  await written();
  t.equal(w.writes - writesBefore, 2, 'one write per slab');

  // A record larger than a slab gets a buffer of its own size, let go once written.
  const huge = w.append(seg, record('huge', 3 * 1024 * 1024));
  const own = pending(seg, huge, length('huge', 3 * 1024 * 1024)).buffer;
  t.ok(own.byteLength < 3 * 1024 * 1024 + 1024, `a buffer of ${own.byteLength} bytes for a 3 MiB record`);
  await written();
  const after = w.append(seg, record('after-huge', 10));
  t.not(pending(seg, after, length('after-huge', 10)).buffer, own, 'the next record is in a slab of normal size');
  await written();

  // A slab that cannot be allocated loses nothing: the open batch of another segment keeps its bytes.
  const b1 = w.append(other, record('b1', 100));
  const b1Bytes = Buffer.from(pending(other, b1, length('b1', 100)));
  const allocate = Buffer.allocUnsafeSlow;
  Buffer.allocUnsafeSlow = () => {
    throw new RangeError('Array buffer allocation failed');
  };
  try {
    t.throws(() => w.append(seg, record('no-room', 2 * 1024 * 1024)), /allocation failed/);
  } finally {
    Buffer.allocUnsafeSlow = allocate;
  }
  const b2 = w.append(other, record('b2', 100));
  w.append(seg, record('a-after', 100));
  t.same(pending(other, b1, length('b1', 100)), b1Bytes, "the other segment's record is intact");
  t.equal(pending(other, b2, length('b2', 100)).readUInt32LE(12), 2, 'and the one after it');
  await written();

  // Everything is in the files, in order, each record intact (checksums verified by the codec).
  const recs = recordsOf(segmentFiles(dir)[0]!);
  t.same(recs.slice(0, 200).map((r) => r.offset), smalls);
  t.same(recs.slice(200).map((r) => r.record.key.toString()), [
    ...Array.from({ length: 13 }, (_, i) => `big-${i}`),
    'huge',
    'after-huge',
    'a-after',
  ]);
  t.ok(recs[212]!.record.value.equals(Buffer.alloc(128 * 1024, 'big-12')));
  t.same(recordsOf(segmentFiles(dir)[1]!).map((r) => r.record.key.toString()), ['b1', 'b2']);
  await seg.close();
  await other.close();
});
