// The log writer: group commit for the segment store.
//
// put() encodes its record straight into an in-memory batch (a stretch of a
// shared slab, see `slab`) and returns. The first record of a batch schedules
// a flush with setImmediate, so every record put in one event-loop turn goes
// to disk with ONE write syscall (one per 1 MiB slab a heavy turn fills). One
// loop (`run`) does all the I/O, so writes and fsyncs never overlap and the
// order on disk is the order of put():
//
//   write every batch that is waiting ─► fdatasync (if the policy or a waiter
//   asks for it) ─► repeat while there is more; records put meanwhile wait
//   in new batches for the next round.
//
// Except the once-a-second fdatasync of 'everysec': like Redis' background
// fsync, it runs beside the loop, so writes (and the replies waiting for
// them) never wait for the disk to flush; an fdatasync can take tens of
// milliseconds, and made every write behind it as slow. It still covers
// every write completed before it started. A waiter that needs a sync (close,
// clear, a retry after a failure) takes the serial path, after it.
//
// Durability is tracked with sequence numbers: every appended record gets the
// next `issuedSeq`; `writtenSeq` and `syncedSeq` say how far the writes and the
// fsyncs have come. A waiter is a (seq, callback) pair answered when its level
// reaches seq, so one fsync answers every waiter whose records it covered.
//
// A failed write or fsync puts the writer into the failed state: every waiter
// gets the error, the failed batches stay in memory (reads are served from
// them, and the index keeps pointing at them), no new record is accepted
// (the store throws StorageWriteError), and a timer retries. Writes are
// positional, so a retry rewrites the same bytes at the same offsets; the
// first successful round clears the failed state.

import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { encodeRecordInto, encodeSegmentHeader, recordLength, SegmentFlag } from '../../protocol/record.js';
import type { RecordFields } from '../../protocol/record.js';
import { writeRetryIntervalMs, writeSlabBytes } from '../constants.js';
import { StorageWriteError } from './errors.js';
import { fsyncDir, io, writeFully } from './io.js';
import type { Segment } from './segment.js';
import type { FsyncPolicy } from './types.js';

/** Records bound for one segment that are not yet in the file. */
interface Batch {
  segment: Segment;
  /** File offset of buf[0]. */
  start: number;
  /** A view of its slab from the batch's first byte to the slab's end (see batchFor). */
  buf: Buffer;
  used: number;
  /** Sequence number of the last record in the batch. */
  lastSeq: number;
  /** Set once a write of this batch has begun: later records go to a new batch. */
  frozen: boolean;
}

interface Waiter {
  seq: number;
  cb: (err: Error | null) => void;
}

export interface WriterOptions {
  dir: string;
  fsync: FsyncPolicy;
  logger: Logger;
  now: () => number;
}

export class LogWriter {
  private batches: Batch[] = [];
  private issuedSeq = 0;
  private writtenSeq = 0;
  private syncedSeq = 0;
  /** Waiting for their records to be handed to the OS ('everysec', 'no'). */
  private writeWaiters: Waiter[] = [];
  /** Waiting for their records to be covered by an fdatasync ('always', close, clear). */
  private syncWaiters: Waiter[] = [];
  /** Segments written since their last fdatasync. */
  private readonly dirty = new Set<Segment>();
  /** Segments dropped by forget(): never synced (or re-marked dirty) again. */
  private readonly forgotten = new WeakSet<Segment>();
  /** A segment file was created since the directory's last fsync. */
  private dirDirty = false;
  private syncWanted = false;
  /**
   * Batches are carved one after another from a slab, as Node carves small
   * Buffers from its pool: a buffer per batch cost an allocation the size of a
   * big turn for every small one, and V8 counts such external memory towards
   * its full GCs. The slab's bytes before `slabFree` belong to batches (written
   * or not; views of them may still be held, so they never change); the batch
   * in `slabTail` owns the rest and may grow into it. A record that does not
   * fit ends that batch, and the next batch of the segment starts in a new
   * slab (one more write that turn, never a copy); a record larger than a
   * slab gets a slab of its own size, dropped once written (see dropHugeSlab).
   */
  private slab = Buffer.alloc(0);
  private slabFree = 0;
  private slabTail: Batch | null = null;
  /** The 'everysec' fdatasync running beside the loop, if any. */
  private backgroundSync: Promise<void> | null = null;
  private running = false;
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  /** Set while writes fail; put() must not add records then. */
  failure: StorageWriteError | null = null;
  writes = 0;
  fsyncs = 0;
  writeErrors = 0;
  /** Wall-clock ms when the last fsync round completed (0 = never). */
  lastFsyncMs = 0;
  lastFsyncDurationMs = 0;

  constructor(private readonly opts: WriterOptions) {}

  /** Bytes of records not yet handed to the OS. */
  get pendingBytes(): number {
    let n = 0;
    for (const b of this.batches) n += b.used;
    return n;
  }

  /**
   * Appends a record to `segment` (the active one) and returns its offset in
   * the segment file. A segment's header goes in front of its first record.
   */
  append(segment: Segment, rec: RecordFields): number {
    // (assert.fail behind an if: a template message would be built on every call)
    if (segment.sealed) assert.fail(`append to sealed segment ${segment.fileName}`);
    assert.equal(this.failure, null, 'append while the writer is failed');
    if (segment.endOffset === 0) this.appendHeader(segment);
    const length = recordLength(rec.key.length, rec.value.length);
    const b = this.batchFor(segment, length);
    const offset = b.start + b.used;
    assert.equal(offset, segment.endOffset, 'batch out of step with its segment');
    encodeRecordInto(rec, b.buf, b.used);
    b.used += length;
    segment.endOffset += length;
    b.lastSeq = ++this.issuedSeq;
    this.schedule();
    return offset;
  }

  /** Queues the segment file header; the file itself is created by the first flush. */
  appendHeader(segment: Segment): void {
    assert.equal(segment.endOffset, 0, 'segment header must come first');
    const header = encodeSegmentHeader({
      segmentId: segment.id,
      createdAtMs: this.opts.now(),
      flags: (segment.startsGeneration ? SegmentFlag.GenerationStart : 0) | (segment.compactionOutput ? SegmentFlag.CompactionOutput : 0),
      orderKey: segment.orderKey,
    });
    const b = this.batchFor(segment, header.length);
    header.copy(b.buf, b.used);
    b.used += header.length;
    segment.endOffset += header.length;
    b.lastSeq = ++this.issuedSeq;
    this.schedule();
  }

  /** The bytes of a record that is still in memory (not yet written), if it is. */
  readFromMemory(segment: Segment, offset: number, length: number): Buffer | undefined {
    if (offset < segment.writtenBytes) return undefined;
    for (let i = this.batches.length - 1; i >= 0; i--) {
      const b = this.batches[i]!;
      if (b.segment === segment && offset >= b.start && offset + length <= b.start + b.used) {
        return b.buf.subarray(offset - b.start, offset - b.start + length);
      }
    }
    return undefined;
  }

  /** Calls cb once every record appended so far is durable under the fsync policy. */
  whenDurable(cb: (err: Error | null) => void): void {
    const seq = this.issuedSeq;
    const always = this.opts.fsync === 'always';
    if ((always ? this.syncedSeq : this.writtenSeq) >= seq) {
      process.nextTick(cb, null);
    } else if (this.failure) {
      process.nextTick(cb, this.failure);
    } else {
      (always ? this.syncWaiters : this.writeWaiters).push({ seq, cb });
      this.schedule();
    }
  }

  /**
   * Resolves once every record appended so far is written and fdatasynced,
   * whatever the policy (close, clear). In the failed state this retries now.
   */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      const seq = this.issuedSeq;
      if (this.syncedSeq >= seq && this.dirty.size === 0 && !this.dirDirty) return resolve();
      this.syncWaiters.push({ seq, cb: (err) => (err ? reject(err) : resolve()) });
      void this.run();
    });
  }

  /** Asks for an fsync round if anything was written since the last one ('everysec'). */
  requestSync(): void {
    if (this.dirty.size === 0 && !this.dirDirty) return;
    this.syncWanted = true;
    this.schedule();
  }

  /** Resolves when no background fdatasync is running (before closing a segment's file). */
  async settled(): Promise<void> {
    while (this.backgroundSync) await this.backgroundSync;
  }

  /** Drops a segment that is about to be closed and deleted (clear()). */
  forget(segment: Segment): void {
    assert(!this.batches.some((b) => b.segment === segment), 'forgetting a segment with unwritten records');
    this.dirty.delete(segment);
    this.forgotten.add(segment);
  }

  /** No more retries (close). */
  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  // --- the I/O loop --------------------------------------------------------------

  private batchFor(segment: Segment, need: number): Batch {
    const last = this.batches.at(-1);
    if (last && !last.frozen && last.segment === segment && last.used + need <= last.buf.length) return last;
    const b: Batch = { segment, start: segment.endOffset, buf: this.carve(need), used: 0, lastSeq: this.issuedSeq, frozen: false };
    this.slabTail = b;
    this.batches.push(b);
    return b;
  }

  /**
   * The free space (at least `need` bytes) for a new batch, after the batch
   * that held it stops growing. Allocates before changing anything, so a
   * failed allocation leaves the open batch as it was.
   */
  private carve(need: number): Buffer {
    const free = this.slabFree + (this.slabTail?.used ?? 0);
    if (this.slab.length - free < need) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(writeSlabBytes, need));
      this.slabFree = 0;
    } else {
      this.slabFree = free;
    }
    this.slabTail = null;
    return this.slab.subarray(this.slabFree);
  }

  /** Once every batch is written, a slab made for one huge record is let go rather than kept until the next record. */
  private dropHugeSlab(): void {
    if (this.batches.length > 0 || this.slab.length <= writeSlabBytes) return;
    this.slab = Buffer.alloc(0);
    this.slabFree = 0;
    this.slabTail = null;
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.failure || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const failed = this.failure;
    try {
      for (;;) {
        if (this.batches.length > 0) {
          await this.writeBatches();
          this.answer(this.writeWaiters, this.writtenSeq);
          if (this.opts.fsync === 'always') this.syncWanted = true;
        }
        // In the failed state (also one a background fdatasync entered during this run) only a serial
        // sync proves anything: a background one could still be running when the failure is cleared.
        if (this.syncWaiters.length > 0 || (this.syncWanted && (this.opts.fsync === 'always' || this.failure !== null))) {
          this.syncWanted = false;
          await this.settled();
          await this.syncDirty();
          this.answer(this.syncWaiters, this.syncedSeq);
        } else if (this.syncWanted) {
          this.syncWanted = false;
          this.syncInBackground();
        }
        if (this.batches.length === 0 && !this.syncWanted && this.syncWaiters.length === 0) break;
      }
      // Only the failure this run retried is cleared: a background fdatasync may have failed meanwhile.
      if (failed !== null && this.failure === failed) {
        this.opts.logger.warn({ dir: this.opts.dir }, 'storage: writes succeed again; accepting writes');
        this.failure = null;
      }
    } catch (err) {
      this.enterFailure(err);
    } finally {
      this.running = false;
    }
    // A background fdatasync can fail while this run is under way; the retry it
    // scheduled may have fired (and found the loop busy) before we got here.
    if (this.failure) this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.run();
    }, writeRetryIntervalMs);
    this.retryTimer.unref();
  }

  /** Writes every batch waiting now: one write per segment touched (and per slab a heavy turn filled). */
  private async writeBatches(): Promise<void> {
    const n = this.batches.length;
    for (let i = 0; i < n; i++) this.batches[i]!.frozen = true;
    for (let i = 0; i < n; i++) {
      const b = this.batches[0]!;
      const seg = b.segment;
      if (seg.fd === null) {
        await seg.create();
        this.dirDirty = true;
      }
      assert.equal(seg.writtenBytes, b.start, `write to ${seg.fileName} out of order`);
      this.writes++;
      await writeFully(seg.fd!, b.buf, 0, b.used, b.start);
      seg.writtenBytes = b.start + b.used;
      this.dirty.add(seg);
      this.batches.shift();
      this.writtenSeq = b.lastSeq;
    }
    this.dropHugeSlab();
  }

  /** The 'everysec' fdatasync, beside the loop; skipped if the previous one still runs. */
  private syncInBackground(): void {
    if (this.backgroundSync) return;
    this.backgroundSync = this.syncDirty().then(
      () => {
        this.backgroundSync = null;
      },
      (err: unknown) => {
        this.backgroundSync = null;
        this.enterFailure(err);
      },
    );
  }

  /**
   * fdatasyncs every segment written since its last sync, and the directory
   * if a file was created. The dirty marks are taken first: a write that
   * lands during the fdatasync marks its segment again for the next round.
   */
  private async syncDirty(): Promise<void> {
    const target = this.writtenSeq;
    const started = Date.now();
    let synced = false;
    const segments = [...this.dirty];
    this.dirty.clear();
    const dirDirty = this.dirDirty;
    this.dirDirty = false;
    let done = 0;
    try {
      for (; done < segments.length; done++) {
        const seg = segments[done]!;
        if (seg.fd === null || this.forgotten.has(seg)) continue;
        this.fsyncs++;
        await io.fdatasync(seg.fd);
        synced = true;
      }
      if (dirDirty) {
        this.fsyncs++;
        await fsyncDir(this.opts.dir);
        synced = true;
      }
    } catch (err) {
      for (const seg of segments.slice(done)) if (!this.forgotten.has(seg)) this.dirty.add(seg);
      if (dirDirty) this.dirDirty = true;
      throw err;
    }
    this.syncedSeq = Math.max(this.syncedSeq, target);
    if (synced) {
      this.lastFsyncMs = Date.now();
      this.lastFsyncDurationMs = this.lastFsyncMs - started;
    }
  }

  /** Calls back, in order, every waiter whose seq the level has reached. */
  private answer(queue: Waiter[], level: number): void {
    let k = 0;
    while (k < queue.length && queue[k]!.seq <= level) k++;
    if (k === 0) return;
    for (const w of queue.splice(0, k)) LogWriter.call(w, null);
  }

  private enterFailure(cause: unknown): void {
    const code = (cause as NodeJS.ErrnoException)?.code ?? '';
    const message = cause instanceof Error ? cause.message : String(cause);
    const firstFailure = this.failure === null;
    this.failure = new StorageWriteError(
      `writing to ${this.opts.dir} failed (${code || message}); ` +
        'writes are refused until a retry succeeds: free disk space or fix the device',
      cause,
    );
    this.writeErrors++;
    // Sync again after the retry: after a failed fdatasync, or a write that may
    // have partly reached the file, nothing written since the last good sync is proven.
    this.syncWanted = true;
    // One error line per outage, not one per retry (a full disk would flood the log).
    const log = firstFailure ? this.opts.logger.error.bind(this.opts.logger) : this.opts.logger.debug.bind(this.opts.logger);
    log(
      { err: cause, dir: this.opts.dir, pendingBytes: this.pendingBytes, writeErrors: this.writeErrors },
      `storage: write failed: ${message}; retrying every ${writeRetryIntervalMs} ms`,
    );
    // Waiters whose records made it before the failure (an earlier segment of
    // the same round) are answered as such; only the rest get the error.
    this.answer(this.writeWaiters, this.writtenSeq);
    this.answer(this.syncWaiters, this.syncedSeq);
    const waiters = [...this.writeWaiters, ...this.syncWaiters];
    this.writeWaiters = [];
    this.syncWaiters = [];
    for (const w of waiters) LogWriter.call(w, this.failure);
    this.scheduleRetry();
  }

  private static call(w: Waiter, err: Error | null): void {
    try {
      w.cb(err);
    } catch (e) {
      // A throwing callback is the caller's bug; surface it without breaking the loop.
      process.nextTick(() => {
        throw e;
      });
    }
  }
}
