// The quorum engine in one process: three coordinators over in-memory replica
// stores and a fake network that can take nodes down, with each node's own
// (possibly skewed) clock. Quorum tally, read/write quorums, read repair and
// causality that does not depend on wall clocks are tested here.

import t from 'tap';
import { Coordinator, type Quorum } from '../../src/cluster/coordinator.js';
import { HybridClock } from '../../src/cluster/hlc.js';
import { type Batching, type Clock, type ReplicaStore, type Transport, type Waiter, coordinateBatching, seededRandom, readBatching, sendAlone, writeBatching } from '../../src/cluster/ports.js';
import { QuorumTally, WriteRound } from '../../src/cluster/quorum.js';
import { Ring } from '../../src/cluster/ring.js';
import type { NodeId, PeerMessage, VersionedObject, VersionVector } from '../../src/cluster/types.js';
import { accountsFor, merge, objectLimits, update } from '../../src/cluster/version.js';
import { decodeObject, encodeObject } from '../../protocol/object.js';
import { member, nodeId } from './helpers.js';

function decoded(encoded: Buffer): VersionedObject {
  const d = decodeObject(encoded, objectLimits);
  if (d.kind !== 'ok') throw new Error(d.reason);
  return d.object;
}

class MemoryReplica implements ReplicaStore {
  readonly data = new Map<string, VersionedObject>();
  changes = 0;
  /** Local copies read, decoded or as bytes (for tests of what a read costs here). */
  reads = 0;
  read(key: Buffer): VersionedObject | null {
    this.reads++;
    return this.data.get(key.toString('latin1')) ?? null;
  }
  decode(_key: Buffer, encoded: Buffer): VersionedObject {
    return decoded(encoded);
  }
  readEncoded(key: Buffer): Buffer | null {
    const o = this.read(key);
    return o === null ? null : encodeObject(o);
  }
  apply(key: Buffer, encoded: Buffer, object?: VersionedObject): VersionVector | null {
    const incoming = object ?? decoded(encoded);
    const k = key.toString('latin1');
    const cur = this.data.get(k);
    this.changes++;
    this.data.set(k, cur === undefined ? incoming : merge(cur, incoming));
    return cur === undefined || accountsFor(incoming, cur) ? null : cur.vv;
  }
  whenDurable(cb: (err: Error | null) => void): void {
    queueMicrotask(() => cb(null));
  }
  scan(_cursor: number, _count: number): { cursor: number; keys: Buffer[] } {
    return { cursor: 0, keys: [...this.data.keys()].map((k) => Buffer.from(k, 'latin1')) };
  }
  keys(): Iterable<Buffer> {
    return [...this.data.keys()].map((k) => Buffer.from(k, 'latin1'));
  }
  async clear(): Promise<void> {
    this.data.clear();
    this.changes++;
  }
}

/**
 * Three nodes (or `nodes`, with three replicas); `down` nodes refuse every
 * request, as a dead peer does. With `batching`, replica writes and reads and
 * writes for an owner to coordinate queue per node until the end of the turn
 * and go as one writeBatch / readBatch / coordinateBatch, as the real
 * transport does; without it each goes alone at once. `lose()` fails every
 * queued item without sending it, as a connection that closes does.
 */
function cluster(skewMs: number[] = [0, 0, 0], quorum: Quorum = { r: 2, w: 2 }, batching = false, nodes = 3) {
  const ids = Array.from({ length: nodes }, (_, i) => nodeId(i + 1));
  const ring = new Ring(ids.map((id) => member(id)), { replicas: 3, vnodesPerWeight: 16 });
  const down = new Set<NodeId>();
  const coords = new Map<NodeId, Coordinator>();
  /** Requests sent, by message type. */
  const sent = new Map<string, number>();
  /** Items sent, over all requests, by batch type. */
  const items = new Map<string, number>();
  const replicas = new Map<NodeId, MemoryReplica>();
  let wall = 1_800_000_000_000;
  const losers: Array<() => void> = [];
  ids.forEach((id, i) => {
    const clock: Clock = { now: () => wall + (skewMs[i] ?? 0) };
    const queued = new Map<Batching<never, never>, Map<NodeId, { items: never[]; waiters: Array<Waiter<never>> }>>();
    const transport: Transport = {
      request: (to: NodeId, msg: PeerMessage) => {
        sent.set(msg.type, (sent.get(msg.type) ?? 0) + 1);
        if ('items' in msg) items.set(msg.type, (items.get(msg.type) ?? 0) + msg.items.length);
        if (down.has(to) || down.has(id)) return Promise.reject(Object.assign(new Error(`node ${to} is unreachable`), { code: 'UNREACHABLE' }));
        return Promise.resolve().then(() => coords.get(to)!.handle(msg)!);
      },
      requestAddress: () => Promise.reject(new Error('not used')),
      sendWrite(to, item, waiter, timeoutMs) {
        queueItem(writeBatching, to, item, waiter, timeoutMs);
      },
      sendRead(to, item, waiter, timeoutMs) {
        queueItem(readBatching, to, item, waiter, timeoutMs);
      },
      sendCoordinate(to, item, waiter, timeoutMs) {
        queueItem(coordinateBatching, to, item, waiter, timeoutMs);
      },
    };
    losers.push(() => {
      for (const [kind, byNode] of queued) {
        for (const [to, batch] of byNode) kind.settle(to, batch.waiters, Object.assign(new Error('connection lost'), { code: 'UNREACHABLE' }), () => {});
        byNode.clear();
      }
    });
    function queueItem<I, T>(kind: Batching<I, T>, to: NodeId, item: I, waiter: Waiter<T>, timeoutMs: number): void {
      if (!batching) return sendAlone(transport, kind, to, item, waiter, timeoutMs);
      const byNode = queued.get(kind as Batching<never, never>) ?? new Map();
      queued.set(kind as Batching<never, never>, byNode);
      let batch = byNode.get(to);
      if (batch === undefined) {
        byNode.set(to, (batch = { items: [], waiters: [] }));
        const { items, waiters } = batch;
        setImmediate(() => {
          if (byNode.get(to) !== batch) return; // lost
          byNode.delete(to);
          transport.request(to, kind.message(items as I[]), timeoutMs).then(
            (m) => kind.settle(to, waiters as Array<Waiter<T>>, m, () => {}),
            (e: Error) => kind.settle(to, waiters as Array<Waiter<T>>, e, () => {}),
          );
        });
      }
      batch.items.push(item as never);
      batch.waiters.push(waiter as Waiter<never>);
    }
    const replica = new MemoryReplica();
    replicas.set(id, replica);
    coords.set(
      id,
      new Coordinator(
        { self: id, clock, hlc: new HybridClock(clock), random: seededRandom(i), transport, replica, ring: () => ring, isUp: (x) => !down.has(x) },
        { quorum, requestTimeoutMs: 100, siblingsMax: 64, readAnswerBytesMax: 1024 },
      ),
    );
  });
  const tick = (ms: number) => (wall += ms);
  return {
    ids,
    coords: ids.map((id) => coords.get(id)!),
    replicas: ids.map((id) => replicas.get(id)!),
    down,
    tick,
    sent,
    writeItems: () => items.get('writeBatch') ?? 0,
    readItems: () => items.get('readBatch') ?? 0,
    coordinateItems: () => items.get('coordinateBatch') ?? 0,
    lose: () => losers.forEach((f) => f()),
  };
}

const k = (s: string) => Buffer.from(s);
const settle = () => new Promise((r) => setImmediate(r));

t.test('quorum tally: met at `need` answers, failed once unreachable, late answers still collected', async (t) => {
  const tally = new QuorumTally<number>(['a', 'b', 'c'], 2);
  tally.answer('a', 1);
  t.equal(tally.state, 'pending');
  tally.fail('b', 'TIMEOUT');
  t.equal(tally.state, 'pending', 'one failure still leaves two of three possible');
  tally.answer('c', 3);
  t.equal(tally.state, 'met');
  t.ok(tally.settled);
  const failing = new QuorumTally<number>(['a', 'b', 'c'], 2);
  failing.answer('a', 1);
  failing.fail('b', 'UNREACHABLE');
  failing.fail('c', 'UNREACHABLE');
  t.equal(await failing.decided(), 'failed');
  t.match(failing.describe(), /^1 of 2 needed \(3 asked; /);
  t.throws(() => new QuorumTally(['a'], 2), /impossible/);
});

t.test('write round: done at `need` acks; below it, once all are heard, W decides', async (t) => {
  const owners = ['a', 'b', 'c'];
  const failed = (detail: string) => new Error(`TRYAGAIN ${detail}`);
  const vv = new Map([['x', 1]]);
  const met = new WriteRound(owners, 2, 2, failed);
  met.answer('a', null);
  met.answer('a', vv); // heard already: ignored
  met.answer('zz', vv); // not an owner: ignored
  met.answer('b', vv);
  t.same(await met.acked, [vv], 'two acks; the one that reported its vv is returned');

  // A SET's context check wants N-W+1 = 2 answers but gets only W = 1 ack; it stands on W once all are heard.
  const best = new WriteRound(owners, 1, 2, failed);
  let done = false;
  void best.acked.then(() => (done = true));
  best.answer('a', null);
  best.fail('b', 'TIMEOUT');
  await settle();
  t.notOk(done, 'still waiting for c');
  best.fail('c', 'UNREACHABLE');
  t.same(await best.acked, []);

  const short = new WriteRound(owners, 2, 2, failed);
  short.answer('a', null);
  short.fail('b', 'TIMEOUT');
  short.fail('c', 'UNREACHABLE');
  await t.rejects(short.acked, /^TRYAGAIN 1 of 2 needed \(3 asked; b: TIMEOUT, c: UNREACHABLE\)$/);
  t.throws(() => new WriteRound(['a'], 2, 2, failed), /impossible/);

  // whenDone, the hot path's form: called synchronously at the deciding answer, or at once if decided.
  const calls: string[] = [];
  const cb = new WriteRound(owners, 2, 2, failed);
  cb.whenDone((err, unaccounted) => calls.push(`first: ${err?.message ?? 'ok'} ${unaccounted.length}`));
  cb.whenDone((err) => calls.push(`second: ${err?.message ?? 'ok'}`));
  cb.answer('a', null);
  t.same(calls, [], 'one ack of two: not done');
  cb.answer('b', vv);
  t.same(calls, ['first: ok 1', 'second: ok'], 'done at the second ack, in the same call, listeners in order');
  cb.answer('c', null);
  t.same(calls, ['first: ok 1', 'second: ok'], 'once only');
  const late = new WriteRound(owners, 2, 2, failed);
  late.answer('a', null);
  late.fail('b', 'TIMEOUT');
  late.fail('c', 'TIMEOUT');
  late.whenDone((err) => calls.push(`late: ${err?.message}`));
  t.same(calls.at(-1), 'late: TRYAGAIN 1 of 2 needed (3 asked; b: TIMEOUT, c: TIMEOUT)', 'a listener added after the end hears at once');
});

t.test('a write through one node is read through every other', async (t) => {
  const c = cluster();
  await c.coords[0]!.set(k('x'), k('one'), 0);
  for (const node of c.coords) t.same((await node.get(k('x')))?.value, k('one'));
  t.equal(await c.coords[2]!.delete([k('x'), k('nope')]), 1);
  for (const node of c.coords) t.equal(await node.get(k('x')), undefined, 'the tombstone is seen everywhere');
});

t.test('one node down changes nothing; two down fail both quorums with a count', async (t) => {
  const c = cluster();
  c.down.add(c.ids[2]!);
  await c.coords[0]!.set(k('y'), k('v'), 0);
  t.same((await c.coords[1]!.get(k('y')))?.value, k('v'));
  c.down.add(c.ids[1]!);
  await t.rejects(c.coords[0]!.set(k('y'), k('w'), 0), /^TRYAGAIN write quorum not reached: 1 of 2 needed/);
  await t.rejects(c.coords[0]!.get(k('y')), /^TRYAGAIN read quorum not reached: 1 of 2 needed/);
  const one = c.coords[0]!.withQuorum({ r: 1, w: 1 });
  t.same((await one.get(k('y')))?.value, k('w'), 'the failed write was not rolled back on the node that took it');
});

t.test('a write that follows another supersedes it even when its node clock is far behind', async (t) => {
  // Node 3's clock runs two minutes slow: past the HLC's drift bound, so only causality can order the writes.
  const c = cluster([0, 0, -120_000]);
  // Node 3 misses the first write, so only the context it reads from the other owners orders its own.
  c.down.add(c.ids[2]!);
  await c.coords[0]!.set(k('z'), k('first'), 0);
  c.down.clear();
  t.equal(c.replicas[2]!.read(k('z')), null, 'node 3 missed the first write');
  c.tick(10);
  await c.coords[2]!.set(k('z'), k('second'), 0);
  await settle();
  for (const node of c.coords) t.same((await node.get(k('z')))?.value, k('second'));
  for (const r of c.replicas) t.ok((r.read(k('z'))?.siblings.length ?? 0) <= 1, 'no sibling left for the superseded write');
});

t.test('concurrent writes are kept as siblings and resolved the same way everywhere; reads repair', async (t) => {
  const c = cluster([0, 0, 0], { r: 1, w: 1 });
  // Partition: node 1 and node 3 each write alone.
  c.down.add(c.ids[1]!);
  c.down.add(c.ids[2]!);
  await c.coords[0]!.set(k('s'), k('from-1'), 0);
  c.down.clear();
  c.down.add(c.ids[0]!);
  c.down.add(c.ids[1]!);
  c.tick(5);
  await c.coords[2]!.set(k('s'), k('from-3'), 0);
  c.down.clear();
  const all = c.coords[1]!.withQuorum({ r: 3, w: 2 });
  const v = (await all.get(k('s')))?.value.toString();
  t.equal(v, 'from-3', 'the later HLC wins among concurrent siblings');
  await settle();
  await settle();
  for (const r of c.replicas) t.equal(r.read(k('s'))?.siblings.length, 2, 'read repair gave every replica both siblings');
  for (const node of c.coords) t.equal((await node.get(k('s')))?.value.toString(), 'from-3');
  // A later write supersedes both siblings.
  await c.coords[1]!.set(k('s'), k('after'), 0);
  await settle();
  for (const r of c.replicas) t.equal(r.read(k('s'))?.siblings.length, 1);
});

t.test('a SET through an owner is one round when its copy is current: no context read, no second version', async (t) => {
  const c = cluster();
  await c.coords[0]!.set(k('one'), k('a'), 0);
  await c.coords[0]!.set(k('one'), k('b'), 0);
  await settle();
  t.equal(c.sent.get('readBatch') ?? 0, 0, 'no context read');
  t.equal(c.sent.get('writeBatch'), 4, 'two owners asked per write');
  t.equal(c.coords[0]!.stats.writeRetries, 0);
  for (const r of c.replicas) t.same(r.read(k('one'))?.siblings.map((s) => s.value?.toString()), ['b']);
});

t.test('a SET over a stale local copy is versioned again and supersedes the acknowledged write it missed', async (t) => {
  // Node 3 has the first write but misses the second (acknowledged by nodes 1 and 2); its clock runs two
  // minutes slow, so only causality can order its write after the second.
  const c = cluster([0, 0, -120_000]);
  await c.coords[0]!.set(k('s'), k('first'), 0);
  await settle();
  c.down.add(c.ids[2]!);
  c.tick(10);
  await c.coords[1]!.set(k('s'), k('second'), 0);
  c.down.clear();
  t.equal(c.replicas[2]!.read(k('s'))?.siblings[0]?.value?.toString(), 'first', 'node 3 missed the second write');
  c.tick(10);
  await c.coords[2]!.set(k('s'), k('third'), 0);
  t.equal(c.coords[2]!.stats.writeRetries, 1, 'the owners reported what node 3 had not seen');
  await settle();
  for (const node of c.coords) t.equal((await node.get(k('s')))?.value.toString(), 'third');
  await settle();
  for (const r of c.replicas) t.same(r.read(k('s'))?.siblings.map((s) => s.value?.toString()), ['third'], 'no sibling left');
});

t.test('an owner that lost its copy does not reuse a dot the other owners hold', async (t) => {
  const c = cluster();
  await c.coords[0]!.set(k('d'), k('before'), 0);
  await settle();
  c.replicas[0]!.data.clear(); // node 1 lost its copy (a crash under fsync everysec, say)
  c.tick(10);
  await c.coords[0]!.set(k('d'), k('after'), 0);
  t.equal(c.coords[0]!.stats.writeRetries, 1, 'the owners reported the dot node 1 had forgotten');
  await settle();
  for (const r of c.replicas) {
    const obj = r.read(k('d'))!;
    t.same(obj.siblings.map((s) => [s.counter, s.value?.toString()]), [[2, 'after']], 'a fresh dot, one sibling');
  }
});

t.test('a SET with W=1 still hears N-W+1 owners before it answers, and stands on W when fewer are up', async (t) => {
  const c = cluster([0, 0, 0], { r: 1, w: 1 });
  // Nodes 1 and 2 take a write that node 3 misses.
  c.down.add(c.ids[2]!);
  await c.coords[0]!.set(k('w1'), k('first'), 0);
  c.down.clear();
  // Node 3's SET must supersede it: N-W+1 = 3 owners answer, and nodes 1 and 2 report the first write.
  await c.coords[2]!.set(k('w1'), k('second'), 0);
  t.equal(c.coords[2]!.stats.writeRetries, 1);
  await settle();
  for (const r of c.replicas) t.same(r.read(k('w1'))?.siblings.map((s) => s.value?.toString()), ['second']);
  // With two owners down the write stands on its own W=1.
  c.down.add(c.ids[0]!);
  c.down.add(c.ids[1]!);
  await c.coords[2]!.set(k('w1'), k('third'), 0);
  t.equal((await c.coords[2]!.get(k('w1')))?.value.toString(), 'third');
});

t.test('SETs of one key in one turn ride one round: the owners get the last version only, every SET is acknowledged', async (t) => {
  const c = cluster([0, 0, 0], { r: 2, w: 2 }, true);
  const sets = Array.from({ length: 20 }, (_, i) => c.coords[0]!.set(k('hot'), k(`v${i}`), 0));
  const other = c.coords[0]!.set(k('cold'), k('x'), 0);
  t.same(await Promise.all(sets), Array(20).fill(undefined), 'all 20 acknowledged');
  await other;
  t.equal(c.coords[0]!.stats.writesCombined, 19, 'the last 19 rode along the first');
  await settle(); // W=2 was met by the first owner to answer: let the other's batch go too
  t.equal(c.writeItems(), 4, 'each other owner got one item per key');
  for (const r of c.replicas) {
    t.same(r.read(k('hot'))?.siblings.map((s) => [s.counter, s.value?.toString()]), [[20, 'v19']], 'the last SET, over all 20 dots');
  }
  // A SET after the turn's versions went out starts a round of its own.
  await c.coords[0]!.set(k('hot'), k('later'), 0);
  await settle();
  t.equal(c.coords[0]!.stats.writesCombined, 19);
  t.equal(c.writeItems(), 6);
});

t.test('a SET rides along only a round with its own levels, and shares that round\'s failure', async (t) => {
  const c = cluster([0, 0, 0], { r: 2, w: 2 }, true);
  const all = c.coords[0]!.withQuorum({ w: 3 });
  const two = c.coords[0]!.set(k('lv'), k('a'), 0);
  const three = all.set(k('lv'), k('b'), 0);
  await Promise.all([two, three]);
  await settle();
  t.equal(c.coords[0]!.stats.writesCombined, 0, 'W=2 and W=3 rounds stay apart');
  t.equal(c.writeItems(), 4);
  // With both other owners down, W=3 fails: the SETs that rode along fail with it.
  c.down.add(c.ids[1]!);
  c.down.add(c.ids[2]!);
  const failing = [all.set(k('lv'), k('c'), 0), all.set(k('lv'), k('d'), 0)];
  for (const f of failing) await t.rejects(f, /^TRYAGAIN write quorum not reached: 1 of 3 needed/);
  t.equal(c.coords[0]!.stats.writesCombined, 1);
});

t.test('an owner that finds a key contended sends its SETs to the first owner for a while', async (t) => {
  const c = cluster([0, 0, 0], { r: 2, w: 2 }, true);
  const key = k('contended');
  const owners = c.coords[0]!.owners(key);
  const first = c.coords[c.ids.indexOf(owners[0]!)]!;
  const other = c.coords[c.ids.indexOf(owners[1]!)]!;
  // Both version the key at once: the other owner's SET misses the first's and takes a second round.
  await Promise.all([first.set(key, k('a'), 0), other.set(key, k('b'), 0)]);
  t.equal(other.stats.writeRetries, 1, 'the other owner versioned again');
  t.equal(first.stats.contendedForwards, 0, 'the first owner keeps coordinating');
  await settle(); // every owner has both second versions
  // Now its SETs of the key go to the first owner, which versions them after its own: no second round.
  const before = c.coordinateItems();
  await Promise.all([first.set(key, k('c'), 0), other.set(key, k('d'), 0), other.set(k('calm'), k('x'), 0)]);
  t.equal(other.stats.contendedForwards, 1, 'one SET forwarded; the key that is not contended stays here');
  t.equal(c.coordinateItems(), before + 1);
  t.equal(other.stats.writeRetries, 1, 'no new second round');
  await settle();
  for (const node of c.coords) t.equal((await node.get(key))?.value.toString(), 'd', 'the forwarded SET arrived last');
  // After contendedForMs the owner coordinates the key itself again.
  c.tick(1001);
  await other.set(key, k('e'), 0);
  t.equal(other.stats.contendedForwards, 1);
  // With the first owner unreachable, a contended SET is coordinated here.
  await Promise.all([first.set(key, k('f'), 0), other.set(key, k('g'), 0)]);
  c.down.add(owners[0]!);
  t.equal(await other.set(key, k('h'), 0), undefined, 'coordinated here when the first owner refuses');
});

t.test('SETs a node forwards in one turn travel as one item per key and owner: the last value, every SET acknowledged', async (t) => {
  const c = cluster([0, 0, 0, 0], { r: 2, w: 2 }, true, 4);
  // A key node 0 does not own, so it forwards its writes to the key's first owner.
  let key = k('fwd0');
  for (let i = 1; c.coords[0]!.owners(key).includes(c.ids[0]!); i++) key = k(`fwd${i}`);
  const owners = c.coords[0]!.owners(key);
  const via = c.coords[0]!;
  const sets = Array.from({ length: 10 }, (_, i) => via.set(key, k(`v${i}`), 0));
  const levels = via.withQuorum({ w: 3 }).set(key, k('w3'), 0); // other levels: an item of its own
  const bigger = via.set(key, Buffer.alloc(200, 'b'), 0); // larger than the queued value allows: its own item
  const last = via.set(key, k('last'), 0);
  const del = via.delete([k('gone')]);
  t.same(await Promise.all(sets), Array(10).fill(undefined), 'all ten acknowledged');
  await Promise.all([levels, bigger, last, del]);
  t.equal(via.stats.forwardedWrites, 14);
  t.equal(via.stats.forwardsCombined, 10, 'nine SETs took the place of the one queued before them, and the last that of the larger');
  t.equal(c.coordinateItems(), 4, 'one coordinateBatch item each: the ten SETs, W=3, the larger value (the last riding it), the DEL');
  t.equal(c.sent.get('coordinateBatch'), 2, 'one request to the first owner, one to the DEL\'s');
  await settle();
  for (const o of owners) t.equal(c.replicas[c.ids.indexOf(o)]!.read(key)?.siblings[0]?.value?.toString(), 'last', 'every owner has the last value');
  // The first owner refuses the connection: the forward and the SETs riding it go to the next owner.
  c.down.add(owners[0]!);
  const line = [via.set(key, k('x'), 0), via.set(key, k('y'), 0)];
  t.same(await Promise.all(line), [undefined, undefined]);
  t.equal(via.stats.forwardsCombined, 11);
  t.equal((await via.get(key))?.value.toString(), 'y', 'the next owner coordinated the later value');
});

t.test('a forwarded write that fails reports the owner\'s reply to every SET riding it', async (t) => {
  const c = cluster([0, 0, 0, 0], { r: 2, w: 3 }, true, 4);
  let key = k('f0');
  for (let i = 1; c.coords[0]!.owners(key).includes(c.ids[0]!); i++) key = k(`f${i}`);
  c.down.add(c.coords[0]!.owners(key)[2]!); // W=3 cannot be met, but the first owner answers
  const sets = [c.coords[0]!.set(key, k('a'), 0), c.coords[0]!.set(key, k('b'), 0)];
  for (const s of sets) await t.rejects(s, /^TRYAGAIN write quorum not reached: 2 of 3 needed/);
  t.equal(c.coords[0]!.stats.forwardsCombined, 1);
});

t.test('GETs of one key in one turn share a read; a GET that joins still sees what this node applied since', async (t) => {
  const c = cluster([0, 0, 0], { r: 2, w: 2 }, true);
  await c.coords[0]!.set(k('hot'), k('v1'), 0);
  await settle();
  const before = c.readItems();
  const localReads = c.replicas[0]!.reads;
  const gets = Array.from({ length: 10 }, () => c.coords[0]!.get(k('hot')));
  t.same((await Promise.all(gets)).map((e) => e?.value.toString()), Array(10).fill('v1'));
  t.equal(c.coords[0]!.stats.readsCombined, 9, 'nine joined the first');
  t.equal(c.replicas[0]!.reads - localReads, 1, 'nothing changed here meanwhile: the joiners did not read this node\'s copy again');
  await settle();
  t.equal(c.readItems() - before, 2, 'one item per other owner');
  // A newer version lands on this node's copy after the first GET began (only here, so the other owners'
  // answers do not have it): the GET that joins after that sees it.
  const first = c.coords[0]!.get(k('hot'));
  const current = c.replicas[0]!.read(k('hot'))!;
  const newer = update(current, current.vv, c.ids[1]!, 1, k('v2'), 0, 64);
  c.replicas[0]!.apply(k('hot'), encodeObject(newer), newer);
  const joined = c.coords[0]!.get(k('hot'));
  t.equal((await joined)?.value.toString(), 'v2', 'the joiner read this node\'s copy afresh');
  await first;
  t.equal(c.coords[0]!.stats.readsCombined, 10);
  // Reads with other levels do not share.
  await Promise.all([c.coords[0]!.get(k('hot')), c.coords[0]!.withQuorum({ r: 3 }).get(k('hot'))]);
  t.equal(c.coords[0]!.stats.readsCombined, 10);
});

t.test('a write or read whose queued item was lost with its connection is not joined later', async (t) => {
  const c = cluster([0, 0, 0, 0], { r: 2, w: 2 }, true, 4);
  let key = k('lost0');
  for (let i = 1; c.coords[0]!.owners(key).includes(c.ids[0]!); i++) key = k(`lost${i}`);
  const owner = c.coords[c.ids.indexOf(c.coords[0]!.owners(key)[0]!)]!;
  // A SET on an owner: both replica writes are lost before they go out, so W=2 fails.
  const lostSet = owner.set(key, k('a'), 0);
  c.lose();
  await t.rejects(lostSet, /^TRYAGAIN write quorum not reached/);
  t.equal(await owner.set(key, k('b'), 0), undefined, 'the next SET of the key has a round of its own');
  await settle();
  // A forwarded SET lost before it went out goes to the next owner; the next one is sent, not joined.
  const forwarded = c.coords[0]!.set(key, k('c'), 0);
  c.lose();
  await forwarded;
  await c.coords[0]!.set(key, k('d'), 0);
  t.equal(c.coords[0]!.stats.forwardsCombined, 0);
  // A GET whose reads were lost fails; the next GET asks again.
  const lostGet = owner.get(key);
  c.lose();
  await t.rejects(lostGet, /^TRYAGAIN read quorum not reached/);
  t.equal((await owner.get(key))?.value.toString(), 'd');
  t.equal(owner.stats.readsCombined, 0);
});

t.test('a readBatch answer keeps under readAnswerBytesMax: objects past it come back as `again`', async (t) => {
  const c = cluster();
  const value = Buffer.alloc(600, 7);
  for (const key of ['a', 'b', 'c']) await c.coords[0]!.set(k(key), value, 0);
  await settle();
  const items = ['a', 'missing', 'b', 'c'].map((key) => ({ key: k(key), versionOnly: false }));
  const answer = await c.coords[1]!.handle({ type: 'readBatch', items });
  const results = answer?.type === 'objects' ? answer.results : [];
  t.same(
    results.map((r) => (r === null ? 'absent' : 'again' in r ? 'again' : 'error' in r ? 'error' : 'object')),
    ['object', 'absent', 'again', 'again'],
    'the first object always fits (600 of 1,024 bytes); the next would pass the limit',
  );
  const small = await c.coords[1]!.handle({ type: 'readBatch', items: items.map((i) => ({ ...i, versionOnly: true })) });
  t.ok(small?.type === 'objects' && small.results.every((r) => r === null || !('again' in r)), 'version-only answers carry no values and all fit');
  // A GET of each still works: the transport asks for `again` items alone.
  t.same((await c.coords[2]!.get(k('c')))?.value, value);
});
