// The ring (src/cluster/ring.ts): every node computes the same placement from
// the same members; load is balanced; adding a node moves only what the new
// node takes; preference lists are N distinct nodes; weights scale load; hash
// tags keep keys together. Figures are printed with t.comment.

import t from 'tap';
import { Ring, slotOf, slotPoint } from '../../src/cluster/ring.js';
import { ringSlots, vnodesPerWeightDefault } from '../../src/constants.js';
import type { NodeId } from '../../src/cluster/types.js';
import { member, nodeId, randomKeys, ratio } from './helpers.js';

const five = [0, 1, 2, 3, 4].map((i) => member(nodeId(i)));
const keys = randomKeys(1, 200_000);
const keySlots = keys.map((k) => slotOf(k));

function loadByPrimary(ring: Ring): Map<NodeId, number> {
  const counts = new Map<NodeId, number>(ring.nodes.map((n) => [n, 0]));
  for (const slot of keySlots) {
    const p = ring.primaryOfSlot(slot)!;
    counts.set(p, counts.get(p)! + 1);
  }
  return counts;
}

t.test('the same members in any order give the identical ring', async (t) => {
  const a = new Ring(five);
  const b = new Ring([...five].reverse());
  const c = new Ring([five[2]!, five[0]!, five[4]!, five[1]!, five[3]!]);
  t.ok(a.equals(b) && a.equals(c), 'fingerprints equal');
  t.same(a.tokens(), c.tokens());
  for (let slot = 0; slot < ringSlots; slot += 97) t.same(a.ownersOfSlot(slot), c.ownersOfSlot(slot));
  t.equal(a.tokens().length, 5 * vnodesPerWeightDefault);
  t.notOk(a.equals(new Ring(five.slice(0, 4))), 'a different membership differs');
  t.notOk(a.equals(new Ring(five, { replicas: 2 })), 'a different N differs');
});

t.test('liveness and left members', async (t) => {
  const withLeft = [...five, member(nodeId(9), { state: 'left' })];
  t.ok(new Ring(withLeft).equals(new Ring(five)), "a 'left' member owns nothing");
  const restarted = five.map((m, i) => (i === 0 ? { ...m, incarnation: 7, heartbeat: 1234 } : m));
  t.ok(new Ring(restarted).equals(new Ring(five)), 'incarnation and heartbeat do not move data');
});

t.test('load balance over 5 nodes', async (t) => {
  const ring = new Ring(five);
  const counts = [...loadByPrimary(ring).values()];
  const avg = keys.length / 5;
  const max = Math.max(...counts) / avg;
  const min = Math.min(...counts) / avg;
  t.comment(`${keys.length} keys, ${vnodesPerWeightDefault} vnodes/node: most loaded ${ratio(max)}x avg, least ${ratio(min)}x`);
  t.ok(max <= 1.15, `most loaded node holds ${ratio(max)}x the average (<= 1.15)`);

  // The figure above is one cluster; node ids are random in practice, so look at many.
  const worst: number[] = [];
  for (let c = 0; c < 100; c++) {
    const r = new Ring([0, 1, 2, 3, 4].map((i) => member(nodeId(`c${c}-${i}`))));
    worst.push(Math.max(...r.primarySlotCounts().values()) / (ringSlots / 5));
  }
  worst.sort((x, y) => x - y);
  t.comment(
    `over 100 random 5-node clusters (by slot): median max/avg ${ratio(worst[50]!)}, p95 ${ratio(worst[95]!)}, worst ${ratio(worst[99]!)}`,
  );
  t.ok(worst[99]! <= 1.15, 'no cluster of 100 has a node above 1.15x');
});

t.test('adding a sixth node moves ~1/6 of the keys, all to the new node', async (t) => {
  const before = new Ring(five);
  const sixth = nodeId(5);
  const after = new Ring([...five, member(sixth)]);
  let moved = 0;
  let movedElsewhere = 0;
  for (const slot of keySlots) {
    const a = before.primaryOfSlot(slot);
    const b = after.primaryOfSlot(slot);
    if (a === b) continue;
    moved++;
    if (b !== sixth) movedElsewhere++;
  }
  const fraction = moved / keys.length;
  t.comment(`primaries moved: ${ratio(fraction)} of keys (ideal 1/6 = ${ratio(1 / 6)})`);
  t.ok(fraction >= 0.12 && fraction <= 0.22, `moved fraction ${ratio(fraction)} within 0.12..0.22`);
  t.equal(movedElsewhere, 0, 'every moved primary moved to the new node');

  // Stronger: each whole preference list is the old one with the new node
  // inserted somewhere and the last member pushed out; nothing else changes.
  let listsChanged = 0;
  let listsBroken = 0;
  for (let slot = 0; slot < ringSlots; slot++) {
    const old = before.ownersOfSlot(slot);
    const now = after.ownersOfSlot(slot);
    const expected = now.includes(sixth) ? old.slice(0, now.length - 1) : old;
    if (now.includes(sixth)) listsChanged++;
    const withoutNew = now.filter((n) => n !== sixth);
    if (withoutNew.length !== expected.length || withoutNew.some((n, i) => n !== expected[i])) listsBroken++;
  }
  t.equal(listsBroken, 0, 'every preference list is the old one with the new node inserted (and the last pushed out)');
  t.comment(`preference lists that include the new node: ${ratio(listsChanged / ringSlots)} of slots (ideal N/6 = 0.5)`);
});

t.test('preference lists are N distinct nodes, or every node when fewer', async (t) => {
  for (const [nodes, n] of [
    [5, 3],
    [5, 5],
    [2, 3],
    [1, 3],
    [7, 1],
  ] as const) {
    const ring = new Ring(
      Array.from({ length: nodes }, (_, i) => member(nodeId(i))),
      { replicas: n },
    );
    const expected = Math.min(n, nodes);
    let bad = 0;
    for (let slot = 0; slot < ringSlots; slot++) {
      const list = ring.ownersOfSlot(slot);
      if (list.length !== expected || new Set(list).size !== expected) bad++;
    }
    t.equal(bad, 0, `${nodes} nodes, N=${n}: every list has ${expected} distinct nodes`);
  }
  t.same(new Ring([]).preferenceList('x'), [], 'an empty ring owns nothing');
  t.same(new Ring([]).primarySlotRanges(), []);
});

t.test('successors start with the preference list and name every node once', async (t) => {
  const ring = new Ring(five);
  for (const slot of [0, 1, 8000, ringSlots - 1]) {
    const all = ring.successors(slot);
    t.same(all.slice(0, 3), ring.ownersOfSlot(slot));
    t.same([...all].sort(), [...ring.nodes]);
  }
});

t.test('a member of weight 2 gets about twice the keys', async (t) => {
  const heavy = nodeId('heavy');
  const ring = new Ring([...five.slice(0, 4), member(heavy, { weight: 2 })]);
  const counts = loadByPrimary(ring);
  const others = [...counts].filter(([n]) => n !== heavy).map(([, c]) => c);
  const factor = counts.get(heavy)! / (others.reduce((a, b) => a + b, 0) / others.length);
  t.comment(`weight 2 holds ${ratio(factor, 2)}x the keys of an average weight-1 node`);
  t.ok(factor > 1.75 && factor < 2.25, 'about twice');
  t.equal(new Ring([member(nodeId(1), { weight: 0 })]).nodes.length, 0, 'weight 0 owns nothing');
});

t.test('keys map to Redis Cluster slots, hash tags included', async (t) => {
  t.equal(slotOf('foo'), 12182, 'CRC16 of "foo" as Redis computes it');
  t.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'));
  t.equal(slotOf(Buffer.from('foo')), 12182, 'Buffers too');
  const ring = new Ring(five);
  t.equal(ring.preferenceList('{user1000}.following'), ring.preferenceList('{user1000}.followers'), 'same tag, same list');
  t.ok(slotPoint(0) > 0 && slotPoint(ringSlots - 1) < 2 ** 32, 'slot points lie on the ring');
});

t.test('slot ranges cover every slot once, in order', async (t) => {
  const ring = new Ring(five);
  for (const [name, ranges] of [
    ['slotRanges', ring.slotRanges()],
    ['primarySlotRanges', ring.primarySlotRanges()],
  ] as const) {
    let next = 0;
    let ok = true;
    for (const r of ranges) {
      if (r.start !== next || r.end < r.start) ok = false;
      for (const slot of [r.start, r.end]) {
        const owners = ring.ownersOfSlot(slot);
        if (name === 'slotRanges' ? owners !== r.owners : owners[0] !== r.owners[0]) ok = false;
      }
      next = r.end + 1;
    }
    t.ok(ok && next === ringSlots, `${name}: contiguous and complete`);
    t.comment(`${name}: ${ranges.length} ranges for 5 nodes`);
  }
});

t.test('building a ring is cheap enough to do on every membership change', async (t) => {
  const members = Array.from({ length: 20 }, (_, i) => member(nodeId(i)));
  const start = process.hrtime.bigint();
  const ring = new Ring(members);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.comment(`20 nodes, ${ring.tokens().length} tokens: built in ${ms.toFixed(1)} ms`);
  t.ok(ms < 2000);
});
