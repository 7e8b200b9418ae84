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
//
// The index (index.ts) keeps hashes and locations, not keys. Whenever it finds
// an entry whose hash matches, the store confirms the key (holdsKey): against
// the cached record, the pending batch, or a synchronous pread of the
// record's header and key. get() defers that check to the record read it does
// anyway, so a cold GET stays one disk read.

import assert from 'node:assert/strict';
import * as zstd from 'zstd-napi';
import {
  decodeRecord,
  RECORD_HEADER_BYTES,
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
  indexKeysMax,
  keyBytesMax,
  MiB,
  tombstoneGraceSecondsDefault,
  keyReadWholeBytesMax,
  shutdownHintBytesMax,
  segmentBytesLimit,
  valueBytesMax,
} from '../constants.js';
import { Compactor } from './compactor.js';
import type { CompactionHost } from './compactor.js';
import { ValueCache } from './cache.js';
import { cachedHoldsKey, cachedKey, cachedRecord, cachedValue } from './cache.js';
import { StorageClosedError, StorageCorruptError, StorageLimitError } from './errors.js';
import { loadHashSeed, seededHasher } from './hash.js';
import { CompactIndex } from './index.js';
import type { IndexEntry, KeyVerifier } from './index.js';
import { fsyncDir, io, readFullySync } from './io.js';
import { DirLock } from './lock.js';
import { recover } from './recovery.js';
import type { RecoveryResult } from './recovery.js';
import { Segment } from './segment.js';
import type { Entry, RecoveryStats, StoreOptions, StoreStats } from './types.js';
import { LogWriter } from './writer.js';

export type { Entry, FsyncPolicy, RecoveryStats, StoreOptions, StoreStats } from './types.js';
export type { IndexEntry } from './index.js';
export type { HashSeed, KeyHash } from './hash.js';
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
  /** Bumped by every clear(), so background work begun before it can tell. */
  private generation = 0;
  private readonly compactor: Compactor;
  /** Record header + largest key: the buffer of key verification reads. */
  private readonly keyBuf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + keyBytesMax);
  /** Fingerprint matches confirmed by a read of the record (figures for the docs). */
  keyVerifyReads = 0;
  /** Fingerprint matches that turned out to be another key. */
  falseMatches = 0;
  /** Set by verifyDeferred when it let a candidate through unchecked (get() checks it on its read). */
  private deferredId = 0;
  private readonly verifyStrict: KeyVerifier = (id, key) => this.holdsKey(id, key, false);
  private readonly verifyDeferred: KeyVerifier = (id, key) => this.holdsKey(id, key, true);

  private constructor(
    private readonly opts: StoreOptions,
    private readonly lock: DirLock,
    private readonly index: CompactIndex,
    recovered: RecoveryResult,
  ) {
    this.now = opts.now ?? Date.now;
    index.verify = this.verifyStrict;
    this.cache = new ValueCache(opts.cacheBytes);
    this.writer = new LogWriter({ dir: opts.dir, fsync: opts.fsync, logger: opts.logger, now: this.now });
    for (const seg of recovered.segments) this.segments.set(seg.id, seg);
    this.damagedFiles = recovered.damagedFiles;
    this.recoveryStats = recovered.stats;
    this.nextSegmentId = recovered.nextSegmentId;
    // Always a fresh active segment: every file that existed at open stays
    // immutable. Its file appears only when the first record is flushed.
    this.active = this.newSegment(false);

    this.compactor = new Compactor(this.compactionHost(), {
      auto: opts.compaction ?? true,
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
    assert(opts.segmentBytesMax <= segmentBytesLimit, 'segmentBytesMax over segmentBytesLimit (offsets are u32 in the index and in hint files)');
    assert(opts.cacheBytes >= 0 && opts.compressBytesMin >= 0, 'negative storage option');
    await io.mkdir(opts.dir);
    const lock = await DirLock.acquire(opts.dir, opts.logger);
    try {
      const started = Date.now();
      const seed = await loadHashSeed(opts.dir, opts.logger);
      const index = new CompactIndex({ hasher: opts.indexHasher ?? seededHasher(seed) });
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
    return this.lookup(key, true);
  }

  /**
   * get(), verifying fingerprint matches that only a disk read could confirm
   * either on that read (`deferred`) or before it, with a pread of the key.
   */
  private lookup(key: Buffer, deferred: boolean): Entry | undefined | Promise<Entry | undefined> {
    this.deferredId = 0;
    const id = this.index.find(key, deferred ? this.verifyDeferred : this.verifyStrict);
    if (id === 0) return undefined;
    if (this.index.hasExpiry(id) && this.isExpired(this.index.expiresAtOf(id), this.now())) {
      // Expiring deletes and writes a tombstone: be sure it is this key first.
      if (this.deferredId === id) return this.lookup(key, false);
      this.expire(id, key);
      return undefined;
    }
    const expiresAtMs = this.index.expiresAtOf(id);
    const cached = this.cache.get(id);
    if (cached !== undefined) return { value: cachedValue(cached), expiresAtMs };

    const segmentId = this.index.segmentIdOf(id);
    const offset = this.index.offsetOf(id);
    const length = this.index.recordLengthOf(id);
    const seg = this.segments.get(segmentId);
    if (seg === undefined) assert.fail(`index points at unknown segment ${segmentId}`);
    const inMemory = this.writer.readFromMemory(seg, offset, length);
    if (inMemory !== undefined) {
      const stored = this.decodeValue(inMemory, key, seg, offset);
      // Copied out of the batch buffer (by the cache, or here) so that nothing pins the whole batch.
      const rec = this.cacheValue(id, key, stored.value);
      const value = rec !== undefined ? cachedValue(rec) : stored.compressed ? stored.value : Buffer.from(stored.value);
      return { value, expiresAtMs };
    }
    const unverified = this.deferredId === id;
    this.deferredId = 0;
    return this.readCold(id, key, seg, offset, length, expiresAtMs, unverified);
  }

  /** undefined if the key is missing or expired, else its expiresAtMs (0 = none). */
  expiryOf(key: Buffer): number | undefined {
    this.checkOpen();
    const id = this.liveId(key);
    return id === 0 ? undefined : this.index.expiresAtOf(id);
  }

  has(key: Buffer): boolean {
    this.checkOpen();
    return this.liveId(key) !== 0;
  }

  /** Keys in the index, like DBSIZE: may count expired keys the sweep has not reached. */
  get size(): number {
    return this.index.size;
  }

  /**
   * A step of a Redis-like SCAN: cursor 0 starts, a returned 0 ends. The cursor
   * is an index entry id, which never moves, so a key present during the whole
   * scan is returned at least once (index.ts says why). Keys are read from
   * the cache, the pending batch or the records on disk.
   */
  scan(cursor: number, count: number): { cursor: number; keys: Buffer[] } {
    this.checkOpen();
    const step = this.index.scan(cursor, Math.max(1, Math.floor(count) || 1));
    const keys: Buffer[] = [];
    const now = this.now();
    for (const id of step.ids) {
      if (!this.index.isLive(id)) continue; // expired by an earlier key of this step? (ids are distinct; defensive)
      const key = this.keyOf(id);
      if (key === undefined) continue;
      if (this.index.hasExpiry(id) && this.isExpired(this.index.expiresAtOf(id), now)) this.expire(id, key);
      else keys.push(key);
    }
    return { cursor: step.cursor, keys };
  }

  /** Every live key (expired ones are skipped, not deleted). Each costs a read unless cached. */
  *keys(): IterableIterator<Buffer> {
    this.checkOpen();
    for (const id of this.index.ids()) {
      if (this.index.hasExpiry(id) && this.isExpired(this.index.expiresAtOf(id), this.now())) continue;
      const key = this.keyOf(id);
      if (key !== undefined) yield key;
    }
  }

  randomKey(): Buffer | undefined {
    this.checkOpen();
    // Each expired pick is deleted, so this ends.
    for (;;) {
      const id = this.index.randomId();
      if (id === 0) return undefined;
      const key = this.keyOf(id);
      if (key === undefined) return undefined; // damaged record (logged); do not spin on it
      if (this.index.hasExpiry(id) && this.isExpired(this.index.expiresAtOf(id), this.now())) this.expire(id, key);
      else return key;
    }
  }

  // --- for compaction ----------------------------------------------------------------

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
    if (this.index.size >= indexKeysMax && this.index.find(key) === 0) {
      throw new StorageLimitError('keys', this.index.size + 1, indexKeysMax);
    }
    const seg = this.activeFor(length);
    const offset = this.writer.append(seg, {
      type: RecordType.Put,
      flags,
      timestampMs: this.now(),
      expiresAtMs,
      key,
      value: stored,
    });
    const e = this.scratch;
    e.segmentId = seg.id;
    e.offset = offset;
    e.recordLength = length;
    e.expiresAtMs = expiresAtMs;
    e.flags = flags;
    const id = this.index.set(key, e);
    // A copy (cacheValue copies): the caller may reuse its buffers (a socket read buffer, say).
    this.cacheValue(id, key, value);
  }

  /** Deletes `key`; true if it existed (and had not expired). */
  delete(key: Buffer): boolean {
    this.checkOpen();
    const id = this.liveId(key);
    if (id === 0) return false;
    this.checkWritable();
    this.appendTombstone(key);
    this.index.remove(id);
    this.cache.delete(id);
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
      indexBytes: this.index.memoryBytes,
      keysWithExpiry: this.index.expiringKeys,
      keyVerifyReads: this.keyVerifyReads,
      falseMatches: this.falseMatches,
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

  // --- internals -------------------------------------------------------------------

  /** The narrow view of the store that compactor.ts works through. */
  private compactionHost(): CompactionHost {
    const store = this;
    return {
      dir: this.opts.dir,
      logger: this.opts.logger,
      limits: recordLimits,
      now: () => this.now(),
      segmentsInOrder: () => [...this.segments.values()].sort(Segment.compare),
      segmentLiveBytes: (id) => this.index.segmentLiveBytes(id),
      allocateSegmentId: () => this.nextSegmentId++,
      isCurrent: (key, segmentId, offset) => this.index.isAt(key, segmentId, offset),
      hasKey: (key) => this.index.find(key) !== 0,
      relocate: (key, fromSegmentId, fromOffset, to) => this.index.relocate(key, fromSegmentId, fromOffset, to),
      addSegment: (seg) => {
        this.segments.set(seg.id, seg);
      },
      removeSegment: async (seg) => {
        assert(this.index.segmentLiveBytes(seg.id) === 0, `compaction input ${seg.fileName} still has live records`);
        this.segments.delete(seg.id);
        this.writer.forget(seg);
        await this.writer.settled(); // a background fdatasync may still hold its fd
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

  /** The entry id of a key that exists and has not expired, else 0; an expired one is deleted on the way. */
  private liveId(key: Buffer): number {
    const id = this.index.find(key);
    if (id === 0) return 0;
    if (this.index.hasExpiry(id) && this.isExpired(this.index.expiresAtOf(id), this.now())) {
      this.expire(id, key);
      return 0;
    }
    return id;
  }

  /**
   * Removes an expired key (entry `id`, whose key is `key`). The tombstone is
   * not needed for correctness (an expired record is dropped by recovery
   * anyway) but keeps the key dead if the wall clock is ever set back. While
   * writes fail it is skipped.
   */
  private expire(id: number, key: Buffer): void {
    this.index.remove(id);
    this.cache.delete(id);
    if (!this.writer.failure && !this.closing) this.appendTombstone(key);
  }

  /**
   * Whether index entry `id` holds `key`: from the cache, the pending batch,
   * or (unless `defer`, where get() checks on its own read) one pread of the
   * record's header and key.
   */
  private holdsKey(id: number, key: Buffer, defer: boolean): boolean {
    const length = this.index.recordLengthOf(id);
    if (length < RECORD_HEADER_BYTES + key.length) return this.mismatch();
    const cached = this.cache.peek(id);
    if (cached !== undefined) return cachedHoldsKey(cached, key) || this.mismatch();
    const seg = this.segments.get(this.index.segmentIdOf(id));
    if (seg === undefined) assert.fail(`index points at unknown segment ${this.index.segmentIdOf(id)}`);
    const offset = this.index.offsetOf(id);
    const mem = this.writer.readFromMemory(seg, offset, length);
    if (mem !== undefined) return recordHoldsKey(mem, key) || this.mismatch();
    if (defer) {
      this.deferredId = id;
      return true;
    }
    if (seg.fd === null) assert.fail(`record of ${seg.fileName} neither in memory nor in a file`);
    this.keyVerifyReads++;
    const n = RECORD_HEADER_BYTES + key.length;
    const got = readFullySync(seg.fd, this.keyBuf, 0, n, offset);
    return (got === n && recordHoldsKey(this.keyBuf, key)) || this.mismatch();
  }

  private mismatch(): false {
    this.falseMatches++;
    return false;
  }

  /**
   * The key of entry `id`, from the cache, the pending batch or the record on
   * disk (verified: both checksums for records up to keyReadWholeBytesMax, the
   * header checksum for larger ones). undefined if the record is damaged
   * (logged and counted as a corrupt read).
   */
  private keyOf(id: number): Buffer | undefined {
    const cached = this.cache.peek(id);
    if (cached !== undefined) return Buffer.from(cachedKey(cached));
    const seg = this.segments.get(this.index.segmentIdOf(id));
    if (seg === undefined) assert.fail(`index points at unknown segment ${this.index.segmentIdOf(id)}`);
    const offset = this.index.offsetOf(id);
    const length = this.index.recordLengthOf(id);
    const mem = this.writer.readFromMemory(seg, offset, length);
    if (mem !== undefined) {
      const keyLength = mem.readUInt32LE(12);
      return Buffer.from(mem.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + keyLength));
    }
    if (seg.fd === null) assert.fail(`record of ${seg.fileName} neither in memory nor in a file`);
    const first = Math.min(length, keyReadWholeBytesMax);
    const buf = Buffer.allocUnsafe(first);
    let got = readFullySync(seg.fd, buf, 0, first, offset);
    const r = decodeRecord(buf, 0, got, recordLimits);
    if (r.kind === 'corrupt' || (r.kind === 'incomplete' && got < Math.min(first, RECORD_HEADER_BYTES)) || (r.kind === 'incomplete' && first === length)) {
      this.corrupt(seg, offset, r.kind === 'corrupt' ? r.reason : 'file ends inside the record');
      return undefined;
    }
    if (r.kind === 'ok') {
      if (r.length !== length || r.record.type !== RecordType.Put) {
        this.corrupt(seg, offset, 'record differs from the index');
        return undefined;
      }
      return Buffer.from(r.record.key);
    }
    // A large record: its header verified; read the key.
    const keyLength = buf.readUInt32LE(12);
    const kb = Buffer.allocUnsafe(keyLength);
    got = readFullySync(seg.fd, kb, 0, keyLength, offset + RECORD_HEADER_BYTES);
    if (got !== keyLength) {
      this.corrupt(seg, offset, 'file ends inside the key');
      return undefined;
    }
    return kb;
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

  /** Caches a copy of key and value as the record of entry `id`. */
  private cacheValue(id: number, key: Buffer, value: Buffer): Buffer | undefined {
    // lru-cache would refuse an oversized value; dropping the entry keeps a stale one out.
    if (!this.cache.fits(key, value)) {
      this.cache.delete(id);
      return undefined;
    }
    const rec = cachedRecord(key, value);
    this.cache.set(id, rec);
    return rec;
  }

  private async readCold(
    id: number,
    key: Buffer,
    seg: Segment,
    offset: number,
    length: number,
    expiresAtMs: number,
    unverified: boolean,
  ): Promise<Entry | undefined> {
    const buf = await seg.read(offset, length);
    if (unverified && !this.closing) {
      // The index matched a fingerprint only: a record of another key means a
      // false match, not damage. Look again, verifying every candidate.
      const r = decodeRecord(buf, 0, buf.length, recordLimits);
      if (r.kind === 'ok' && r.length === buf.length && r.record.type === RecordType.Put && !r.record.key.equals(key)) {
        this.falseMatches++;
        this.checkOpen();
        return this.lookup(key, false);
      }
    }
    const { value } = this.decodeValue(buf, key, seg, offset);
    // Cache only if the entry still points at this record: it may have changed during the read.
    if (this.index.isLive(id) && this.index.segmentIdOf(id) === seg.id && this.index.offsetOf(id) === offset) {
      this.cacheValue(id, key, value);
    }
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

  /**
   * One step of the background expiry sweep: walks the index's entry ids with
   * its own cursor. Only expired entries cost a read (for the key of their tombstone).
   */
  private sweepExpired(): void {
    if (this.closing || this.index.size === 0 || this.index.expiringKeys === 0) return;
    const now = this.now();
    const step = this.index.scan(this.sweepCursor, expireSweepKeysPerRun);
    this.sweepCursor = step.cursor;
    for (const id of step.ids) {
      if (!this.index.hasExpiry(id) || !this.isExpired(this.index.expiresAtOf(id), now)) continue;
      const key = this.keyOf(id);
      if (key === undefined) continue;
      this.expire(id, key);
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
      if (this.opts.maintenance !== false) {
        await this.compactor.writeQueuedHints(shutdownHintBytesMax).catch((err) =>
          this.opts.logger.warn({ err }, 'storage: could not write the queued hint files'),
        );
      }
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
    await this.writer.settled(); // a background fdatasync may still use these fds (if sync() failed)
    for (const seg of [...this.segments.values(), ...this.retired]) await seg.close();
    await this.lock.release();
    if (failure) throw failure;
  }
}

/** Whether the record at the start of `buf` (header, then key) has exactly this key. */
function recordHoldsKey(buf: Buffer, key: Buffer): boolean {
  const n = key.length;
  if (buf.readUInt32LE(12) !== n) return false;
  if (n <= 32) {
    for (let i = 0; i < n; i++) if (buf[RECORD_HEADER_BYTES + i] !== key[i]) return false;
    return true;
  }
  return buf.compare(key, 0, n, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + n) === 0;
}

