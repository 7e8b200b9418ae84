// The phi accrual failure detector (Hayashibara et al., 2004), one per
// remote member. Rather than a fixed "no heartbeat for X seconds" timeout it
// learns how heartbeats usually arrive and answers "how unlikely is this much
// silence?" as phi = -log10(P(a heartbeat arrives later than now)). Phi 8
// means a one-in-10^8 chance the member is merely slow (Cassandra's and
// Akka's threshold).
//
// This follows Akka's variant: arrival intervals are modelled as a normal
// distribution (with a logistic approximation of its CDF), the standard
// deviation has a floor so regular heartbeats do not make phi hair-triggered,
// and an acceptable pause is added to the mean so a short stall (a GC pause,
// a missed gossip hop) is not a failure. With a 200 ms heartbeat, a dead
// member crosses phi 8 about mean + pause + 5.2 * stddev = 200 + 1500 + 520
// ms after its last heartbeat; see docs/cluster.md for measured figures.
//
// Like Cassandra's ArrivalWindow, intervals longer than maxSampleIntervalMs
// (the gap across a partition or a restart) are not recorded: one outage
// would otherwise inflate the mean and blunt detection for a long time.
//
// Times are whatever the caller's clock says, in ms; a monotonic clock is
// best (a wall clock stepping back would hide failures until it caught up).

import assert from 'node:assert/strict';
import {
  gossipIntervalMsDefault,
  phiAcceptablePauseMs,
  phiMaxSampleIntervalMs,
  phiMinStdDeviationMs,
  phiSampleWindowSize,
  phiThresholdDefault,
} from '../constants.js';

export interface PhiOptions {
  threshold?: number;
  /** Intervals remembered; the oldest is forgotten first. */
  windowSize?: number;
  minStdDeviationMs?: number;
  acceptablePauseMs?: number;
  /** The expected heartbeat interval, used until real intervals arrive. */
  firstHeartbeatEstimateMs?: number;
  maxSampleIntervalMs?: number;
}

/** Phi for a silence of `elapsedMs` given the interval distribution (Akka's approximation). */
export function phiOf(elapsedMs: number, meanMs: number, stdDeviationMs: number): number {
  const y = (elapsedMs - meanMs) / stdDeviationMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  // Two forms of the same expression, each numerically safe on its side of the mean.
  return elapsedMs > meanMs ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e));
}

export class PhiAccrualDetector {
  readonly threshold: number;
  readonly #windowSize: number;
  readonly #minStdDeviationMs: number;
  readonly #acceptablePauseMs: number;
  readonly #firstEstimateMs: number;
  readonly #maxSampleIntervalMs: number;

  readonly #intervals: Float64Array;
  #count = 0;
  #next = 0;
  #sum = 0;
  #sumOfSquares = 0;
  #lastMs: number | undefined;

  constructor(options: PhiOptions = {}) {
    this.threshold = options.threshold ?? phiThresholdDefault;
    this.#windowSize = options.windowSize ?? phiSampleWindowSize;
    this.#minStdDeviationMs = options.minStdDeviationMs ?? phiMinStdDeviationMs;
    this.#acceptablePauseMs = options.acceptablePauseMs ?? phiAcceptablePauseMs;
    this.#firstEstimateMs = options.firstHeartbeatEstimateMs ?? gossipIntervalMsDefault;
    this.#maxSampleIntervalMs = options.maxSampleIntervalMs ?? phiMaxSampleIntervalMs;
    assert.ok(this.threshold > 0 && this.#windowSize >= 2 && this.#minStdDeviationMs > 0 && this.#firstEstimateMs > 0);
    this.#intervals = new Float64Array(this.#windowSize);
  }

  /** Records that a heartbeat arrived now. */
  heartbeat(nowMs: number): void {
    const last = this.#lastMs;
    this.#lastMs = nowMs;
    if (last === undefined) {
      // Akka's bootstrap: two intervals around the expected one, so phi is meaningful at once.
      const spread = this.#firstEstimateMs / 4;
      this.#record(this.#firstEstimateMs - spread);
      this.#record(this.#firstEstimateMs + spread);
      return;
    }
    const interval = nowMs - last;
    if (interval >= 0 && interval <= this.#maxSampleIntervalMs) this.#record(interval);
  }

  #record(interval: number): void {
    if (this.#count === this.#windowSize) {
      const old = this.#intervals[this.#next]!;
      this.#sum -= old;
      this.#sumOfSquares -= old * old;
    } else {
      this.#count++;
    }
    this.#intervals[this.#next] = interval;
    this.#next = (this.#next + 1) % this.#windowSize;
    this.#sum += interval;
    this.#sumOfSquares += interval * interval;
  }

  /** Mean of the remembered intervals (ms). */
  get meanMs(): number {
    return this.#count === 0 ? this.#firstEstimateMs : this.#sum / this.#count;
  }

  /** Standard deviation of the remembered intervals, before the floor (ms). */
  get stdDeviationMs(): number {
    if (this.#count === 0) return 0;
    const mean = this.meanMs;
    // Running sums can leave a tiny negative variance from rounding.
    return Math.sqrt(Math.max(0, this.#sumOfSquares / this.#count - mean * mean));
  }

  get sampleCount(): number {
    return this.#count;
  }

  /** Suspicion level now: 0 before the first heartbeat, rising with silence. */
  phi(nowMs: number): number {
    if (this.#lastMs === undefined) return 0;
    const elapsed = nowMs - this.#lastMs;
    const mean = this.meanMs + this.#acceptablePauseMs;
    const std = Math.max(this.stdDeviationMs, this.#minStdDeviationMs);
    return phiOf(elapsed, mean, std);
  }

  isAvailable(nowMs: number): boolean {
    return this.phi(nowMs) <= this.threshold;
  }

  /** Forgets everything (a member restarted: its old rhythm says nothing about the new process). */
  reset(): void {
    this.#count = 0;
    this.#next = 0;
    this.#sum = 0;
    this.#sumOfSquares = 0;
    this.#lastMs = undefined;
  }
}
