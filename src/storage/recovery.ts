// Recovery: rebuild the key directory from the segment files at open().
// The rules (docs/storage.md has them in prose):
//
// 1. Segments are read in id order and every record's checksums are verified;
//    later records win, tombstones remove, records already expired remove.
// 2. A segment whose header is damaged is logged and skipped, never deleted.
// 3. If a valid header carries the generation flag (FLUSHALL), every segment
//    with a lower id is obsolete and is deleted: that finishes a clear() that
//    was interrupted after its new generation became durable.
// 4. The file ending inside a record (a torn write) in the LAST segment: the
//    file is truncated to the record's start. In a sealed segment it is only
//    logged; sealed files are never modified.
// 5. A corrupt record is logged with file and offset and skipped: recovery
//    resynchronises at the next offset where a record verifies. If nothing
//    valid follows in the last segment, the damaged tail is what an
//    interrupted write leaves behind (e.g. zero-filled pages) and is cut off.
//
// Never throws on damaged bytes; only I/O errors (EIO on read, EACCES) fail open().

import { basename } from 'node:path';
import type { Logger } from 'pino';
import {
  decodeRecord,
  decodeSegmentHeader,
  RECORD_HEADER_BYTES,
  RecordType,
  SEGMENT_HEADER_BYTES,
  SegmentFlag,
} from '../../protocol/record.js';
import type { DecodedRecord, DecodeResult, RecordLimits } from '../../protocol/record.js';
import { recoveryReadBytes } from '../constants.js';
import { fsyncDir, io, readFully, readFullySync } from './io.js';
import type { CompactIndex, KeyVerifier } from './index.js';
import { Segment } from './segment.js';
import type { RecoveryStats } from './types.js';

export interface RecoveryOptions {
  dir: string;
  index: CompactIndex;
  limits: RecordLimits;
  nowMs: number;
  logger: Logger;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

export interface RecoveryResult {
  /** Segments with a valid header, opened for reading and sealed, in id order. */
  segments: Segment[];
  /** Files kept but ignored (damaged header); clear() deletes them. */
  damagedFiles: string[];
  /** Larger than every segment id seen on disk, damaged files included. */
  nextSegmentId: number;
  stats: RecoveryStats;
}

interface FoundFile {
  id: number;
  path: string;
  fd: number;
  size: number;
  generation: boolean;
}

export function emptyRecoveryStats(): RecoveryStats {
  return {
    segmentsScanned: 0,
    recordsRead: 0,
    expiredDropped: 0,
    tornTailsTruncated: 0,
    bytesTruncated: 0,
    corruptRecordsSkipped: 0,
    corruptBytesSkipped: 0,
    segmentsSkipped: 0,
    obsoleteSegmentsDeleted: 0,
  };
}

export async function recover(opts: RecoveryOptions): Promise<RecoveryResult> {
  const { dir, logger } = opts;
  const stats = emptyRecoveryStats();
  const ids = (await io.readdir(dir))
    .map((name) => Segment.parseFileName(name))
    .filter((id): id is number => id !== undefined)
    .sort((a, b) => a - b);
  const nextSegmentId = ids.length > 0 ? ids[ids.length - 1]! + 1 : 1;

  // Headers first: the generation flag decides which files matter at all.
  const found: FoundFile[] = [];
  let damagedFiles: string[] = [];
  try {
    for (const id of ids) {
      const file = await openSegmentFile(dir, id, logger);
      if (typeof file === 'string') {
        damagedFiles.push(file);
        stats.segmentsSkipped++;
      } else {
        found.push(file);
      }
    }
  } catch (err) {
    await Promise.all(found.map((f) => io.close(f.fd)));
    throw err;
  }

  const generation = found.filter((f) => f.generation).at(-1);
  let live = found;
  if (generation) {
    const obsolete = found.filter((f) => f.id < generation.id);
    const obsoleteDamaged = damagedFiles.filter((p) => Segment.parseFileName(basename(p))! < generation.id);
    live = found.filter((f) => f.id >= generation.id);
    damagedFiles = damagedFiles.filter((p) => !obsoleteDamaged.includes(p));
    for (const f of obsolete) await io.close(f.fd);
    for (const p of [...obsolete.map((f) => f.path), ...obsoleteDamaged]) {
      logger.info({ file: p }, `storage: deleting ${p}: made obsolete by generation ${generation.id} (FLUSHALL)`);
      await io.unlink(p);
      stats.obsoleteSegmentsDeleted++;
    }
    if (obsolete.length + obsoleteDamaged.length > 0) await fsyncDir(dir);
  }

  const bytesTotal = live.reduce((n, f) => n + f.size, 0);
  let bytesBefore = 0;
  const segments: Segment[] = [];
  // The index keeps no keys: an overwrite found during recovery is confirmed
  // by reading the key of the record the entry points at (on a segment read
  // moments ago, so from the page cache).
  const fds = new Map(live.map((f) => [f.id, f.fd]));
  const keyBuf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + opts.limits.keyBytesMax);
  const verify: KeyVerifier = (id, key) => {
    const index = opts.index;
    const n = RECORD_HEADER_BYTES + key.length;
    if (index.recordLengthOf(id) < n) return false;
    const fd = fds.get(index.segmentIdOf(id));
    if (fd === undefined) throw new Error(`recovery: index entry in unknown segment ${index.segmentIdOf(id)}`);
    if (readFullySync(fd, keyBuf, 0, n, index.offsetOf(id)) !== n) return false;
    return keyBuf.readUInt32LE(12) === key.length && keyBuf.compare(key, 0, key.length, RECORD_HEADER_BYTES, n) === 0;
  };
  opts.index.verify = verify;
  try {
    for (let i = 0; i < live.length; i++) {
      const f = live[i]!;
      const scanner = new SegmentScanner(f, i === live.length - 1, opts, stats, (done) =>
        opts.onProgress?.(bytesBefore + done, bytesTotal),
      );
      const size = await scanner.scan();
      stats.segmentsScanned++;
      bytesBefore += f.size;
      opts.onProgress?.(bytesBefore, bytesTotal);
      const seg = Segment.inDir(dir, f.id, f.generation);
      seg.adoptSealed(f.fd, size);
      segments.push(seg);
    }
  } catch (err) {
    for (const f of live) await io.close(f.fd).catch(() => undefined);
    throw err;
  }
  return { segments, damagedFiles, nextSegmentId, stats };
}

/** Opens a segment and verifies its header; returns the path instead if the header is damaged. */
async function openSegmentFile(dir: string, id: number, logger: Logger): Promise<FoundFile | string> {
  const path = Segment.inDir(dir, id, false).path;
  const fd = await io.open(path, 'r');
  try {
    const size = await io.fstatSize(fd);
    const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const got = await readFully(fd, buf, 0, SEGMENT_HEADER_BYTES, 0);
    const h = decodeSegmentHeader(buf.subarray(0, got));
    let problem: string | undefined;
    if (h.kind === 'incomplete') problem = `file of ${size} bytes is shorter than a segment header`;
    else if (h.kind === 'corrupt') problem = h.reason;
    else if (h.header.segmentId !== id) problem = `header names segment ${h.header.segmentId}`;
    if (problem !== undefined || h.kind !== 'ok') {
      logger.error({ file: path, offset: 0, reason: problem }, `storage: skipping ${path}: damaged segment header at offset 0 (${problem}); file left in place`);
      await io.close(fd);
      return path;
    }
    return { id, path, fd, size, generation: (h.header.flags & SegmentFlag.GenerationStart) !== 0 };
  } catch (err) {
    await io.close(fd).catch(() => undefined);
    throw err;
  }
}

/** Reads one segment front to back through a window buffer and feeds the index. */
class SegmentScanner {
  private buf = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private bufStart = 0;
  private bufLen = 0;
  private readonly path: string;

  constructor(
    private readonly file: FoundFile,
    private readonly isLast: boolean,
    private readonly opts: RecoveryOptions,
    private readonly stats: RecoveryStats,
    private readonly progress: (bytesDone: number) => void,
  ) {
    this.path = file.path;
  }

  /** Returns the segment's size after recovery (smaller if a tail was cut off). */
  async scan(): Promise<number> {
    const { size } = this.file;
    const log = this.opts.logger;
    let pos = SEGMENT_HEADER_BYTES;
    while (pos < size) {
      const r = await this.decodeAt(pos);
      if (r.kind === 'ok') {
        this.apply(r.record, pos, r.length);
        pos += r.length;
        continue;
      }
      if (r.kind === 'incomplete') {
        // The file ends inside this record: a write that never finished.
        if (this.isLast) {
          log.warn({ file: this.path, offset: pos, bytes: size - pos }, `storage: torn record at the end of ${this.path} at offset ${pos}; truncating ${size - pos} bytes`);
          this.stats.tornTailsTruncated++;
          return this.truncate(pos);
        }
        log.error({ file: this.path, offset: pos, bytes: size - pos }, `storage: torn record at the end of sealed segment ${this.path} at offset ${pos}; ignored (${size - pos} bytes)`);
        this.stats.corruptRecordsSkipped++;
        this.stats.corruptBytesSkipped += size - pos;
        return size;
      }
      const next = await this.resync(pos, r.length);
      if (next < 0 && this.isLast) {
        log.warn({ file: this.path, offset: pos, reason: r.reason, bytes: size - pos }, `storage: damaged tail in ${this.path} at offset ${pos} (${r.reason}), no valid record after it; truncating ${size - pos} bytes`);
        this.stats.tornTailsTruncated++;
        return this.truncate(pos);
      }
      const end = next < 0 ? size : next;
      log.error({ file: this.path, offset: pos, reason: r.reason, bytes: end - pos }, `storage: corrupt record in ${this.path} at offset ${pos} (${r.reason}); skipped ${end - pos} bytes`);
      this.stats.corruptRecordsSkipped++;
      this.stats.corruptBytesSkipped += end - pos;
      pos = end;
    }
    return size;
  }

  private apply(rec: DecodedRecord, offset: number, recordLength: number): void {
    this.stats.recordsRead++;
    const { index, nowMs } = this.opts;
    const key = rec.key;
    if (rec.type === RecordType.Tombstone) {
      index.delete(key);
    } else if (rec.expiresAtMs !== 0 && rec.expiresAtMs <= nowMs) {
      // Expired while the node was down; it still supersedes older versions of the key.
      index.delete(key);
      this.stats.expiredDropped++;
    } else {
      index.set(key, { segmentId: this.file.id, offset, recordLength, expiresAtMs: rec.expiresAtMs, flags: rec.flags });
    }
  }

  /** Offset of the next record that verifies after a corrupt one at `pos`, or -1. */
  private async resync(pos: number, claimedLength: number | undefined): Promise<number> {
    const { size } = this.file;
    // Only the body failed its checksum: the header's length is trustworthy, try there first.
    if (claimedLength !== undefined) {
      const next = pos + claimedLength;
      if (next < size && (await this.decodeAt(next)).kind === 'ok') return next;
    }
    for (let p = pos + 1; p + RECORD_HEADER_BYTES <= size; p++) {
      // Stay synchronous while the window covers the header: one await per byte would crawl.
      if (!this.covers(p, RECORD_HEADER_BYTES)) await this.fill(p, RECORD_HEADER_BYTES);
      const r = decodeRecord(this.buf, p - this.bufStart, this.bufLen, this.opts.limits);
      if (r.kind === 'ok') return p;
      if (r.kind === 'incomplete' && p + r.needBytes <= size && (await this.decodeAt(p)).kind === 'ok') return p;
    }
    return -1;
  }

  private async decodeAt(pos: number): Promise<DecodeResult> {
    if (!this.covers(pos, RECORD_HEADER_BYTES)) await this.fill(pos, RECORD_HEADER_BYTES);
    let r = decodeRecord(this.buf, pos - this.bufStart, this.bufLen, this.opts.limits);
    if (r.kind === 'incomplete' && pos + r.needBytes <= this.file.size) {
      // A record larger than what the window holds: read it whole.
      await this.fill(pos, r.needBytes);
      r = decodeRecord(this.buf, pos - this.bufStart, this.bufLen, this.opts.limits);
    }
    return r;
  }

  /** Whether the window holds [pos, pos+need), or everything up to end of file. */
  private covers(pos: number, need: number): boolean {
    const end = Math.min(pos + need, this.file.size);
    return pos >= this.bufStart && end <= this.bufStart + this.bufLen;
  }

  private async fill(pos: number, need: number): Promise<void> {
    const len = Math.min(Math.max(recoveryReadBytes, need), this.file.size - pos);
    // Reuse the window buffer; decoded records are only used before the next fill.
    if (this.buf.length < len || (this.buf.length > recoveryReadBytes && len <= recoveryReadBytes)) {
      this.buf = Buffer.allocUnsafe(Math.max(len, Math.min(recoveryReadBytes, this.file.size)));
    }
    this.bufStart = pos;
    this.bufLen = await readFully(this.file.fd, this.buf, 0, len, pos);
    this.progress(Math.min(pos + this.bufLen, this.file.size));
  }

  private async truncate(at: number): Promise<number> {
    const { size } = this.file;
    const fd = await io.open(this.path, 'r+');
    try {
      await io.ftruncate(fd, at);
      await io.fdatasync(fd);
    } finally {
      await io.close(fd);
    }
    this.stats.bytesTruncated += size - at;
    return at;
  }
}
