// The hybrid logical clock (src/cluster/hlc.ts): strictly increasing whatever
// the wall clock does, close to wall time, moves past observed timestamps,
// and refuses to be dragged far into the future by one peer.

import t from 'tap';
import { HybridClock, hlcFromWallMs, hlcLogical, hlcWallMs } from '../../src/cluster/hlc.js';
import { seededRandom } from '../../src/cluster/ports.js';
import { hlcMaxDriftMs } from '../../src/constants.js';

function fakeClock(ms: number) {
  return { ms, now() { return this.ms; } };
}

t.test('strictly increasing, even when the wall clock stalls or steps back', async (t) => {
  const wall = fakeClock(1_700_000_000_000);
  const hlc = new HybridClock(wall);
  const random = seededRandom(7);
  let last = 0;
  let violations = 0;
  for (let i = 0; i < 100_000; i++) {
    const r = random.next();
    if (r < 0.3) wall.ms += Math.floor(random.next() * 5);
    else if (r < 0.31) wall.ms -= 1000; // NTP steps back a second
    const ts = hlc.now();
    if (ts <= last || !Number.isSafeInteger(ts)) violations++;
    last = ts;
  }
  t.equal(violations, 0, '100k timestamps, each above the last');
});

t.test('packs wall ms and a logical counter', async (t) => {
  const wall = fakeClock(1_700_000_000_123);
  const hlc = new HybridClock(wall);
  const a = hlc.now();
  const b = hlc.now();
  t.equal(hlcWallMs(a), 1_700_000_000_123);
  t.equal(hlcLogical(a), 0);
  t.equal(hlcLogical(b), 1, 'same millisecond: the counter moves');
  wall.ms++;
  t.equal(hlc.now(), hlcFromWallMs(wall.ms), 'a new millisecond starts at counter 0');
  t.ok(Number.isSafeInteger(hlcFromWallMs(Date.UTC(2200, 0, 1))), 'fits 2^53 well past 2200');
});

t.test('observe moves past a remote timestamp', async (t) => {
  const wall = fakeClock(1_000_000);
  const hlc = new HybridClock(wall);
  const remote = hlcFromWallMs(1_000_500) + 17; // a peer half a second ahead
  t.ok(hlc.observe(remote));
  const next = hlc.now();
  t.ok(next > remote, 'our next write orders after what we saw');
  t.equal(hlcWallMs(next), 1_000_500, 'and stays at the remote millisecond until our clock catches up');
  t.ok(hlc.observe(hlcFromWallMs(10)), 'an old timestamp is fine...');
  t.ok(hlc.now() > next, '...and does not move us back');
});

t.test('a remote too far ahead, or garbage, is refused', async (t) => {
  const wall = fakeClock(1_000_000);
  const hlc = new HybridClock(wall);
  const before = hlc.now();
  t.notOk(hlc.observe(hlcFromWallMs(1_000_000 + hlcMaxDriftMs + 1)), 'beyond max drift');
  t.notOk(hlc.observe(-1));
  t.notOk(hlc.observe(Number.NaN));
  t.notOk(hlc.observe(2 ** 60));
  t.equal(hlc.now(), before + 1, 'none of them moved the clock');
});
