// Background work on sealed segments: hint files and compaction.
//
// HINT FILES. Every sealed segment gets a hint file (protocol/hint.ts) so that
// start-up reads a few bytes per key instead of every record. A segment's
// hint is made by reading it once, verifying every record, after the segment
// is sealed and written; a compaction writes its outputs' hints as it goes.
//
// COMPACTION picks sealed segments whose share of dead bytes (overwritten,
// deleted, expired) is at least `minDeadRatio`, copies their live records
// (the raw bytes: a record carries nothing that depends on where it sits)
// into new segments, and switches over with this protocol (docs/storage.md
// has it with every crash point):
//
//   1. write outputs as NNN.compacting (header: CompactionOutput flag and the
//      orderKey of the newest input, so they replay where the inputs did),
//      fdatasync them, write their hint files, fsync the directory;
//   2. write NNN.commit (inputs, outputs) to a .tmp name, fdatasync, rename,
//      fsync the directory: THE COMMIT POINT;
//   3. rename every output to NNN.seg, fsync the directory;
//   4. repoint the index at the outputs (compare-and-set, so a key written
//      meanwhile keeps its newer record), delete the inputs and their hints
//      in id order, fsync the directory, delete the commit file.
//
// A crash before 2 leaves .compacting files that recovery deletes; after 2,
// recovery finishes 3 and 4. Either way every acknowledged write survives.
//
// Which records are copied:
//   - a put the index points at (current): copied;
//   - a put that is not current: something newer supersedes it: dropped;
//   - a tombstone, or an expired put (it shadows older puts of its key like
//     a tombstone): dropped only if (a) every segment that replays before it
//     is an input of this compaction, so no older record of the key survives
//     anywhere (Bitcask's partial merges resurrected deletes), and (b) a
//     tombstone is older than the grace period, so that replicas can learn of
//     the delete first; a tombstone whose key exists again is dropped at once
//     (the newer put shadows whatever it shadowed).
//
// All I/O is asynchronous and throttled to `rateBytesPerSec` (bytes read plus
// written); the event loop gets a turn between chunks, so writes and reads
// go on meanwhile. One compaction or hint job at a time.

import { join } from 'node:path';
import type { Logger } from 'pino';
import { encodeCommit } from '../../protocol/commit.js';
import { decodeHintFile, HINT_HEADER_BYTES, HintBuilder } from '../../protocol/hint.js';
import { decodeRecord, encodeSegmentHeader, RecordType, SEGMENT_HEADER_BYTES, SegmentFlag } from '../../protocol/record.js';
import type { DecodedRecord, RecordLimits } from '../../protocol/record.js';
import { compactionChunkBytes, compactionRelocateBatch } from '../constants.js';
import type { IndexEntry } from './index.js';
import { fsyncDir, io, readFully, writeFileAtomic, writeFully } from './io.js';
import { dataFileName, Segment } from './segment.js';

/** What the compactor needs from the store; nothing else of it is visible here. */
export interface CompactionHost {
  readonly dir: string;
  readonly logger: Logger;
  readonly limits: RecordLimits;
  now(): number;
  /** Every segment, the active one included, in replay order. */
  segmentsInOrder(): Segment[];
  /** Bytes of the records the index points at in this segment. */
  segmentLiveBytes(segmentId: number): number;
  /** A fresh segment id (ids are never reused). */
  allocateSegmentId(): number;
  isCurrent(key: Buffer, segmentId: number, offset: number): boolean;
  hasKey(key: Buffer): boolean;
  relocate(key: Buffer, fromSegmentId: number, fromOffset: number, to: IndexEntry): boolean;
  /** Makes a compaction's output readable (it joins the store's segments). */
  addSegment(seg: Segment): void;
  /** Drops an input from the store's segments and closes it once reads drain. */
  removeSegment(seg: Segment): Promise<void>;
  /** Bumped by clear() (FLUSHALL): work begun before it must not touch the store. */
  readonly generation: number;
  /** Resolves when the last clear() has made its new generation durable. */
  whenCleared(): Promise<void>;
}

export interface CompactionOptions {
  /** Whether the background loop compacts at all (hint files are written either way; runNow always compacts). */
  auto: boolean;
  /** Sealed segments with at least this share of dead bytes are compacted. */
  minDeadRatio: number;
  /** Bytes per second read plus written; 0 = as fast as the disk goes. */
  rateBytesPerSec: number;
  /** Tombstones younger than this are kept (replicas may not know the delete yet). */
  tombstoneGraceMs: number;
  /** Most input bytes per compaction (at least one segment is always taken). */
  inputBytesMax: number;
  /** Outputs are cut at this size, as the active segment is. */
  segmentBytesMax: number;
}

export interface CompactionStats {
  running: boolean;
  /** Of the running compaction: input bytes read so far, and in all. */
  inputBytesDone: number;
  inputBytesTotal: number;
  compactions: number;
  bytesReclaimed: number;
  tombstonesDropped: number;
  hintsWritten: number;
  lastError: string | null;
}

/** Why a compaction stopped before its commit (never an error worth more than a log line). */
class Abandoned extends Error {}

/** One output segment being written. */
class Output {
  readonly seg: Segment;
  private buf: Buffer;
  private used = 0;
  /** File offset of buf[0]. */
  private flushedTo = 0;
  readonly hint: HintBuilder;
  /** Where each copied put came from: (segment id, offset) pairs in hint order; -1 for tombstones. */
  readonly origins: number[] = [];
  /** Tombstones and expired puts copied because they could not be dropped yet. */
  tombstoneBytes = 0;

  constructor(dir: string, id: number, orderKey: number, now: number) {
    this.seg = new Segment(id, join(dir, dataFileName('compacting', id)), false, orderKey, true);
    this.buf = Buffer.allocUnsafe(compactionChunkBytes * 2);
    this.hint = new HintBuilder(id);
    const header = encodeSegmentHeader({ segmentId: id, createdAtMs: now, flags: SegmentFlag.CompactionOutput, orderKey });
    header.copy(this.buf, 0);
    this.used = header.length;
    this.seg.endOffset = header.length;
  }

  get size(): number {
    return this.seg.endOffset;
  }

  /** Copies a verified record's raw bytes; returns its offset in this output. */
  append(raw: Buffer, rec: DecodedRecord, origin: number, originOffset: number): number {
    if (this.used + raw.length > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + raw.length));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    raw.copy(this.buf, this.used);
    this.used += raw.length;
    const offset = this.seg.endOffset;
    this.seg.endOffset += raw.length;
    this.hint.add({ type: rec.type, flags: rec.flags, key: rec.key, offset, recordLength: raw.length, expiresAtMs: rec.expiresAtMs });
    this.origins.push(origin, originOffset);
    return offset;
  }

  /** Writes what is buffered; returns the bytes written. */
  async flush(): Promise<number> {
    if (this.seg.fd === null) await this.seg.create();
    const n = this.used;
    if (n === 0) return 0;
    await writeFully(this.seg.fd!, this.buf, 0, n, this.flushedTo);
    this.flushedTo += n;
    this.seg.writtenBytes = this.flushedTo;
    this.used = 0;
    if (this.buf.length > compactionChunkBytes * 2) this.buf = Buffer.allocUnsafe(compactionChunkBytes * 2);
    return n;
  }
}

export class Compactor {
  private readonly hintQueue: Segment[] = [];
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private stopped = false;
  /** Segments a compaction found damaged: never compacted again (their good records stay where they are). */
  private readonly damaged = new Set<number>();
  /** Pacing: when the current job began and how many bytes it has moved. */
  private paceStartMs = 0;
  private paceBytes = 0;

  readonly stats: CompactionStats = {
    running: false,
    inputBytesDone: 0,
    inputBytesTotal: 0,
    compactions: 0,
    bytesReclaimed: 0,
    tombstonesDropped: 0,
    hintsWritten: 0,
    lastError: null,
  };

  constructor(
    private readonly host: CompactionHost,
    private readonly opts: CompactionOptions,
    private readonly checkIntervalMs: number,
  ) {}

  start(): void {
    this.schedule(this.checkIntervalMs);
  }

  /** A segment was sealed (or recovered without a hint): make its hint file. */
  queueHint(seg: Segment): void {
    this.hintQueue.push(seg);
  }

  /**
   * Runs pending hint jobs and compactions now, until nothing qualifies; with
   * `full`, every sealed segment qualifies once (BGREWRITEAOF). Resolves when done.
   */
  async runNow(full = false): Promise<void> {
    while (this.current) await this.current;
    if (this.stopped) return;
    const job = this.work(full);
    this.current = job;
    try {
      await job;
    } finally {
      this.current = null;
    }
  }

  /** Stops the background loop and waits for the job in progress (close). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.current) await this.current;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.current) {
        this.schedule(this.checkIntervalMs);
        return;
      }
      const job = this.work(false);
      this.current = job;
      void job.finally(() => {
        this.current = null;
        this.schedule(this.checkIntervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  private async work(full: boolean): Promise<void> {
    try {
      // A segment sealed a moment ago may still have records in memory: it waits its turn.
      while (!this.stopped && this.hintQueue.length > 0 && this.hintQueue[0]!.writtenBytes === this.hintQueue[0]!.endOffset) {
        await this.writeHint(this.hintQueue.shift()!);
      }
      let inputs = full || this.opts.auto ? this.pick(full) : null;
      while (!this.stopped && inputs !== null) {
        await this.compact(inputs);
        if (full) break;
        inputs = this.pick(false);
      }
      this.stats.lastError = null;
    } catch (err) {
      if (err instanceof Abandoned) {
        this.host.logger.info({ reason: err.message }, `storage: compaction abandoned: ${err.message}`);
        return;
      }
      this.stats.lastError = (err as Error).message;
      this.host.logger.error({ err, dir: this.host.dir }, `storage: compaction failed: ${(err as Error).message}; will try again`);
    } finally {
      this.stats.running = false;
    }
  }

  // --- picking ---------------------------------------------------------------------

  /** The segments to compact next, in replay order, or null. */
  private pick(full: boolean): Segment[] | null {
    const picked: Segment[] = [];
    let bytes = 0;
    for (const seg of this.host.segmentsInOrder()) {
      if (!this.compactable(seg)) continue;
      const body = seg.writtenBytes - SEGMENT_HEADER_BYTES;
      // Tombstones a compaction had to keep are not dead space it can reclaim again.
      const dead = body - this.host.segmentLiveBytes(seg.id) - seg.tombstoneBytesKept;
      if (!full && (body <= 0 || dead / body < this.opts.minDeadRatio)) continue;
      if (picked.length > 0 && bytes + seg.writtenBytes > this.opts.inputBytesMax) break;
      picked.push(seg);
      bytes += seg.writtenBytes;
    }
    return picked.length > 0 ? picked : null;
  }

  private compactable(seg: Segment): boolean {
    return seg.sealed && seg.fd !== null && seg.writtenBytes === seg.endOffset && seg.endOffset > 0 && !this.damaged.has(seg.id);
  }

  // --- compaction ------------------------------------------------------------------

  private async compact(inputs: Segment[]): Promise<void> {
    const host = this.host;
    const generation = host.generation;
    const started = Date.now();
    const ordered = host.segmentsInOrder();
    const inputIds = new Set(inputs.map((s) => s.id));
    // Segments replaying before ordered[coveredBefore] are all inputs: in them a
    // tombstone shadows nothing that survives this compaction.
    let coveredBefore = 0;
    while (coveredBefore < ordered.length && inputIds.has(ordered[coveredBefore]!.id)) coveredBefore++;
    const covered = new Set(ordered.slice(0, coveredBefore).map((s) => s.id));
    const orderKey = inputs[inputs.length - 1]!.orderKey;
    const now = host.now();
    const graceCutoff = now - this.opts.tombstoneGraceMs;

    this.stats.running = true;
    this.stats.inputBytesDone = 0;
    this.stats.inputBytesTotal = inputs.reduce((n, s) => n + s.writtenBytes, 0);
    this.startPacing();
    const outputs: Output[] = [];
    let out: Output | null = null;
    let dropped = 0;
    const checkGeneration = (): void => {
      if (host.generation !== generation) throw new Abandoned('the store was cleared (FLUSHALL)');
      if (this.stopped) throw new Abandoned('the store is closing');
    };

    try {
      for (const input of inputs) {
        const inCovered = covered.has(input.id);
        await this.readRecords(input, (rec, offset, raw) => {
          let keep: boolean;
          let shadowing = false;
          if (rec.type === RecordType.Put && host.isCurrent(rec.key, input.id, offset)) {
            keep = true;
          } else if (rec.type === RecordType.Tombstone) {
            shadowing = true;
            keep = !(host.hasKey(rec.key) || (inCovered && rec.timestampMs <= graceCutoff));
          } else if (rec.expiresAtMs !== 0 && rec.expiresAtMs <= now) {
            shadowing = true;
            keep = !inCovered;
          } else {
            keep = false;
          }
          if (!keep) {
            if (shadowing) dropped++;
            return;
          }
          if (out === null || (out.size > SEGMENT_HEADER_BYTES && out.size + raw.length > this.opts.segmentBytesMax)) {
            out = new Output(host.dir, host.allocateSegmentId(), orderKey, now);
            outputs.push(out);
          }
          out.append(raw, rec, shadowing ? -1 : input.id, offset);
          if (shadowing) out.tombstoneBytes += raw.length;
        }, async (n) => {
          checkGeneration();
          let written = 0;
          for (const o of outputs) written += await o.flush();
          await this.pace(n + written);
          checkGeneration();
        });
      }
      for (const o of outputs) {
        await o.flush();
        await io.fdatasync(o.seg.fd!);
        o.seg.sealed = true;
        o.seg.tombstoneBytesKept = o.tombstoneBytes;
        await writeFileAtomic(host.dir, o.seg.hintPath, o.hint.finish(o.seg.writtenBytes), false);
      }
      await fsyncDir(host.dir);
      checkGeneration();
    } catch (err) {
      await this.discard(outputs);
      if (!(err instanceof Abandoned) && (err as { code?: string }).code === 'ECORRUPT') {
        this.damaged.add((err as { segmentId: number }).segmentId);
      }
      throw err;
    }

    // 2. The commit point.
    const commitPath = join(host.dir, dataFileName('commit', outputs[0]?.seg.id ?? host.allocateSegmentId()));
    await writeFileAtomic(host.dir, commitPath, encodeCommit({ inputs: inputs.map((s) => s.id), outputs: outputs.map((o) => o.seg.id) }), true);

    // 3. Outputs become ordinary segments.
    for (const o of outputs) {
      const final = join(host.dir, dataFileName('segment', o.seg.id));
      await io.rename(o.seg.path, final);
      o.seg.path = final;
    }
    await fsyncDir(host.dir);

    // 4. Switch the index over, then delete the inputs.
    if (host.generation !== generation) {
      // FLUSHALL made all of this obsolete; its own cleanup owns the inputs.
      await host.whenCleared();
      await this.discard(outputs);
      await io.unlink(commitPath);
      return;
    }
    for (const o of outputs) host.addSegment(o.seg);
    let relocated = 0;
    for (const o of outputs) {
      const entries: { key: Buffer; to: IndexEntry }[] = [];
      decodeHintFile(o.hint.finish(o.seg.writtenBytes), host.limits.keyBytesMax, (e) => {
        entries.push({
          key: Buffer.from(e.key),
          to: { segmentId: o.seg.id, offset: e.offset, recordLength: e.recordLength, expiresAtMs: e.expiresAtMs, flags: e.flags },
        });
      });
      for (let i = 0; i < entries.length; i++) {
        const from = o.origins[2 * i]!;
        if (from >= 0 && host.generation === generation) {
          if (host.relocate(entries[i]!.key, from, o.origins[2 * i + 1]!, entries[i]!.to)) relocated++;
        }
        if (i % compactionRelocateBatch === compactionRelocateBatch - 1) await new Promise((r) => setImmediate(r));
      }
    }
    if (host.generation !== generation) await host.whenCleared();
    const inputBytes = this.stats.inputBytesTotal;
    for (const input of [...inputs].sort((a, b) => a.id - b.id)) {
      if (host.generation === generation) await host.removeSegment(input);
      await unlinkIfExists(input.path);
      await unlinkIfExists(input.hintPath);
    }
    await fsyncDir(host.dir);
    await io.unlink(commitPath);

    const outputBytes = outputs.reduce((n, o) => n + o.seg.writtenBytes, 0);
    this.stats.compactions++;
    this.stats.bytesReclaimed += inputBytes - outputBytes;
    this.stats.tombstonesDropped += dropped;
    host.logger.info(
      { inputs: inputs.map((s) => s.id), outputs: outputs.map((o) => o.seg.id), inputBytes, outputBytes, relocated, tombstonesDropped: dropped, ms: Date.now() - started },
      `storage: compacted ${inputs.length} segments (${inputBytes} bytes) into ${outputs.length} (${outputBytes} bytes)`,
    );
  }

  /** Closes and deletes outputs (and their hints) that will not be used. */
  private async discard(outputs: Output[]): Promise<void> {
    for (const o of outputs) {
      await o.seg.close().catch(() => undefined);
      await unlinkIfExists(o.seg.path).catch(() => undefined);
      await unlinkIfExists(o.seg.hintPath).catch(() => undefined);
    }
  }

  // --- hint files ------------------------------------------------------------------

  /**
   * At a clean shutdown (after stop() and the writer's last sync): writes the
   * hints still queued, oldest first, while their segments total at most
   * `bytesMax`, so that the next start-up reads hint files instead of
   * scanning them. Segments left over are scanned (and hinted) next time.
   * Not throttled: the node no longer serves anything.
   */
  async writeQueuedHints(bytesMax: number): Promise<void> {
    let budget = bytesMax;
    while (this.hintQueue.length > 0) {
      const seg = this.hintQueue.shift()!;
      if (seg.fd === null || seg.writtenBytes !== seg.endOffset) continue;
      budget -= seg.writtenBytes;
      if (budget < 0) break;
      await this.writeHint(seg);
    }
  }

  /** Writes the hint of a segment now (close() does this for the last active segment). */
  async writeHint(seg: Segment): Promise<void> {
    if (!this.compactable(seg) || !this.host.segmentsInOrder().includes(seg)) return;
    const hint = new HintBuilder(seg.id);
    this.startPacing();
    const generation = this.host.generation;
    // Streamed to `N.hint.tmp` a chunk at a time (a hint of a 256 MiB segment
    // is tens of MiB), then fdatasynced and renamed; the header goes in last.
    const tmp = `${seg.hintPath}.tmp`;
    const fd = await io.open(tmp, 'w');
    let at = HINT_HEADER_BYTES;
    let done = false;
    try {
      await this.readRecords(seg, (rec, offset, raw) => {
        hint.add({ type: rec.type, flags: rec.flags, key: rec.key, offset, recordLength: raw.length, expiresAtMs: rec.expiresAtMs });
      }, async (n) => {
        if (this.host.generation !== generation || seg.fd === null) throw new Abandoned('segment gone');
        const entries = hint.takeEntries();
        await writeFully(fd, entries, 0, entries.length, at);
        at += entries.length;
        await this.pace(n);
      });
      if (this.host.generation !== generation || seg.fd === null) throw new Abandoned('segment gone');
      const { header, rest } = hint.finishStreamed(seg.writtenBytes);
      await writeFully(fd, rest, 0, rest.length, at);
      await writeFully(fd, header, 0, header.length, 0);
      await io.fdatasync(fd);
      done = true;
    } catch (err) {
      if (err instanceof Abandoned) return;
      if ((err as { code?: string }).code === 'ECORRUPT') {
        // No hint: start-up scans this segment and logs the damage with its offset.
        this.damaged.add(seg.id);
        this.host.logger.warn({ err, file: seg.path }, `storage: no hint file for ${seg.path}: ${(err as Error).message}`);
        return;
      }
      throw err;
    } finally {
      await io.close(fd);
      if (!done) await unlinkIfExists(tmp);
    }
    await io.rename(tmp, seg.hintPath);
    this.stats.hintsWritten++;
  }

  // --- reading and pacing ----------------------------------------------------------

  /**
   * Reads every record of a sealed segment in order, verifying checksums, and
   * calls `each` with it (`raw` is the record's bytes; both are views valid
   * only during the call). `between` runs after each chunk. Damage rejects
   * with code ECORRUPT: compaction never copies bytes it could not verify.
   */
  private async readRecords(
    seg: Segment,
    each: (rec: DecodedRecord, offset: number, raw: Buffer) => void,
    between: (bytes: number) => Promise<void>,
  ): Promise<void> {
    const end = seg.writtenBytes;
    let buf = Buffer.allocUnsafe(compactionChunkBytes);
    let pos = SEGMENT_HEADER_BYTES;
    while (pos < end) {
      const want = Math.min(buf.length, end - pos);
      if (seg.fd === null) throw new Abandoned('segment closed');
      const got = await readFully(seg.fd, buf, 0, want, pos);
      let at = 0;
      while (at < got) {
        const r = decodeRecord(buf, at, got, this.host.limits);
        if (r.kind === 'ok') {
          this.stats.inputBytesDone += r.length;
          each(r.record, pos + at, buf.subarray(at, at + r.length));
          at += r.length;
          continue;
        }
        if (r.kind === 'incomplete' && pos + at + r.needBytes <= end) {
          if (at === 0) buf = Buffer.allocUnsafe(r.needBytes); // one record larger than the chunk
          break;
        }
        const reason = r.kind === 'corrupt' ? r.reason : 'segment ends inside a record';
        throw Object.assign(new Error(`${seg.path} offset ${pos + at}: ${reason}`), { code: 'ECORRUPT', segmentId: seg.id });
      }
      if (at === 0 && got === want && buf.length > want) continue; // re-read into the grown buffer
      pos += at;
      await between(at);
      if (buf.length > compactionChunkBytes) buf = Buffer.allocUnsafe(compactionChunkBytes);
    }
  }

  private startPacing(): void {
    this.paceStartMs = Date.now();
    this.paceBytes = 0;
  }

  /** Sleeps as long as needed to keep to the rate, and always yields a turn of the event loop. */
  private async pace(bytes: number): Promise<void> {
    this.paceBytes += bytes;
    // At shutdown nothing else needs the disk: hints are written as fast as it goes.
    const rate = this.stopped ? 0 : this.opts.rateBytesPerSec;
    const aheadMs = rate > 0 ? (this.paceBytes / rate) * 1000 - (Date.now() - this.paceStartMs) : 0;
    if (aheadMs >= 1) await new Promise((r) => setTimeout(r, aheadMs));
    else await new Promise((r) => setImmediate(r));
  }
}

async function unlinkIfExists(path: string): Promise<void> {
  try {
    await io.unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
