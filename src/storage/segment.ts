// One segment file: its name, its file descriptor and the two lengths that
// matter. A segment is append-only while it is the active one and immutable
// once sealed. Its fd stays open for reads for as long as the segment lives;
// close() waits for reads in flight so a reused fd number can never be read
// by mistake.

import assert from 'node:assert/strict';
import * as path from 'node:path';
import { io, readFully } from './io.js';

const fileNamePattern = /^(\d{12})\.seg$/;

export class Segment {
  /** The file descriptor, or null before the file is created / after close. */
  fd: number | null = null;
  /** Bytes known to be in the file (handed to the OS by a completed write). */
  writtenBytes = 0;
  /** Bytes allotted to records so far: writtenBytes plus what still waits in memory. */
  endOffset = 0;
  /** Records go here only while this is the active segment. */
  sealed = false;

  private readsInFlight = 0;
  private drained: (() => void) | null = null;

  constructor(
    readonly id: number,
    readonly path: string,
    /** This segment starts a generation: lower ids are obsolete (see clear()). */
    readonly startsGeneration: boolean,
  ) {}

  static fileName(id: number): string {
    return `${id.toString().padStart(12, '0')}.seg`;
  }

  /** The segment id a file name stands for, or undefined for other files. */
  static parseFileName(name: string): number | undefined {
    const m = fileNamePattern.exec(name);
    return m ? Number(m[1]) : undefined;
  }

  static inDir(dir: string, id: number, startsGeneration: boolean): Segment {
    return new Segment(id, path.join(dir, Segment.fileName(id)), startsGeneration);
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
