// The membership state machine (src/cluster/membership.ts) call by call: the
// merge rules, what tick picks, forget, evaluate, malformed gossip, and the
// listener API. End-to-end behaviour is in gossip.test.ts.

import t from 'tap';
import { GossipDriver } from '../../src/cluster/gossip.js';
import { Membership, memberProblem } from '../../src/cluster/membership.js';
import type { MembershipChange } from '../../src/cluster/membership.js';
import { seededRandom } from '../../src/cluster/ports.js';
import type { MemberState } from '../../src/cluster/types.js';
import { member, nodeId } from './helpers.js';

const selfId = nodeId('self');
const [a, b, c] = [nodeId('a'), nodeId('b'), nodeId('c')];

function make(seed = 1, seeds = [{ host: '10.0.0.9', port: 17000 }]): Membership {
  return new Membership(member(selfId, { host: '10.0.0.1' }), { random: seededRandom(seed), seeds, gossipFanout: 2 });
}

const short = (id: string) => (id === a ? 'a' : id === b ? 'b' : id.slice(0, 4));
const kinds = (changes: MembershipChange[]) => changes.map((x) => `${x.kind}:${short(x.member.id)}`);

t.test('merge: new members are added, newer versions win', async (t) => {
  const m = make();
  t.same(kinds(m.merge([member(a, { heartbeat: 5 })], 0)), ['added:a']);
  t.same(m.merge([member(a, { heartbeat: 4 })], 10), [], 'an older heartbeat is ignored');
  t.equal(m.get(a)!.heartbeat, 5);
  t.same(m.merge([member(a, { heartbeat: 6 })], 20), [], 'a newer heartbeat is taken silently');
  t.equal(m.get(a)!.heartbeat, 6);
  t.same(kinds(m.merge([member(a, { incarnation: 2, heartbeat: 0 })], 30)), ['restarted:a'], 'a higher incarnation wins over any heartbeat');
  t.same(m.merge([member(a, { incarnation: 1, heartbeat: 999 })], 40), [], 'a lower incarnation never wins');
  const moved = m.merge([member(a, { incarnation: 2, heartbeat: 1, port: 7001, weight: 2 })], 50);
  t.same(kinds(moved), ['changed:a']);
  t.equal(moved[0]!.kind === 'changed' && moved[0]!.previous.port, 7000);
});

t.test("'left' is sticky", async (t) => {
  const m = make();
  m.merge([member(a), member(b)], 0);
  t.same(kinds(m.merge([member(a, { state: 'left' })], 10)), ['left:a']);
  t.same(m.merge([member(a, { incarnation: 99, heartbeat: 99 })], 20), [], 'no version brings it back');
  t.equal(m.get(a)!.state, 'left');
  t.same(m.merge([member(c, { state: 'left' })], 30), [], 'a left stranger is recorded silently...');
  t.same(m.merge([member(c)], 40), [], '...and never learned');
  t.same(m.ringMembers().map((x) => x.id).sort(), [b, selfId].sort());
  t.ok(m.digest().some((x) => x.id === a && x.state === 'left'), 'left entries are gossiped, so forgetting spreads');
});

t.test('our own entry: refuted when stale, left when forgotten', async (t) => {
  const m = make();
  m.merge([member(selfId, { incarnation: 5, heartbeat: 3 })], 0);
  t.equal(m.self().incarnation, 6, 'a previous life with a higher incarnation is outbid');
  m.merge([member(selfId, { incarnation: 1, heartbeat: 100 })], 0);
  t.equal(m.self().incarnation, 6, 'an older one is ignored');
  t.same(m.forget(selfId), [], 'we cannot forget ourselves');
  const changes = m.merge([member(selfId, { state: 'left' })], 0);
  t.same(changes.map((x) => x.kind), ['left'], 'the cluster forgot us: reported');
  t.equal(m.self().state, 'left');
});

t.test('malformed gossip is skipped and counted', async (t) => {
  const m = make();
  const bad = [
    { ...member(a), id: 'short' },
    { ...member(a), port: 70000 },
    { ...member(a), weight: 1e9 },
    { ...member(a), heartbeat: -1 },
    { ...member(a), state: 'joining' },
    { ...member(a), host: '' },
    null,
  ] as unknown as MemberState[];
  t.same(m.merge(bad, 0), []);
  t.equal(m.rejectedEntries, bad.length);
  t.equal(memberProblem(member(a)), undefined);
  const extra = { ...member(b), evil: 'x'.repeat(10) } as MemberState;
  m.merge([extra], 0);
  t.notOk('evil' in m.get(b)!, 'only known fields are kept');

  const small = new Membership(member(selfId), { random: seededRandom(1), membersMax: 2 });
  small.merge([member(a), member(b)], 0);
  t.equal(small.members().length, 2, 'the table is bounded');
  t.equal(small.rejectedEntries, 1);
});

t.test('tick: heartbeat, fanout, seeds while alone, down members sometimes', async (t) => {
  const m = make();
  const first = m.tick(0);
  t.equal(m.self().heartbeat, 1);
  t.same(first, { peers: [], seeds: [{ host: '10.0.0.9', port: 17000 }] }, 'alone: the seeds');
  m.merge([member(a), member(b), member(c)], 0);
  const second = m.tick(0);
  t.equal(second.peers.length, 2, 'fanout live peers');
  t.same(second.seeds, [], 'no seeds once we know someone');

  // Everyone down: one down member every round, so a healed partition is noticed.
  m.evaluate(60_000);
  t.notOk(m.isUp(a) || m.isUp(b) || m.isUp(c));
  for (let i = 0; i < 20; i++) t.equal(m.tick(60_000).peers.length, 1);

  const own = new Membership(member(selfId, { host: 'h', clusterPort: 17000 }), {
    random: seededRandom(1),
    seeds: [{ host: 'h', port: 17000 }],
  });
  t.same(own.seeds(), [], 'our own address is not a seed');
});

t.test('evaluate marks silent members down, a heartbeat brings them up', async (t) => {
  const m = make();
  m.merge([member(a, { heartbeat: 1 }), member(b, { heartbeat: 1 })], 0);
  let hb = 1;
  for (let now = 200; now <= 10_000; now += 200) m.merge([member(b, { heartbeat: ++hb })], now);
  const changes = m.evaluate(10_000);
  t.same(kinds(changes), ['down:a'], 'a was silent for 10 s, b was not');
  t.ok(changes[0]!.kind === 'down' && changes[0]!.phi > 8);
  t.notOk(m.isUp(a));
  t.ok(m.isUp(b));
  t.same(kinds(m.merge([member(a, { heartbeat: 2 })], 10_100)), ['up:a']);
  t.same(m.evaluate(10_100), []);
  t.equal(m.view(10_100).length, 3, 'view lists every ring member');
});

t.test('forget and listeners', async (t) => {
  const m = make();
  const seen: string[] = [];
  const off = m.onChange((x) => seen.push(x.kind));
  m.merge([member(a)], 0);
  t.same(kinds(m.forget(a)), ['left:a']);
  t.same(m.forget(a), [], 'already left');
  t.same(m.forget(nodeId('unknown')), [], 'unknown id');
  off();
  m.merge([member(b)], 0);
  t.same(seen, ['added', 'left'], 'listeners saw changes until they unsubscribed');
});

t.test('the gossip handler answers gossip and refuses the rest', async (t) => {
  const m = make();
  const never = () => Promise.reject(new Error('unused'));
  const driver = new GossipDriver(m, {
    clock: { now: () => 0 },
    timers: { setTimeout: () => 0, clearTimeout: () => {} },
    random: seededRandom(1),
    transport: { request: never, requestAddress: never, sendWrite: () => {}, sendRead: () => {}, sendCoordinate: () => {} },
  });
  const answer = driver.handle(a, { type: 'gossip', from: a, members: [member(a)] });
  t.equal(answer.type, 'gossip');
  t.ok(answer.type === 'gossip' && answer.members.some((x) => x.id === a), 'merged before answering');
  t.equal(driver.handle(a, { type: 'dbsize' }).type, 'error');
});
