// The public types of the segment store (re-exported by store.ts, which is
// what the server imports).

import type { Logger } from 'pino';
import type { CompactionStats } from './compactor.js';
import type { KeyHasher } from './hash.js';

/**
 * When a write counts as durable (whenDurable):
 * - 'always': covered by an fdatasync (survives power loss);
 * - 'everysec': handed to the OS with write(), fdatasynced within about a second;
 * - 'no': handed to the OS with write(); the OS flushes when it likes.
 * 'everysec' and 'no' survive a crash of the process, not of the machine.
 */
export type FsyncPolicy = 'always' | 'everysec' | 'no';

export interface Entry {
  value: Buffer;
  /** Absolute unix ms; 0 = no expiry. */
  expiresAtMs: number;
}

export interface StoreOptions {
  dir: string;
  fsync: FsyncPolicy;
  /** Rotate the active segment when a record would take it past this size. */
  segmentBytesMax: number;
  /** Budget of the hot value cache; 0 turns it off. */
  cacheBytes: number;
  /** Values longer than this are zstd-compressed when that makes them smaller. */
  compressBytesMin: number;
  compressLevel: number;
  logger: Logger;
  /**
   * Hint files and compaction (default on). Off, the store writes segments
   * only: tests of recovery turn it off to see files exactly as written.
   */
  maintenance?: boolean;
  /** Sealed segments with at least this share of dead bytes are compacted (default 0.3). */
  compactionMinDeadRatio?: number;
  /** Background compaction on (default); off leaves it to compactNow() (BGREWRITEAOF). Hint files are written either way. */
  compaction?: boolean;
  /** Compaction I/O budget in MiB/s, read plus written; 0 = unthrottled (default 64). */
  compactionRateMB?: number;
  /** How long tombstones are kept before a compaction may drop them (default 10 days). */
  tombstoneGraceSeconds?: number;
  /** How often the compactor looks for work (default 1 s). */
  compactionCheckIntervalMs?: number;
  /** Wall clock in ms for expiry checks and record timestamps; default Date.now. */
  now?: () => number;
  /** Called while open() reads the segments: bytes read so far, bytes in all. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Tests only: replaces the index's seeded hash (e.g. to force fingerprint collisions). */
  indexHasher?: KeyHasher;
}

/** What recovery found; counted once per open(). */
export interface RecoveryStats {
  segmentsScanned: number;
  recordsRead: number;
  /** Records already expired when read: their keys were dropped. */
  expiredDropped: number;
  /** Torn records cut off the end of the last segment. */
  tornTailsTruncated: number;
  /** Bytes removed by those truncations (torn records and garbage tails). */
  bytesTruncated: number;
  /** Damaged regions skipped (each logged with file and offset). */
  corruptRecordsSkipped: number;
  corruptBytesSkipped: number;
  /** Segments ignored because their header is damaged (left on disk). */
  segmentsSkipped: number;
  /** Segments deleted because a later generation (FLUSHALL) made them obsolete. */
  obsoleteSegmentsDeleted: number;
  /** Segments whose index entries came from their hint file instead of a scan. */
  hintsUsed: number;
  /** Hint files found damaged or stale (their segments were scanned). */
  hintsRejected: number;
  /** Compactions a crash interrupted after their commit, finished at open. */
  compactionsFinished: number;
  /** Compaction outputs a crash left before their commit, deleted at open. */
  compactionsUndone: number;
}

export interface StoreStats {
  keys: number;
  /** RAM of the compact index (typed arrays: entries, hash table, expiry map). */
  indexBytes: number;
  /** Keys with an expiry (each costs an expiry map slot on top of its entry). */
  keysWithExpiry: number;
  /** Key verifications that needed a pread (a fingerprint match on an uncached, written record). */
  keyVerifyReads: number;
  /** Fingerprint matches that turned out to be another key. */
  falseMatches: number;
  segments: number;
  /** Bytes in segment files (written, not counting what is still in memory). */
  diskBytes: number;
  /** Bytes of the records the index points at: what compaction would keep. */
  liveBytes: number;
  cacheBytes: number;
  cacheHits: number;
  cacheMisses: number;
  /** Bytes of records not yet handed to the OS. */
  pendingBytes: number;
  /** Wall-clock ms when the last fsync round completed (0 = never). */
  lastFsyncMs: number;
  lastFsyncDurationMs: number;
  /** fdatasync/fsync calls made (files and directory). */
  fsyncs: number;
  /** write calls made (one per segment per flush). */
  writes: number;
  writeErrors: number;
  /** True while writes fail and the store refuses new ones. */
  writeFailed: boolean;
  /** Disk reads that failed their checksum (StorageCorruptError). */
  corruptReads: number;
  recovery: RecoveryStats;
  compaction: CompactionStats;
}
