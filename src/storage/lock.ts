// The data directory lock: one store per directory, across processes and
// within one. Node has no flock(), so the lock is a file holding the owner's
// pid, created atomically with link() (which fails if the file exists and,
// unlike open('wx') followed by a write, never shows a half-written pid).
//
// A lock left behind by a crashed node is stale: its pid is gone, or it is our
// own pid (a restarted container reuses pids) while this process holds no such
// lock. A stale lock is removed and taken over, with a warning.
//
// Known gap: two processes taking over the same stale lock at the same instant
// can both succeed (each removes the file, then one of them removes the
// other's fresh one). Starting two nodes on one directory at the same moment
// after a crash is the only way to hit it.

import * as path from 'node:path';
import type { Logger } from 'pino';
import { lockFileName } from '../constants.js';
import { StorageLockedError } from './errors.js';
import { io } from './io.js';

/** Directories locked by this process (a second store in-process must fail too). */
const heldHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

export class DirLock {
  private released = false;

  private constructor(
    private readonly dir: string,
    private readonly file: string,
  ) {}

  static async acquire(dir: string, logger: Logger): Promise<DirLock> {
    const absDir = path.resolve(dir);
    if (heldHere.has(absDir)) throw new StorageLockedError(absDir, `another store in this process (pid ${process.pid})`);
    const file = path.join(absDir, lockFileName);
    const tmp = `${file}.${process.pid}.tmp`;
    heldHere.add(absDir); // claim now: open() is async and could race with itself
    try {
      await io.writeFile(tmp, `${process.pid}\n`);
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            await io.link(tmp, file);
            return new DirLock(absDir, file);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
          }
          const pid = await DirLock.ownerOf(file);
          if (pid !== undefined && pid !== process.pid && isAlive(pid)) {
            throw new StorageLockedError(absDir, `process ${pid} (lock file ${file})`);
          }
          logger.warn({ file, pid }, `storage: removing stale lock ${file} left by pid ${pid ?? 'unknown'}`);
          await io.unlink(file).catch(() => undefined);
        }
      } finally {
        await io.unlink(tmp).catch(() => undefined);
      }
    } catch (err) {
      heldHere.delete(absDir);
      if (err instanceof StorageLockedError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new StorageLockedError(absDir, `another process that just took the lock ${file}`);
      }
      throw err;
    }
  }

  private static async ownerOf(file: string): Promise<number | undefined> {
    try {
      const pid = Number.parseInt((await io.readFile(file)).toString('latin1'), 10);
      return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined; // vanished meanwhile: the retry will find out
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    try {
      await io.unlink(this.file);
    } finally {
      heldHere.delete(this.dir);
    }
  }
}
