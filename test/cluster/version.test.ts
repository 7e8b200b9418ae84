// Dotted version vectors (src/cluster/version.ts), mostly as properties over
// thousands of objects from random histories (test/cluster/histories.ts):
// merge is a join (commutative, associative, idempotent); every object holds
// exactly the writes nothing it has seen replaced; a write that causally
// follows others wins whatever its HLC; concurrent writes stay siblings; and
// plain-GET resolution does not depend on merge order.

import t from 'tap';
import { randomInt, seededRandom } from '../../src/cluster/ports.js';
import type { NodeId, Sibling, VersionedObject } from '../../src/cluster/types.js';
import {
  canonicalProblem,
  concurrentVV,
  descends,
  emptyObject,
  equalObjects,
  liveSiblings,
  merge,
  mergeVV,
  resolve,
  seen,
  update,
} from '../../src/cluster/version.js';
import { nodeId } from './helpers.js';
import { dotKey, expectedDots, randomHistory } from './histories.js';

const histories = Array.from({ length: 150 }, (_, seed) => randomHistory(seed, { steps: 40 }));
const objectCount = histories.reduce((n, h) => n + h.objects.length, 0);
const pick = <T>(random: { next(): number }, xs: readonly T[]): T => xs[randomInt(random, xs.length)]!;

t.comment(`${histories.length} histories, ${objectCount} objects`);

t.test('version vector basics', async (t) => {
  const [a, b] = [nodeId('a'), nodeId('b')];
  const x = new Map([[a, 2]]);
  const y = new Map([[a, 1], [b, 1]]);
  t.ok(descends(x, new Map([[a, 1]])));
  t.ok(descends(x, new Map()), 'everything descends from nothing');
  t.notOk(descends(x, y));
  t.ok(concurrentVV(x, y));
  t.same([...mergeVV(x, y)], [[a, 2], [b, 1]].sort(([p], [q]) => ((p as string) < (q as string) ? -1 : 1)));
  t.ok(seen(y, { node: b, counter: 1 }));
  t.notOk(seen(y, { node: b, counter: 2 }));
});

t.test('every object is canonical and holds exactly the writes nothing it saw replaced', async (t) => {
  let bad = 0;
  let siblings = 0;
  let multi = 0;
  for (const h of histories) {
    for (const obj of h.objects) {
      const held = obj.siblings.map(dotKey).sort();
      if (canonicalProblem(obj) !== undefined || held.join() !== expectedDots(obj, h.writes).join()) bad++;
      siblings += obj.siblings.length;
      if (obj.siblings.length > 1) multi++;
    }
  }
  t.equal(bad, 0, `${objectCount} objects match first principles (dominated siblings pruned, concurrent ones kept)`);
  t.comment(`mean siblings per object ${(siblings / objectCount).toFixed(2)}, ${multi} objects with concurrent siblings`);
  t.ok(multi > 100, 'the histories do produce concurrency');
});

t.test('merge is commutative, associative and idempotent', async (t) => {
  const random = seededRandom(99);
  let checks = 0;
  let failures = 0;
  for (const h of histories) {
    for (let k = 0; k < 30; k++) {
      const [a, b, c] = [pick(random, h.objects), pick(random, h.objects), pick(random, h.objects)];
      checks++;
      if (!equalObjects(merge(a, b), merge(b, a))) failures++;
      if (!equalObjects(merge(merge(a, b), c), merge(a, merge(b, c)))) failures++;
      if (!equalObjects(merge(a, a), a)) failures++;
      if (!equalObjects(merge(a, merge(a, b)), merge(a, b))) failures++;
    }
  }
  t.equal(failures, 0, `${checks} random triples`);
});

t.test('a write whose context is every replica merged supersedes every earlier sibling, whatever its HLC', async (t) => {
  const random = seededRandom(5);
  let checks = 0;
  let failures = 0;
  for (const h of histories) {
    const context = h.replicas.reduce((vv, r) => mergeVV(vv, r.vv), new Map<NodeId, number>());
    const at = randomInt(random, h.replicas.length);
    // HLC 0: older than anything by the clock, newer by causality.
    const written = update(h.replicas[at]!, context, h.actors[at]!, 0, Buffer.from('final'), 0);
    const replicas = h.replicas.map((r, i) => (i === at ? written : r));
    const all = replicas.reduce((acc, r) => merge(acc, r), emptyObject());
    checks++;
    if (all.siblings.length !== 1 || all.siblings[0]!.value?.toString() !== 'final') failures++;
    if (resolve(all, 0)?.value?.toString() !== 'final') failures++;
  }
  t.equal(failures, 0, `${checks} histories: one sibling left, and GET returns it`);
});

t.test('concurrent writes are both kept until a causal write replaces them', async (t) => {
  const [a, b] = [nodeId('a'), nodeId('b')];
  const base = update(null, new Map(), a, 10, Buffer.from('base'), 0);
  // Both replicas start from base; two clients write concurrently, each having read its replica.
  const atA = update(base, base.vv, a, 100, Buffer.from('from-a'), 0);
  const atB = update(base, base.vv, b, 50, Buffer.from('from-b'), 0);
  const both = merge(atA, atB);
  t.same(both.siblings.map((s) => s.value?.toString()).sort(), ['from-a', 'from-b'], 'two siblings, base replaced');
  t.equal(resolve(both, 0)!.value!.toString(), 'from-a', 'GET picks the larger HLC');
  t.same(liveSiblings(both, 0).map((s) => s.value!.toString()), ['from-a', 'from-b'], 'newest first');

  // A third write that saw only one sibling keeps the other.
  const partial = update(atB, atB.vv, b, 1, Buffer.from('after-b'), 0);
  t.same(merge(both, partial).siblings.map((s) => s.value?.toString()).sort(), ['after-b', 'from-a']);

  // One that saw both replaces both, even with the smallest HLC.
  const resolved = update(both, both.vv, b, 1, Buffer.from('resolved'), 0);
  t.same(merge(resolved, atA).siblings.map((s) => s.value?.toString()), ['resolved']);
  t.same(merge(atB, resolved).siblings.map((s) => s.value?.toString()), ['resolved']);
});

t.test('resolve is the same whatever order the replicas merge in', async (t) => {
  const random = seededRandom(11);
  let checks = 0;
  let failures = 0;
  for (const h of histories) {
    const reference = h.replicas.reduce((acc, r) => merge(acc, r), emptyObject());
    for (let k = 0; k < 10; k++) {
      const order = h.replicas.slice().sort(() => random.next() - 0.5);
      // Random tree shapes too: fold from a random side.
      const merged =
        random.next() < 0.5
          ? order.reduce((acc, r) => merge(r, acc), emptyObject())
          : order.reduceRight((acc, r) => merge(acc, r), emptyObject());
      checks++;
      if (!equalObjects(merged, reference) || !sameSibling(resolve(merged, 0), resolve(reference, 0))) {
        failures++;
      }
    }
  }
  t.equal(failures, 0, `${checks} merge orders`);
});

function sameSibling(a: Sibling | undefined, b: Sibling | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && dotKey(a) === dotKey(b));
}

t.test('resolve: newest by HLC, then node id; tombstones and expiry', async (t) => {
  const [a, b] = [nodeId('a'), nodeId('b')].sort();
  const obj = (siblings: Array<Partial<Sibling> & { node: NodeId; counter: number }>): VersionedObject => {
    const vv = new Map<NodeId, number>();
    const full = siblings.map((s) => ({ hlc: 0, value: Buffer.from('x'), expiresAtMs: 0, ...s }));
    for (const s of full) vv.set(s.node, Math.max(vv.get(s.node) ?? 0, s.counter));
    return { vv: new Map([...vv].sort()), siblings: full };
  };
  const tie = obj([
    { node: a!, counter: 1, hlc: 5, value: Buffer.from('a') },
    { node: b!, counter: 1, hlc: 5, value: Buffer.from('b') },
  ]);
  t.equal(resolve(tie, 0)!.value!.toString(), 'b', 'equal HLC: larger node id wins');
  const deleted = obj([
    { node: a!, counter: 1, hlc: 5 },
    { node: b!, counter: 1, hlc: 6, value: null },
  ]);
  t.equal(resolve(deleted, 0), undefined, 'newest is a tombstone: not found');
  const expiring = obj([
    { node: a!, counter: 1, hlc: 5, value: Buffer.from('old') },
    { node: b!, counter: 1, hlc: 6, value: Buffer.from('new'), expiresAtMs: 1000 },
  ]);
  t.equal(resolve(expiring, 999)!.value!.toString(), 'new');
  t.equal(resolve(expiring, 1000)!.value!.toString(), 'old', 'an expired sibling is ignored');
  t.equal(resolve(emptyObject(), 0), undefined);
});

t.test('siblingsMax keeps the newest, and replicas converge on the same pruning', async (t) => {
  const actor = nodeId('a');
  let obj: VersionedObject | null = null;
  for (let i = 0; i < 10; i++) obj = update(obj, new Map(), actor, 100 - i * 10 + (i === 9 ? 1000 : 0), Buffer.from(`w${i}`), 0, 4);
  t.equal(obj!.siblings.length, 4, 'blind writes pile up to the limit only');
  t.same(obj!.siblings.map((s) => s.value!.toString()).sort(), ['w0', 'w1', 'w2', 'w9'], 'the newest by HLC stay, the new write always');

  // A replica that synced before the pruning still holds w3; on sync it drops
  // it too, because our vv has seen its dot and we no longer hold it.
  let early: VersionedObject | null = null;
  for (let i = 0; i < 4; i++) early = update(early, new Map(), actor, 100 - i * 10, Buffer.from(`w${i}`), 0, 100);
  t.ok(early!.siblings.some((s) => s.value!.toString() === 'w3'), 'the early copy holds w3');
  t.ok(equalObjects(merge(early!, obj!), obj!), 'after sync it holds exactly what the pruned copy holds');
});

t.test('update never mutates its inputs', async (t) => {
  const h = histories[0]!;
  const before = h.replicas.map((r) => ({ vv: new Map(r.vv), siblings: r.siblings.slice() }));
  const context = h.replicas[1]!.vv;
  update(h.replicas[0]!, context, h.actors[0]!, 1, Buffer.from('x'), 0);
  merge(h.replicas[0]!, h.replicas[1]!);
  t.ok(h.replicas.every((r, i) => equalObjects(r, before[i]!)));
});

t.test('a coordinator that lost its copy does not reuse a dot the context knows', async (t) => {
  const a = nodeId('a');
  let obj: VersionedObject | null = null;
  for (let i = 0; i < 3; i++) obj = update(obj, obj?.vv ?? new Map(), a, i, Buffer.from(`w${i}`), 0);
  // Replica a lost its data; a client read the context from another replica.
  const again = update(null, obj!.vv, a, 9, Buffer.from('after-loss'), 0);
  t.equal(again.siblings[0]!.counter, 4, 'counter continues from the context');
  t.same(merge(obj!, again).siblings.map((s) => s.value!.toString()), ['after-loss'], 'and replaces what the client saw');
});
