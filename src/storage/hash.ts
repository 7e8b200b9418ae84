// The key hash of the index: HalfSipHash-1-3 with a 64-bit output (the hash
// Linux uses for its hash tables on 32-bit words), keyed by a secret seed
// that is generated once per data directory and kept in `<dir>/hash-seed`.
//
// Why keyed: the index is an open-addressing table; a client that could
// compute our hash could send keys that all land in one probe run and make
// every operation O(n). With a secret 64-bit seed it cannot.
// Why HalfSipHash: it works on 32-bit words, which JavaScript does natively
// (`| 0`, `Math.imul` free), so a 16-byte key costs about ten rounds of adds,
// rotates and xors and no allocation.
// Why the seed is kept: so that a directory hashes the same way after a
// restart. Nothing on disk holds these hashes today (hint files keep keys);
// a format that persists them must record the seed it used.

import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { hashSeedFileName } from '../constants.js';
import { io, writeFileAtomic } from './io.js';

/** The two 32-bit halves of a seed (HalfSipHash's 64-bit key). */
export interface HashSeed {
  readonly k0: number;
  readonly k1: number;
}

/** A 64-bit key hash as two unsigned 32-bit halves. */
export interface KeyHash {
  h1: number;
  h2: number;
}

/**
 * HalfSipHash-c-d of buf (64-bit output when `wide`, else 32-bit in h1; h2 = 0).
 * Exported with its round counts so tests can check it against the reference
 * vectors of HalfSipHash-2-4; the index uses seededHasher() (1-3, 64 bits).
 */
export function halfSipHash(buf: Uint8Array, k0: number, k1: number, cRounds: number, dRounds: number, wide: boolean, out: KeyHash): void {
  const len = buf.length;
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = (0x6c796765 ^ k0) | 0;
  let v3 = (0x74656462 ^ k1) | 0;
  if (wide) v1 ^= 0xee;
  const end = len - (len & 3);
  let i = 0;
  let m = 0;
  for (;;) {
    if (i < end) {
      m = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
      i += 4;
    } else {
      // The last word: the remaining bytes and the length in the top byte.
      m = (len & 0xff) << 24;
      const left = len & 3;
      if (left === 3) m |= buf[i + 2]! << 16;
      if (left >= 2) m |= buf[i + 1]! << 8;
      if (left >= 1) m |= buf[i]!;
      i = -1;
    }
    v3 ^= m;
    for (let r = 0; r < cRounds; r++) {
      v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16);
      v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2;
      v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0;
      v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16);
    }
    v0 ^= m;
    if (i < 0) break;
  }
  v2 ^= wide ? 0xee : 0xff;
  for (let r = 0; r < dRounds; r++) {
    v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2;
    v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0;
    v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16);
  }
  out.h1 = (v1 ^ v3) >>> 0;
  if (!wide) {
    out.h2 = 0;
    return;
  }
  v1 ^= 0xdd;
  for (let r = 0; r < dRounds; r++) {
    v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2;
    v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0;
    v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16);
  }
  out.h2 = (v1 ^ v3) >>> 0;
}

/** Something that hashes keys for the index; tests inject degenerate ones to force collisions. */
export type KeyHasher = (key: Uint8Array, out: KeyHash) => void;

export function seededHasher(seed: HashSeed): KeyHasher {
  const { k0, k1 } = seed;
  return (key, out) => halfSipHash(key, k0, k1, 1, 3, true, out);
}

const seedPattern = /^([0-9a-f]{16})\n?$/;

export function seedFromHex(hex: string): HashSeed {
  const b = Buffer.from(hex, 'hex');
  return { k0: b.readUInt32LE(0), k1: b.readUInt32LE(4) };
}

/**
 * The seed of the data directory `dir`: read from `hash-seed`, or generated
 * and written atomically (temp file, fsync, rename, fsync of the directory)
 * the first time. A damaged file is logged and replaced: the index is rebuilt
 * at every open and nothing on disk holds hashes, so a new seed costs nothing.
 */
export async function loadHashSeed(dir: string, logger: Logger): Promise<HashSeed> {
  const file = path.join(dir, hashSeedFileName);
  let text: string | undefined;
  try {
    text = (await io.readFile(file)).toString('latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const m = seedPattern.exec(text);
    if (m) return seedFromHex(m[1]!);
    logger.error({ file }, `storage: ${file} is damaged (not 16 hex digits); writing a new hash seed`);
  }
  const hex = randomBytes(8).toString('hex');
  await writeFileAtomic(dir, file, Buffer.from(`${hex}\n`, 'latin1'), true);
  return seedFromHex(hex);
}
