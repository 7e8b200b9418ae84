// One segment file: its name, its file descriptor and the two lengths that
// matter. A segment is append-only while it is the active one and immutable
// once sealed. Its fd stays open for reads for as long as the segment lives;
// close() waits for reads in flight so a reused fd number can never be read
// by mistake.

import assert from 'node:assert/strict';
import * as path from 'node:path';
import { io, readFully } from './io.js';

const fileNamePattern = /^(\d{12})\.seg$/;
const compactingNamePattern = /^(\d{12})\.compacting$/;
const hintNamePattern = /^(\d{12})\.hint$/;
const commitNamePattern = /^(\d{12})\.commit$/;

/** What a file in the data directory is, by its name (docs/storage.md lists them). */
export type DataFile =
  | { kind: 'segment' | 'compacting' | 'hint' | 'commit'; id: number }
  | { kind: 'temporary' }
  | { kind: 'other' };

export function classifyFileName(name: string): DataFile {
  for (const [kind, re] of [
    ['segment', fileNamePattern],
    ['compacting', compactingNamePattern],
    ['hint', hintNamePattern],
    ['commit', commitNamePattern],
  ] as const) {
    const m = re.exec(name);
    if (m) return { kind, id: Number(m[1]) };
  }
  return name.endsWith('.tmp') ? { kind: 'temporary' } : { kind: 'other' };
}

export function dataFileName(kind: 'segment' | 'compacting' | 'hint' | 'commit', id: number): string {
  const ext = kind === 'segment' ? 'seg' : kind;
  return `${id.toString().padStart(12, '0')}.${ext}`;
}

export class Segment {
  /** The file descriptor, or null before the file is created / after close. */
  fd: number | null = null;
  /** Bytes known to be in the file (handed to the OS by a completed write). */
  writtenBytes = 0;
  /** Bytes allotted to records so far: writtenBytes plus what still waits in memory. */
  endOffset = 0;
  /** Records go here only while this is the active segment. */
  sealed = false;
  /** Bytes of tombstones a compaction had to keep in this segment (not reclaimable again until older segments go). */
  tombstoneBytesKept = 0;

  private readsInFlight = 0;
  private drained: (() => void) | null = null;

  constructor(
    readonly id: number,
    /** Changes once: a compaction's output is renamed from .compacting to .seg at its commit. */
    public path: string,
    /** This segment starts a generation: lower ids are obsolete (see clear()). */
    readonly startsGeneration: boolean,
    /** Replay position: segments replay by (orderKey, id); see protocol/record.ts. */
    readonly orderKey: number = id,
    /** Written by a compaction (informational; the commit file is what makes it valid). */
    readonly compactionOutput = false,
  ) {}

  static fileName(id: number): string {
    return dataFileName('segment', id);
  }

  /** Orders segments as the log replays them. */
  static compare(a: { orderKey: number; id: number }, b: { orderKey: number; id: number }): number {
    return a.orderKey - b.orderKey || a.id - b.id;
  }

  get hintPath(): string {
    return path.join(path.dirname(this.path), dataFileName('hint', this.id));
  }

  /** The segment id a file name stands for, or undefined for other files. */
  static parseFileName(name: string): number | undefined {
    const m = fileNamePattern.exec(name);
    return m ? Number(m[1]) : undefined;
  }

  static inDir(dir: string, id: number, startsGeneration: boolean, orderKey = id): Segment {
    return new Segment(id, path.join(dir, Segment.fileName(id)), startsGeneration, orderKey);
  }

  get fileName(): string {
    return path.basename(this.path);
  }

  /** Creates the file of a new segment. Fails if it exists: ids are never reused. */
  async create(): Promise<void> {
    assert.equal(this.fd, null, `segment ${this.fileName} already open`);
    this.fd = await io.open(this.path, 'wx+');
  }

  /** Takes over the read-only fd of a recovered segment; it is sealed from now on. */
  adoptSealed(fd: number, sizeBytes: number): void {
    assert.equal(this.fd, null);
    this.fd = fd;
    this.writtenBytes = this.endOffset = sizeBytes;
    this.sealed = true;
  }

  /** Reads `length` bytes at `offset`; the result is shorter only if the file is. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (this.fd === null) assert.fail(`read from closed segment ${this.fileName}`);
    this.readsInFlight++;
    try {
      const buf = Buffer.allocUnsafe(length);
      const got = await readFully(this.fd!, buf, 0, length, offset);
      return got === length ? buf : buf.subarray(0, got);
    } finally {
      if (--this.readsInFlight === 0 && this.drained) this.drained();
    }
  }

  /** Closes the fd once no read uses it any more. */
  async close(): Promise<void> {
    if (this.fd === null) return;
    if (this.readsInFlight > 0) {
      await new Promise<void>((resolve) => (this.drained = resolve));
      this.drained = null;
    }
    const fd = this.fd;
    this.fd = null;
    await io.close(fd);
  }
}
