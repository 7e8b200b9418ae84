// Shared helpers for the storage tests: temporary data directories, a pino
// logger whose lines the test can read, store options with small defaults,
// and a reader that lists the records of a segment file with the real codec.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { decodeRecord, SEGMENT_HEADER_BYTES } from '../../protocol/record.js';
import type { DecodedRecord } from '../../protocol/record.js';
import { keyBytesMax, valueBytesMax } from '../../src/constants.js';
import { seededRandom } from '../../src/cluster/ports.js';
import { SegmentStore } from '../../src/storage/store.js';
import type { Entry, StoreOptions } from '../../src/storage/store.js';

export const limits = { keyBytesMax, valueBytesMax };

export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function tempDir(t: Teardown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-kv-storage-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface CapturedLog {
  logger: Logger;
  lines: Array<Record<string, unknown> & { msg: string; level: number }>;
  /** Messages at warn level or above. */
  problems(): string[];
}

export function captureLog(): CapturedLog {
  const lines: CapturedLog['lines'] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines, problems: () => lines.filter((l) => l.level >= 40).map((l) => l.msg) };
}

export function options(dir: string, over: Partial<StoreOptions> = {}): StoreOptions {
  return {
    dir,
    fsync: 'no',
    segmentBytesMax: 1024 * 1024,
    cacheBytes: 1024 * 1024,
    compressBytesMin: 1024,
    compressLevel: 3,
    logger: captureLog().logger,
    // Hint files and compaction change what is on disk behind a test's back; tests of them turn this on.
    maintenance: false,
    ...over,
  };
}

export function open(dir: string, over: Partial<StoreOptions> = {}): Promise<SegmentStore> {
  return SegmentStore.open(options(dir, over));
}

/** whenDurable as a promise. */
export function durable(store: SegmentStore): Promise<void> {
  return new Promise((resolve, reject) => store.whenDurable((err) => (err ? reject(err) : resolve())));
}

/** The value of a key as a string, awaiting a cold read if need be. */
export async function read(store: SegmentStore, key: string): Promise<string | undefined> {
  const e: Entry | undefined = await store.get(Buffer.from(key));
  return e?.value.toString();
}

export function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort()
    .map((n) => path.join(dir, n));
}

export interface FileRecord {
  offset: number;
  length: number;
  record: DecodedRecord;
}

/** Every record of an intact segment file, decoded with the real codec. */
export function recordsOf(file: string): FileRecord[] {
  const buf = fs.readFileSync(file);
  const out: FileRecord[] = [];
  let pos = SEGMENT_HEADER_BYTES;
  while (pos < buf.length) {
    const r = decodeRecord(buf, pos, buf.length, limits);
    if (r.kind !== 'ok') throw new Error(`${file} at ${pos}: ${r.kind}`);
    out.push({ offset: pos, length: r.length, record: r.record });
    pos += r.length;
  }
  return out;
}

export function flipBit(file: string, offset: number, bit = 0): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0]! ^= 1 << bit;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** A deterministic generator, so failures reproduce (the cluster's seeded PRNG). */
export function rng(seed: number): () => number {
  const r = seededRandom(seed);
  return () => r.next();
}
