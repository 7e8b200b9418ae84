// The storage engine's only door to the file system: small promise wrappers
// over node:fs calls on raw file descriptors (cheaper than FileHandle on the
// hot read path). Everything goes through the mutable `io` object so that a
// test can inject faults (ENOSPC, EIO) by replacing one of its functions.

import * as fs from 'node:fs';

function done<T>(resolve: (v: T) => void, reject: (e: unknown) => void) {
  return (err: NodeJS.ErrnoException | null, value: T) => (err ? reject(err) : resolve(value));
}

function doneVoid(resolve: () => void, reject: (e: unknown) => void) {
  return (err: NodeJS.ErrnoException | null) => (err ? reject(err) : resolve());
}

export const io = {
  open(path: string, flags: string): Promise<number> {
    return new Promise((resolve, reject) => fs.open(path, flags, 0o644, done(resolve, reject)));
  },
  close(fd: number): Promise<void> {
    return new Promise((resolve, reject) => fs.close(fd, doneVoid(resolve, reject)));
  },
  /** One pread; may return fewer bytes than asked at end of file. */
  read(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => fs.read(fd, buf, offset, length, position, done(resolve, reject)));
  },
  /**
   * One pwrite; may write fewer bytes than asked. Synchronous, as Redis writes
   * its AOF: a batch of one event-loop turn lands in the page cache in a few
   * microseconds, far less than a round trip through libuv's thread pool,
   * and the replies it covers can leave in the same turn. (fdatasync, which
   * can take milliseconds, stays asynchronous.) A test may replace it with an
   * async function to inject faults; callers accept either.
   */
  write(fd: number, buf: Buffer, offset: number, length: number, position: number): number | Promise<number> {
    return fs.writeSync(fd, buf, offset, length, position);
  },
  /**
   * One synchronous pread: the index verifies a key on a fingerprint match
   * with it (a few dozen bytes, almost always from the page cache), where a
   * round trip through libuv's thread pool would cost far more.
   */
  readSync(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
    return fs.readSync(fd, buf, offset, length, position);
  },
  fdatasync(fd: number): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(fd, doneVoid(resolve, reject)));
  },
  fsync(fd: number): Promise<void> {
    return new Promise((resolve, reject) => fs.fsync(fd, doneVoid(resolve, reject)));
  },
  ftruncate(fd: number, length: number): Promise<void> {
    return new Promise((resolve, reject) => fs.ftruncate(fd, length, doneVoid(resolve, reject)));
  },
  fstatSize(fd: number): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st.size))),
    );
  },
  unlink(path: string): Promise<void> {
    return fs.promises.unlink(path);
  },
  readdir(path: string): Promise<string[]> {
    return fs.promises.readdir(path);
  },
  mkdir(path: string): Promise<void> {
    return fs.promises.mkdir(path, { recursive: true }).then(() => undefined);
  },
  rename(from: string, to: string): Promise<void> {
    return fs.promises.rename(from, to);
  },
  link(existing: string, created: string): Promise<void> {
    return fs.promises.link(existing, created);
  },
  readFile(path: string): Promise<Buffer> {
    return fs.promises.readFile(path);
  },
  writeFile(path: string, data: Buffer | string): Promise<void> {
    return fs.promises.writeFile(path, data);
  },
};

/** Reads exactly `length` bytes unless the file ends first; returns the bytes read. */
export async function readFully(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await io.read(fd, buf, offset + got, length - got, position + got);
    if (n === 0) break; // end of file
    got += n;
  }
  return got;
}

/** readFully, synchronously (io.readSync). */
export function readFullySync(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
  let got = 0;
  while (got < length) {
    const n = io.readSync(fd, buf, offset + got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Writes all `length` bytes, looping over short writes. Positional, so a retry may rewrite safely. */
export async function writeFully(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  let put = 0;
  while (put < length) {
    const w = io.write(fd, buf, offset + put, length - put, position + put);
    const n = typeof w === 'number' ? w : await w;
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    put += n;
  }
}

/** fsync of a directory: makes file creations, renames and deletions in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await io.open(dir, 'r');
  try {
    await io.fsync(fd);
  } finally {
    await io.close(fd);
  }
}

/**
 * Writes a whole small file so that it appears complete or not at all: to
 * `path.tmp`, fdatasync, rename over `path`, and (if `syncDir`) fsync of the
 * directory so the rename itself survives a power cut.
 */
export async function writeFileAtomic(dir: string, path: string, data: Buffer, syncDir: boolean): Promise<void> {
  const tmp = `${path}.tmp`;
  const fd = await io.open(tmp, 'w');
  try {
    await writeFully(fd, data, 0, data.length, 0);
    await io.fdatasync(fd);
  } finally {
    await io.close(fd);
  }
  await io.rename(tmp, path);
  if (syncDir) await fsyncDir(dir);
}
