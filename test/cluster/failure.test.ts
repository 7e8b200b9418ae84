// The phi accrual detector (src/cluster/failure.ts) with the node's defaults
// and a 200 ms heartbeat: a dead member crosses phi 8 within 2-4 s; a live
// one with ±50% jitter never does; the window is bounded; an outage's long
// gap does not blunt detection afterwards.

import t from 'tap';
import { PhiAccrualDetector, phiOf } from '../../src/cluster/failure.js';
import { seededRandom } from '../../src/cluster/ports.js';
import { phiSampleWindowSize, phiThresholdDefault } from '../../src/constants.js';

const intervalMs = 200;

/** Feeds `count` heartbeats with intervals uniform in interval * [1 - jitter, 1 + jitter]; returns the last time. */
function feed(d: PhiAccrualDetector, startMs: number, count: number, jitter: number, seed = 1): number {
  const random = seededRandom(seed);
  let now = startMs;
  for (let i = 0; i < count; i++) {
    now += intervalMs * (1 - jitter + 2 * jitter * random.next());
    d.heartbeat(now);
  }
  return now;
}

/** Ms after `lastMs` at which phi first exceeds the threshold (10 ms resolution). */
function detectionDelay(d: PhiAccrualDetector, lastMs: number): number {
  for (let dt = 0; dt < 60_000; dt += 10) if (d.phi(lastMs + dt) > phiThresholdDefault) return dt;
  return Infinity;
}

t.test('a dead member passes phi 8 within 2-4 s of its last heartbeat', async (t) => {
  for (const jitter of [0, 0.5]) {
    const d = new PhiAccrualDetector({ firstHeartbeatEstimateMs: intervalMs });
    const last = feed(d, 0, 300, jitter);
    const delay = detectionDelay(d, last);
    t.comment(
      `jitter ±${jitter * 100}%: mean ${d.meanMs.toFixed(0)} ms, stddev ${d.stdDeviationMs.toFixed(0)} ms, ` +
        `phi > 8 after ${delay} ms of silence`,
    );
    t.ok(delay >= 2000 && delay <= 4000, `detected after ${delay} ms`);
  }
  // Right after the first heartbeat there is only the estimate; detection must still be in range.
  const fresh = new PhiAccrualDetector({ firstHeartbeatEstimateMs: intervalMs });
  fresh.heartbeat(0);
  const delay = detectionDelay(fresh, 0);
  t.comment(`after a single heartbeat: phi > 8 after ${delay} ms`);
  t.ok(delay >= 1500 && delay <= 4000);
});

t.test('a live member with ±50% jittery heartbeats never passes phi 8', async (t) => {
  const d = new PhiAccrualDetector({ firstHeartbeatEstimateMs: intervalMs });
  const random = seededRandom(2);
  let now = 0;
  let maxPhi = 0;
  d.heartbeat(now);
  for (let i = 0; i < 100_000; i++) {
    now += intervalMs * (0.5 + random.next());
    maxPhi = Math.max(maxPhi, d.phi(now - 0.001)); // the worst moment: just before it arrives
    d.heartbeat(now);
  }
  t.comment(`100k heartbeats at 200 ms ±50%: highest phi ${maxPhi.toFixed(4)}`);
  t.ok(maxPhi < phiThresholdDefault);
});

t.test('phi grows with silence and starts at 0', async (t) => {
  const d = new PhiAccrualDetector();
  t.equal(d.phi(12345), 0, 'no heartbeat yet: no suspicion');
  const last = feed(d, 0, 50, 0.2);
  let previous = -1;
  let monotone = true;
  for (let dt = 0; dt < 10_000; dt += 50) {
    const phi = d.phi(last + dt);
    if (phi < previous) monotone = false;
    previous = phi;
  }
  t.ok(monotone, 'non-decreasing in elapsed time');
  t.ok(d.phi(last + 60_000) > 1000, 'long silence: very high (or infinite) phi');
  t.equal(phiOf(0, 1000, 100), 0, 'far below the mean: 0');
});

t.test('the sample window is bounded', async (t) => {
  const d = new PhiAccrualDetector();
  feed(d, 0, phiSampleWindowSize * 3, 0.5);
  t.equal(d.sampleCount, phiSampleWindowSize);
  // The oldest samples are forgotten: after a switch to a 1 s rhythm, the mean follows.
  let now = 1e9;
  for (let i = 0; i < phiSampleWindowSize; i++) d.heartbeat((now += 1000));
  t.ok(Math.abs(d.meanMs - 1000) < 1, `mean ${d.meanMs}`);
});

t.test('an outage does not blunt detection afterwards', async (t) => {
  const d = new PhiAccrualDetector();
  let last = feed(d, 0, 100, 0.5);
  const before = detectionDelay(d, last);
  d.heartbeat(last + 30_000); // back after a 30 s partition
  last = feed(d, last + 30_000, 5, 0.5, 9);
  const after = detectionDelay(d, last);
  t.comment(`detection after ${before} ms before a 30 s outage, ${after} ms after it`);
  t.ok(Math.abs(after - before) <= 100, 'the 30 s gap was not recorded as an interval');
  d.reset();
  t.equal(d.sampleCount, 0);
  t.equal(d.phi(1e12), 0, 'reset: like new');
});
