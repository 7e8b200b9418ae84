// SegmentStore: the facade the server talks to. A Bitcask-style log store:
// one active append-only segment plus sealed immutable ones (segment.ts), an
// in-memory key directory (index.ts), a hot value cache (cache.ts), group
// commit (writer.ts) and recovery at open (recovery.ts). The record format
// lives in protocol/record.ts; docs/storage.md tells the whole story.
//
// The hot path is synchronous: put() and delete() encode into the pending
// batch and update the index at once; get() answers from the cache or the
// pending batch without a Promise, and only a cold read returns one (one
// pread on a kept-open fd, checksum verified). Callers learn durability
// separately, through whenDurable().

import assert from 'node:assert/strict';
import * as zstd from 'zstd-napi';
import {
  decodeRecord,
  recordLength,
  RecordFlag,
  RecordType,
  SEGMENT_HEADER_BYTES,
} from '../../protocol/record.js';
import type { RecordLimits } from '../../protocol/record.js';
import {
  compactionCheckIntervalMs,
  compactionInputBytesMax,
  compactionMinDeadRatioDefault,
  compactionRateMBDefault,
  expireSweepIntervalMs,
  expireSweepKeysPerRun,
  fsyncEverysecIntervalMs,
  keyBytesMax,
  MiB,
  tombstoneGraceSecondsDefault,
  valueBytesMax,
} from '../constants.js';
import { Compactor } from './compactor.js';
import type { CompactionHost } from './compactor.js';
import { ValueCache } from './cache.js';
import { StorageClosedError, StorageCorruptError, StorageLimitError } from './errors.js';
import { MapIndex } from './index.js';
import type { IndexEntry, KeyIndex } from './index.js';
import { fsyncDir, io } from './io.js';
import { DirLock } from './lock.js';
import { recover } from './recovery.js';
import type { RecoveryResult } from './recovery.js';
import { Segment } from './segment.js';
import type { Entry, RecoveryStats, StoreOptions, StoreStats } from './types.js';
import { LogWriter } from './writer.js';

export type { Entry, FsyncPolicy, RecoveryStats, StoreOptions, StoreStats } from './types.js';
export {
  StorageClosedError,
  StorageCorruptError,
  StorageError,
  StorageLimitError,
  StorageLockedError,
  StorageWriteError,
} from './errors.js';

/** The limits the decoder enforces: the same ones put() enforces. */
export const recordLimits: RecordLimits = { keyBytesMax, valueBytesMax };

const noValue = Buffer.alloc(0);

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

export class SegmentStore {
  private readonly cache: ValueCache;
  private readonly writer: LogWriter;
  private readonly now: () => number;
  /** Every segment that may hold live records, by id (the active one included). */
  private readonly segments = new Map<number, Segment>();
  /** Segments dropped by a clear() that could not finish; closed at close(). */
  private readonly retired: Segment[] = [];
  private active: Segment;
  private nextSegmentId: number;
  private damagedFiles: string[];
  private readonly recoveryStats: RecoveryStats;
  private readonly timers: NodeJS.Timeout[] = [];
  private sweepCursor = 0;
  private clearing: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private corruptReads = 0;
  /** Reused by put() so the hot path allocates no index entry object. */
  private readonly scratch: IndexEntry = { segmentId: 0, offset: 0, recordLength: 0, expiresAtMs: 0, flags: 0 };
  /** Bytes of indexed records per segment id: what compaction would keep of each. */
  private readonly liveBySegment = new Map<number, number>();
  /** Bumped by every clear(), so background work begun before it can tell. */
  private generation = 0;
  private readonly compactor: Compactor;

  private constructor(
    private readonly opts: StoreOptions,
    private readonly lock: DirLock,
    private readonly index: KeyIndex,
    recovered: RecoveryResult,
  ) {
    this.now = opts.now ?? Date.now;
    this.cache = new ValueCache(opts.cacheBytes);
    this.writer = new LogWriter({ dir: opts.dir, fsync: opts.fsync, logger: opts.logger, now: this.now });
    for (const seg of recovered.segments) this.segments.set(seg.id, seg);
    this.damagedFiles = recovered.damagedFiles;
    this.recoveryStats = recovered.stats;
    this.nextSegmentId = recovered.nextSegmentId;
    // Always a fresh active segment: every file that existed at open stays
    // immutable. Its file appears only when the first record is flushed.
    this.active = this.newSegment(false);
    for (const k of index.keys()) {
      const e = index.get(k)!;
      this.addLive(e.segmentId, e.recordLength);
    }

    this.compactor = new Compactor(this.compactionHost(), {
      minDeadRatio: opts.compactionMinDeadRatio ?? compactionMinDeadRatioDefault,
      rateBytesPerSec: (opts.compactionRateMB ?? compactionRateMBDefault) * MiB,
      tombstoneGraceMs: (opts.tombstoneGraceSeconds ?? tombstoneGraceSecondsDefault) * 1000,
      inputBytesMax: Math.max(compactionInputBytesMax, opts.segmentBytesMax),
      segmentBytesMax: opts.segmentBytesMax,
    }, opts.compactionCheckIntervalMs ?? compactionCheckIntervalMs);
    if (opts.maintenance !== false) {
      for (const seg of recovered.segmentsWithoutHint) this.compactor.queueHint(seg);
      this.compactor.start();
    }

    const sweep = setInterval(() => this.sweepExpired(), expireSweepIntervalMs);
    sweep.unref();
    this.timers.push(sweep);
    if (opts.fsync === 'everysec') {
      const everysec = setInterval(() => this.writer.requestSync(), fsyncEverysecIntervalMs);
      everysec.unref();
      this.timers.push(everysec);
    }
  }

  /**
   * Opens (creating if missing) the store in opts.dir: takes the directory
   * lock, then rebuilds the index from the segments. Fails with
   * StorageLockedError if another store holds the directory.
   */
  static async open(opts: StoreOptions): Promise<SegmentStore> {
    assert(opts.segmentBytesMax > SEGMENT_HEADER_BYTES, 'segmentBytesMax too small');
    assert(opts.segmentBytesMax < 2 ** 32, 'segmentBytesMax must stay below 4 GiB (hint files keep offsets as u32)');
    assert(opts.cacheBytes >= 0 && opts.compressBytesMin >= 0, 'negative storage option');
    await io.mkdir(opts.dir);
    const lock = await DirLock.acquire(opts.dir, opts.logger);
    try {
      const started = Date.now();
      const index = new MapIndex();
      const recovered = await recover({
        dir: opts.dir,
        index,
        limits: recordLimits,
        nowMs: (opts.now ?? Date.now)(),
        logger: opts.logger,
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
      opts.logger.info(
        { dir: opts.dir, keys: index.size, segments: recovered.segments.length, ms: Date.now() - started, ...recovered.stats },
        `storage: opened ${opts.dir}: ${index.size} keys in ${recovered.segments.length} segments`,
      );
      return new SegmentStore(opts, lock, index, recovered);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  // --- reads -----------------------------------------------------------------------

  /**
   * The value of `key`: synchronous when it is in the cache or still in the
   * pending batch; otherwise a Promise for one checksum-verified disk read,
   * rejected with StorageCorruptError if the bytes are damaged. The returned
   * Buffer is shared with the cache: do not modify it.
   */
  get(key: Buffer): Entry | undefined | Promise<Entry | undefined> {
    this.checkOpen();
    const k = key.toString('latin1');
    const e = this.live(k);
    if (e === undefined) return undefined;
    const { expiresAtMs, segmentId, offset, recordLength: length } = e;
    const cached = this.cache.get(k);
    if (cached !== undefined) return { value: cached, expiresAtMs };

    const seg = this.segments.get(segmentId);
    if (seg === undefined) assert.fail(`index points at unknown segment ${segmentId}`);
    const inMemory = this.writer.readFromMemory(seg, offset, length);
    if (inMemory !== undefined) {
      const stored = this.decodeValue(inMemory, key, seg, offset);
      // Copy out of the batch buffer so the cache does not pin the whole batch.
      const value = stored.compressed ? stored.value : Buffer.from(stored.value);
      this.cacheValue(k, value);
      return { value, expiresAtMs };
    }
    return this.readCold(k, key, seg, offset, length, expiresAtMs);
  }

  /** undefined if the key is missing or expired, else its expiresAtMs (0 = none). */
  expiryOf(key: Buffer): number | undefined {
    this.checkOpen();
    return this.live(key.toString('latin1'))?.expiresAtMs;
  }

  has(key: Buffer): boolean {
    this.checkOpen();
    return this.live(key.toString('latin1')) !== undefined;
  }

  /** Keys in the index, like DBSIZE: may count expired keys the sweep has not reached. */
  get size(): number {
    return this.index.size;
  }

  /**
   * A step of a Redis-like SCAN: cursor 0 starts, a returned 0 ends. A key
   * present during the whole scan is returned at least once (index.ts says why).
   */
  scan(cursor: number, count: number): { cursor: number; keys: Buffer[] } {
    this.checkOpen();
    const step = this.index.scan(cursor, Math.max(1, Math.floor(count) || 1));
    const keys: Buffer[] = [];
    for (const k of step.keys) if (this.live(k)) keys.push(Buffer.from(k, 'latin1'));
    return { cursor: step.cursor, keys };
  }

  /** Every live key (expired ones are skipped, not deleted). */
  *keys(): IterableIterator<Buffer> {
    this.checkOpen();
    for (const k of this.index.keys()) {
      const e = this.index.get(k);
      if (e && !this.isExpired(e.expiresAtMs, this.now())) yield Buffer.from(k, 'latin1');
    }
  }

  randomKey(): Buffer | undefined {
    this.checkOpen();
    // Each expired pick is deleted, so this ends.
    for (;;) {
      const k = this.index.randomKey();
      if (k === undefined) return undefined;
      if (this.live(k)) return Buffer.from(k, 'latin1');
    }
  }

  // --- writes ----------------------------------------------------------------------

  /**
   * Stores `value` under `key`, expiring at expiresAtMs (0 = never). Takes
   * effect at once for reads; durable once whenDurable says so. Throws
   * StorageLimitError over the limits, StorageWriteError while writes fail.
   */
  put(key: Buffer, value: Buffer, expiresAtMs: number): void {
    this.checkWritable();
    if (key.length > keyBytesMax) throw new StorageLimitError('key', key.length, keyBytesMax);
    if (value.length > valueBytesMax) throw new StorageLimitError('value', value.length, valueBytesMax);
    if (!(Number.isSafeInteger(expiresAtMs) && expiresAtMs >= 0)) assert.fail(`bad expiresAtMs ${expiresAtMs}`);

    let stored = value;
    let flags = 0;
    if (value.length > this.opts.compressBytesMin) {
      const packed = zstd.compress(value, { compressionLevel: this.opts.compressLevel });
      if (packed.length < value.length) {
        stored = packed;
        flags = RecordFlag.Zstd;
      }
    }
    const length = recordLength(key.length, stored.length);
    const seg = this.activeFor(length);
    const offset = this.writer.append(seg, {
      type: RecordType.Put,
      flags,
      timestampMs: this.now(),
      expiresAtMs,
      key,
      value: stored,
    });
    const k = key.toString('latin1');
    const prev = this.index.get(k);
    if (prev !== undefined) this.addLive(prev.segmentId, -prev.recordLength);
    this.addLive(seg.id, length);
    const e = this.scratch;
    e.segmentId = seg.id;
    e.offset = offset;
    e.recordLength = length;
    e.expiresAtMs = expiresAtMs;
    e.flags = flags;
    this.index.set(k, e);
    // A copy: the caller may reuse its buffer (a socket read buffer, say).
    this.cacheValue(k, Buffer.from(value));
  }

  /** Deletes `key`; true if it existed (and had not expired). */
  delete(key: Buffer): boolean {
    this.checkOpen();
    const k = key.toString('latin1');
    const e = this.live(k);
    if (e === undefined) return false;
    this.checkWritable();
    this.appendTombstone(key);
    this.addLive(e.segmentId, -e.recordLength);
    this.index.delete(k);
    this.cache.delete(k);
    return true;
  }

  /** cb(null) once every write issued so far is durable under the fsync policy; cb(err) if a write failed. */
  whenDurable(cb: (err: Error | null) => void): void {
    this.checkOpen();
    this.writer.whenDurable(cb);
  }

  /**
   * FLUSHALL. The index and cache empty at once; on disk a new segment whose
   * header starts a new generation is made durable, then the old files are
   * deleted. A crash in between leaves files that recovery recognises as
   * obsolete (lower ids than the generation) and deletes. If this rejects
   * (a write error), the store still reads as empty and the generation
   * header stays pending like any failed write; the old files go at the next
   * open once it is durable.
   */
  async clear(): Promise<void> {
    this.checkWritable();
    this.generation++;
    this.index.clear();
    this.cache.clear();
    this.liveBySegment.clear();
    const old = [...this.segments.values()];
    const damaged = this.damagedFiles;
    this.damagedFiles = [];
    this.segments.clear();
    for (const seg of old) seg.sealed = true;
    this.active = this.newSegment(true);
    this.writer.appendHeader(this.active);

    const done = this.clearing.then(async () => {
      try {
        await this.writer.sync(); // from here on the old files are obsolete
      } catch (err) {
        this.retired.push(...old);
        throw err;
      }
      for (const seg of old) {
        this.writer.forget(seg);
        await seg.close();
        // A compaction finishing meanwhile may have deleted an input already.
        if (seg.endOffset > 0) await io.unlink(seg.path).catch(ignoreMissing);
        await io.unlink(seg.hintPath).catch(ignoreMissing);
      }
      for (const file of damaged) await io.unlink(file).catch(() => undefined);
      await fsyncDir(this.opts.dir);
      this.opts.logger.info({ dir: this.opts.dir, files: old.length + damaged.length }, 'storage: cleared');
    });
    this.clearing = done.catch(() => undefined);
    return done;
  }

  /** Flushes and fdatasyncs everything, closes the files and releases the lock. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  stats(): StoreStats {
    let segments = 0;
    let diskBytes = 0;
    for (const seg of this.segments.values()) {
      if (seg.endOffset > 0) segments++;
      diskBytes += seg.writtenBytes;
    }
    const w = this.writer;
    return {
      keys: this.index.size,
      segments,
      diskBytes,
      liveBytes: this.index.liveBytes,
      cacheBytes: this.cache.bytes,
      cacheHits: this.cache.hits,
      cacheMisses: this.cache.misses,
      pendingBytes: w.pendingBytes,
      lastFsyncMs: w.lastFsyncMs,
      lastFsyncDurationMs: w.lastFsyncDurationMs,
      fsyncs: w.fsyncs,
      writes: w.writes,
      writeErrors: w.writeErrors,
      writeFailed: w.failure !== null,
      corruptReads: this.corruptReads,
      recovery: { ...this.recoveryStats },
      compaction: { ...this.compactor.stats },
    };
  }

  /**
   * Compacts every sealed segment now, whatever its share of dead bytes, and
   * writes missing hint files (BGREWRITEAOF). Resolves when done.
   */
  async compactNow(): Promise<void> {
    this.checkOpen();
    await this.writer.sync(); // sealed segments still in memory are not compactable yet
    await this.compactor.runNow(true);
  }

  /** Bytes of the records the index points at in one segment. */
  segmentLiveBytes(segmentId: number): number {
    return this.liveBySegment.get(segmentId) ?? 0;
  }

  // --- internals -------------------------------------------------------------------

  private addLive(segmentId: number, bytes: number): void {
    const n = (this.liveBySegment.get(segmentId) ?? 0) + bytes;
    assert(n >= 0, 'live bytes below zero');
    this.liveBySegment.set(segmentId, n);
  }

  /** The narrow view of the store that compactor.ts works through. */
  private compactionHost(): CompactionHost {
    const store = this;
    return {
      dir: this.opts.dir,
      logger: this.opts.logger,
      limits: recordLimits,
      now: () => this.now(),
      segmentsInOrder: () => [...this.segments.values()].sort(Segment.compare),
      segmentLiveBytes: (id) => this.segmentLiveBytes(id),
      allocateSegmentId: () => this.nextSegmentId++,
      isCurrent: (key, segmentId, offset) => {
        const e = this.index.get(key.toString('latin1'));
        return e !== undefined && e.segmentId === segmentId && e.offset === offset;
      },
      hasKey: (key) => this.index.get(key.toString('latin1')) !== undefined,
      relocate: (key, fromSegmentId, fromOffset, to) => {
        const k = key.toString('latin1');
        const e = this.index.get(k);
        if (e === undefined || e.segmentId !== fromSegmentId || e.offset !== fromOffset) return false;
        this.addLive(fromSegmentId, -e.recordLength);
        this.addLive(to.segmentId, to.recordLength);
        this.index.set(k, to);
        return true;
      },
      addSegment: (seg) => {
        this.segments.set(seg.id, seg);
      },
      removeSegment: async (seg) => {
        this.segments.delete(seg.id);
        this.liveBySegment.delete(seg.id);
        this.writer.forget(seg);
        await seg.close();
      },
      get generation() {
        return store.generation;
      },
      whenCleared: () => this.clearing,
    };
  }

  private checkOpen(): void {
    if (this.closing) throw new StorageClosedError();
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.writer.failure) throw this.writer.failure;
  }

  private isExpired(expiresAtMs: number, now: number): boolean {
    return expiresAtMs !== 0 && expiresAtMs <= now;
  }

  /** The entry of a key that exists and has not expired; an expired one is deleted on the way. */
  private live(k: string): Readonly<IndexEntry> | undefined {
    const e = this.index.get(k);
    if (e === undefined) return undefined;
    if (this.isExpired(e.expiresAtMs, this.now())) {
      this.expire(k);
      return undefined;
    }
    return e;
  }

  /**
   * Removes an expired key. The tombstone is not needed for correctness (an
   * expired record is dropped by recovery anyway) but keeps the key dead if the
   * wall clock is ever set back. While writes fail it is skipped.
   */
  private expire(k: string): void {
    const e = this.index.get(k);
    if (e !== undefined) this.addLive(e.segmentId, -e.recordLength);
    this.index.delete(k);
    this.cache.delete(k);
    if (!this.writer.failure && !this.closing) this.appendTombstone(Buffer.from(k, 'latin1'));
  }

  private appendTombstone(key: Buffer): void {
    const seg = this.activeFor(recordLength(key.length, 0));
    this.writer.append(seg, {
      type: RecordType.Tombstone,
      flags: 0,
      timestampMs: this.now(),
      expiresAtMs: 0,
      key,
      value: noValue,
    });
  }

  /** The active segment, rotated first if this record would take it past segmentBytesMax. */
  private activeFor(length: number): Segment {
    const seg = this.active;
    // A segment holds at least one record, however large.
    if (seg.endOffset > SEGMENT_HEADER_BYTES && seg.endOffset + length > this.opts.segmentBytesMax) {
      seg.sealed = true;
      if (this.opts.maintenance !== false) this.compactor.queueHint(seg);
      this.active = this.newSegment(false);
      this.opts.logger.debug({ sealed: seg.fileName, active: this.active.fileName }, 'storage: segment rotated');
    }
    return this.active;
  }

  private newSegment(startsGeneration: boolean): Segment {
    const seg = Segment.inDir(this.opts.dir, this.nextSegmentId++, startsGeneration);
    this.segments.set(seg.id, seg);
    return seg;
  }

  private cacheValue(k: string, value: Buffer): void {
    // lru-cache would refuse an oversized value; dropping the key keeps a stale one out.
    if (this.cache.fits(k, value)) this.cache.set(k, value);
    else this.cache.delete(k);
  }

  private async readCold(
    k: string,
    key: Buffer,
    seg: Segment,
    offset: number,
    length: number,
    expiresAtMs: number,
  ): Promise<Entry> {
    const buf = await seg.read(offset, length);
    const { value } = this.decodeValue(buf, key, seg, offset);
    // Cache only if the key still points at this record: it may have changed during the read.
    const e = this.index.get(k);
    if (e && e.segmentId === seg.id && e.offset === offset) this.cacheValue(k, value);
    return { value, expiresAtMs };
  }

  /** Verifies a record read for `key` and returns its (decompressed) value. */
  private decodeValue(buf: Buffer, key: Buffer, seg: Segment, offset: number): { value: Buffer; compressed: boolean } {
    const r = decodeRecord(buf, 0, buf.length, recordLimits);
    if (r.kind === 'incomplete') throw this.corrupt(seg, offset, `file ends inside the record (${buf.length} of ${r.needBytes} bytes)`);
    if (r.kind === 'corrupt') throw this.corrupt(seg, offset, r.reason);
    const rec = r.record;
    if (r.length !== buf.length) throw this.corrupt(seg, offset, 'record length differs from the index');
    if (rec.type !== RecordType.Put) throw this.corrupt(seg, offset, 'not a put record');
    if (!rec.key.equals(key)) throw this.corrupt(seg, offset, 'record holds another key');
    if ((rec.flags & RecordFlag.Zstd) === 0) return { value: rec.value, compressed: false };
    try {
      return { value: zstd.decompress(rec.value), compressed: true };
    } catch (err) {
      throw this.corrupt(seg, offset, `zstd: ${(err as Error).message}`);
    }
  }

  private corrupt(seg: Segment, offset: number, reason: string): StorageCorruptError {
    this.corruptReads++;
    const err = new StorageCorruptError(seg.path, offset, reason);
    this.opts.logger.error({ file: seg.path, offset, reason }, `storage: ${err.message}`);
    return err;
  }

  /** One step of the background expiry sweep: walks the index with its own cursor. */
  private sweepExpired(): void {
    if (this.closing || this.index.size === 0) return;
    const now = this.now();
    const step = this.index.scan(this.sweepCursor, expireSweepKeysPerRun);
    this.sweepCursor = step.cursor;
    for (const k of step.keys) {
      const e = this.index.get(k);
      if (e && this.isExpired(e.expiresAtMs, now)) this.expire(k);
    }
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.compactor.stop();
    await this.clearing;
    let failure: unknown = null;
    try {
      await this.writer.sync();
      // A hint for the last active segment makes the next start-up read no segment whole.
      const last = this.active;
      if (this.opts.maintenance !== false && last.endOffset > SEGMENT_HEADER_BYTES && last.fd !== null) {
        last.sealed = true;
        await this.compactor.writeHint(last).catch((err) =>
          this.opts.logger.warn({ err, file: last.path }, 'storage: could not write the hint of the last segment'),
        );
      }
    } catch (err) {
      failure = err;
      this.opts.logger.error({ err, pendingBytes: this.writer.pendingBytes }, 'storage: close could not write everything; unwritten records are lost');
    }
    this.writer.stop();
    for (const seg of [...this.segments.values(), ...this.retired]) await seg.close();
    await this.lock.release();
    if (failure) throw failure;
  }
}
