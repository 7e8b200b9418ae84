// Gossip and failure detection end to end, in the deterministic simulation
// (test/cluster/sim.ts): five nodes joined through one seed converge to one
// table and one ring, also with 10% message loss; a killed node is marked
// down everywhere within seconds and up again after it restarts; a forgotten
// node stays out; a partitioned node is seen down and recovers after the
// heal; and one seed replays one trace. Figures go to t.comment.

import { createHash } from 'node:crypto';
import t from 'tap';
import { Sim } from './sim.js';
import type { SimNode } from './sim.js';

const labels = ['n0', 'n1', 'n2', 'n3', 'n4'];
const seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/** n0 starts alone; the others know only n0's address. Everyone starts at t=0. */
function cluster(seed: number, dropProbability = 0): Sim {
  const sim = new Sim({ seed, network: { dropProbability } });
  sim.addNode('n0');
  for (const l of labels.slice(1)) sim.addNode(l, ['n0']);
  return sim;
}

function stats(xs: number[]): string {
  const s = xs.slice().sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]}, max ${s[s.length - 1]}`;
}

/** When each of `observers` first reported `kind` about `subject` at or after `sinceMs`. */
function firstChange(observers: SimNode[], subject: SimNode, kind: string, sinceMs: number): number[] {
  return observers.map((o) => {
    const hit = o.changes.find((c) => c.atMs >= sinceMs && c.change.kind === kind && c.change.member.id === subject.id);
    return hit === undefined ? Infinity : hit.atMs;
  });
}

/** 'down' changes the test did not expect (`expected(observer, subject, atMs)` says which it did). */
function falseDowns(sim: Sim, expected: (observer: string, subject: string, atMs: number) => boolean): string[] {
  const out: string[] = [];
  for (const o of sim.nodes) {
    for (const { atMs, change } of o.changes) {
      const subject = sim.labelOf(change.member.id);
      if (change.kind === 'down' && !expected(o.label, subject, atMs)) out.push(`${o.label} saw ${subject} down at ${atMs}`);
    }
  }
  return out;
}

for (const loss of [0, 0.1]) {
  t.test(`5 nodes joined through one seed converge${loss ? ` with ${loss * 100}% message loss` : ''}`, async (t) => {
    const rounds: number[] = [];
    for (const seed of seeds) {
      const sim = cluster(seed, loss);
      const ms = await sim.runUntil(() => sim.converged(5) && sim.allUp(), 30_000);
      t.ok(ms !== undefined, `seed ${seed}: converged`);
      rounds.push(Math.ceil(ms! / sim.intervalMs));
      t.same(falseDowns(sim, () => false), [], `seed ${seed}: nobody was ever seen down`);
    }
    const interval = new Sim({ seed: 0 }).intervalMs;
    t.comment(`rounds of ${interval} ms until identical tables and rings on all 5 nodes, ${seeds.length} seeds: ${stats(rounds)}`);
    t.ok(Math.max(...rounds) <= (loss ? 15 : 10), 'within a few rounds');
  });
}

t.test('live nodes are never marked down, even with 10% loss (60 s)', async (t) => {
  const sim = cluster(77, 0.1);
  await sim.run(60_000);
  t.ok(sim.converged(5) && sim.allUp());
  t.same(falseDowns(sim, () => false), []);
});

for (const loss of [0, 0.1]) {
  t.test(`a killed node is marked down everywhere, and up after it restarts${loss ? ` (${loss * 100}% loss)` : ''}`, async (t) => {
    const detection: number[] = [];
    const recovery: number[] = [];
    for (const seed of seeds) {
      const sim = cluster(seed, loss);
      await sim.run(10_000);
      const victim = sim.node('n4');
      const others = sim.nodes.filter((n) => n !== victim);
      const killedAt = sim.clock.ms;
      sim.kill('n4');
      const ms = await sim.runUntil(() => others.every((o) => !o.membership.isUp(victim.id)), 20_000);
      t.ok(ms !== undefined, `seed ${seed}: all saw it down`);
      detection.push(Math.round(Math.max(...firstChange(others, victim, 'down', killedAt)) - killedAt));

      await sim.run(5_000);
      const restartedAt = sim.clock.ms;
      sim.restart('n4', ['n0']);
      const back = await sim.runUntil(() => sim.converged(5) && sim.allUp(), 20_000);
      t.ok(back !== undefined, `seed ${seed}: back up everywhere, and it sees everyone`);
      recovery.push(back!);
      t.ok(
        firstChange(others, victim, 'restarted', restartedAt).every((at) => at < Infinity),
        'every node saw the new incarnation',
      );
      t.equal(sim.node('n0').membership.get(victim.id)!.incarnation, 2);
      t.same(
        falseDowns(sim, (_, subject, at) => subject === 'n4' && at >= killedAt && at < restartedAt),
        [],
        'no one else was ever seen down',
      );
    }
    t.comment(`kill -> last node marks it down (${seeds.length} seeds): ${stats(detection)} ms`);
    t.comment(`restart -> everyone sees everyone up: ${stats(recovery)} ms`);
    t.ok(Math.max(...detection) <= 5000, 'within a few seconds');
  });
}

t.test('a forgotten node stays out', async (t) => {
  const sim = cluster(21);
  await sim.run(5_000);
  const gone = sim.node('n4');
  const others = sim.nodes.filter((n) => n !== gone);
  sim.kill('n4');
  const forgotAt = sim.clock.ms;
  t.same(sim.node('n0').membership.forget(gone.id).map((c) => c.kind), ['left']);
  t.same(sim.node('n0').membership.forget(gone.id), [], 'forgetting twice changes nothing');
  const spread = await sim.runUntil(() => others.every((o) => o.membership.get(gone.id)?.state === 'left'), 10_000);
  t.ok(spread !== undefined, `every node learned it left, in ${spread} ms`);
  t.ok(sim.converged(4), 'the ring is the other four');

  sim.restart('n4', ['n0']); // same id, higher incarnation
  await sim.run(10_000);
  t.ok(others.every((o) => o.membership.get(gone.id)?.state === 'left'), 'restarting did not bring it back');
  t.ok(others.every((o) => !o.membership.ringMembers().some((m) => m.id === gone.id)), 'and it is in no ring');
  const relapses = others.flatMap((o) =>
    o.changes
      .filter((c) => c.atMs >= forgotAt && c.change.member.id === gone.id && c.change.kind !== 'left')
      .map((c) => `${o.label}: ${c.change.kind}`),
  );
  t.same(relapses, [], 'not even for a moment');
  t.equal(gone.membership.self().state, 'left', 'it learned that it was forgotten');
  t.ok(gone.changes.some((c) => c.change.kind === 'left' && c.change.member.id === gone.id));

  // A running node forgotten stays out as well, though it keeps gossiping.
  const live = sim.node('n3');
  sim.node('n1').membership.forget(live.id);
  await sim.run(10_000);
  t.ok(sim.nodes.every((o) => o.membership.get(live.id)?.state === 'left'), 'a running node, forgotten, stays left');
  t.equal(new Set(sim.alive().filter((n) => n !== gone && n !== live).map(Sim.shape)).size, 1, 'the rest agree');
});

t.test('a partitioned node is seen down, and recovers after the heal', async (t) => {
  const isolation: number[] = [];
  const healing: number[] = [];
  for (const seed of seeds) {
    const sim = cluster(seed);
    await sim.run(10_000);
    const island = sim.node('n2');
    const mainland = sim.nodes.filter((n) => n !== island);
    sim.partition(['n2'], mainland.map((n) => n.label));
    const cutAt = sim.clock.ms;
    const seen = await sim.runUntil(
      () => mainland.every((m) => !m.membership.isUp(island.id)) && mainland.every((m) => !island.membership.isUp(m.id)),
      20_000,
    );
    t.ok(seen !== undefined, `seed ${seed}: both sides see the other down`);
    isolation.push(seen!);
    t.ok(mainland.every((a) => mainland.every((b) => a === b || a.membership.isUp(b.id))), 'the majority still sees itself up');
    await sim.run(10_000);
    sim.heal();
    const healed = await sim.runUntil(() => sim.allUp(), 20_000);
    t.ok(healed !== undefined, `seed ${seed}: all up after the heal`);
    healing.push(healed!);
    t.ok(sim.converged(5), 'same table and ring everywhere');
    const healedAt = sim.clock.ms;
    t.same(
      falseDowns(sim, (observer, subject, at) => at >= cutAt && at < healedAt && (observer === 'n2') !== (subject === 'n2')),
      [],
      'only links across the cut were ever seen down',
    );
  }
  t.comment(`partition -> both sides see each other down: ${stats(isolation)} ms; heal -> all up: ${stats(healing)} ms`);
});

async function scenario(seed: number): Promise<string[]> {
  const sim = cluster(seed, 0.1);
  await sim.run(5_000);
  sim.kill('n3');
  await sim.run(5_000);
  sim.partition(['n1'], ['n0', 'n2', 'n4']);
  await sim.run(5_000);
  sim.restart('n3', ['n0']);
  sim.heal();
  await sim.run(5_000);
  for (const n of sim.nodes) sim.log(`${n.label} holds ${JSON.stringify(n.membership.digest())}`);
  return sim.trace;
}

t.test('the same seed gives the identical trace', async (t) => {
  const digest = (trace: string[]) => createHash('sha1').update(trace.join('\n')).digest('hex');
  const a = await scenario(42);
  const b = await scenario(42);
  const c = await scenario(43);
  t.comment(`${a.length} trace events, sha1 ${digest(a).slice(0, 12)}`);
  t.equal(a.length, b.length);
  t.equal(digest(a), digest(b), 'identical');
  t.not(digest(a), digest(c), 'another seed, another trace');
});
