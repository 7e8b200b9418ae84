// A hybrid logical clock (Kulkarni et al., 2014): timestamps that stay close
// to wall-clock milliseconds, yet strictly increase on this node and move past
// every timestamp the node has observed from others. They order concurrent
// siblings for a plain GET, so "later" means later as far as any node could
// tell, not "whichever node's clock runs fast".
//
// A timestamp is one number: ms * 2^hlcLogicalBits + logical. With 10 bits
// the largest wall time that fits in 2^53 is the year 2248. When more than
// 1024 timestamps are taken in one millisecond the logical part carries into
// the millisecond part: the clock runs a little ahead, and still increases.

import assert from 'node:assert/strict';
import { hlcLogicalBits, hlcMaxDriftMs } from '../constants.js';
import type { Clock } from './ports.js';

const logicalSpan = 2 ** hlcLogicalBits;

/** The wall-clock millisecond a timestamp was taken at (as far as the HLC knows). */
export function hlcWallMs(ts: number): number {
  return Math.floor(ts / logicalSpan);
}

/** The logical counter of a timestamp. */
export function hlcLogical(ts: number): number {
  return ts % logicalSpan;
}

/** The first timestamp of a wall-clock millisecond. */
export function hlcFromWallMs(ms: number): number {
  return Math.floor(ms) * logicalSpan;
}

export class HybridClock {
  #last = 0;

  constructor(
    private readonly clock: Clock,
    private readonly maxDriftMs: number = hlcMaxDriftMs,
  ) {}

  /** A timestamp greater than every one this clock returned or observed before. */
  now(): number {
    const wall = hlcFromWallMs(this.clock.now());
    this.#last = wall > this.#last ? wall : this.#last + 1;
    assert.ok(Number.isSafeInteger(this.#last), 'HLC left the safe integer range');
    return this.#last;
  }

  /**
   * Moves past a timestamp seen from another node, so our next write orders
   * after it. Returns false, and ignores it, when it is invalid or further
   * ahead of our wall clock than `maxDriftMs`: one peer with a wild clock must
   * not drag every node's clock into the future.
   */
  observe(remote: number): boolean {
    if (!Number.isSafeInteger(remote) || remote < 0) return false;
    if (hlcWallMs(remote) > this.clock.now() + this.maxDriftMs) return false;
    if (remote > this.#last) this.#last = remote;
    return true;
  }

  /** The last timestamp issued or observed (0 before any). */
  last(): number {
    return this.#last;
  }
}
