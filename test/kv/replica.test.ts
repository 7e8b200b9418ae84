// The replica layer over a real segment store on disk (src/kv/replica.ts):
// new writes stored as they came, concurrent ones merged and reported,
// repeats not written again, stored bytes answered as they are, and a stored
// object that does not decode read as missing and then overwritten.

import t from 'tap';
import { decodeObject, encodeObject, nextVersionEncoded } from '../../protocol/object.js';
import type { VersionedObject } from '../../src/cluster/types.js';
import { objectLimits, update } from '../../src/cluster/version.js';
import { SegmentReplica } from '../../src/kv/replica.js';
import { nodeId } from '../cluster/helpers.js';
import { captureLog, durable, open, type Teardown, tempDir } from '../storage/helpers.js';

const key = Buffer.from('user:1');
const [a, b] = [nodeId(1), nodeId(2)];

async function setup(t: Teardown) {
  const store = await open(tempDir(t));
  t.teardown(() => store.close());
  const log = captureLog();
  return { store, log, replica: new SegmentReplica(store, log.logger) };
}

async function stored(store: Awaited<ReturnType<typeof open>>): Promise<Buffer | undefined> {
  return (await store.get(key))?.value;
}

function decoded(bytes: Buffer): VersionedObject {
  const d = decodeObject(bytes, objectLimits);
  if (d.kind !== 'ok') throw new Error(d.reason);
  return d.object;
}

t.test('a new write over the copy is stored as it came, and accounted for', async (t) => {
  const { store, replica } = await setup(t);
  const first = update(null, new Map(), a, 1, Buffer.from('one'), 0);
  t.equal(await replica.apply(key, encodeObject(first)), null, 'no copy: accounted for');
  t.ok((await stored(store))?.equals(encodeObject(first)), 'the bytes as sent');
  const expiresAtMs = Date.now() + 60_000;
  const second = update(first, first.vv, b, 2, Buffer.from('two'), expiresAtMs);
  t.equal(await replica.apply(key, encodeObject(second)), null, 'versioned over the copy: accounted for');
  t.ok((await stored(store))?.equals(encodeObject(second)));
  t.equal(store.expiryOf(key), expiresAtMs, 'the store expires it with its only sibling');
  t.ok((await replica.readEncoded(key))?.equals(encodeObject(second)), 'readEncoded: the stored bytes');
  await durable(store);
});

t.test('a concurrent write is kept beside the copy and reported with the copy\'s vv', async (t) => {
  const { store, replica } = await setup(t);
  const mine = update(null, new Map(), a, 1, Buffer.from('mine'), 0);
  await replica.apply(key, encodeObject(mine), mine);
  const theirs = update(null, new Map(), b, 2, Buffer.from('theirs'), 0); // did not see `mine`
  const unaccounted = await replica.apply(key, encodeObject(theirs));
  t.same(unaccounted, mine.vv, 'the copy it did not account for');
  const now = decoded((await stored(store))!);
  t.same(now.siblings.map((s) => s.value?.toString()).sort(), ['mine', 'theirs'], 'both kept as siblings');
  t.same(await replica.read(key), now, 'read decodes what is stored');
});

t.test('the same version again is not written again', async (t) => {
  const { store, replica } = await setup(t);
  const one = update(null, new Map(), a, 1, Buffer.from('x'), 0);
  await replica.apply(key, encodeObject(one));
  const appended = () => store.stats().diskBytes + store.stats().pendingBytes;
  const before = appended();
  t.equal(await replica.apply(key, encodeObject(one)), null);
  t.equal(appended(), before, 'nothing appended');
  const two = update(one, one.vv, a, 2, Buffer.from('y'), 0);
  await replica.apply(key, encodeObject(two));
  t.ok(appended() > before, 'while a new version is');
});

t.test('a stored object that does not decode reads as missing, and the next write replaces it', async (t) => {
  const { store, replica, log } = await setup(t);
  store.put(key, Buffer.from('not an object'), 0);
  t.equal(await replica.readEncoded(key), null, 'readEncoded: missing');
  t.equal(await replica.read(key), null, 'read: missing');
  t.equal(replica.corruptObjects, 2);
  t.match(log.problems(), ['stored object does not decode; treating the key as missing here']);
  const next = update(null, new Map(), a, 1, Buffer.from('fresh'), 0);
  t.equal(await replica.apply(key, encodeObject(next)), null);
  t.ok((await stored(store))?.equals(encodeObject(next)), 'replaced');
});

t.test('a version whose dot the copy has already seen changes nothing, and is reported', async (t) => {
  // The coordinator lost its own copy (corrupt, expired early, or it became an owner only now) and built
  // its version over nothing: dot a:1, which this copy has long seen. Storing nothing is right; answering
  // "accounted for" would let the coordinator acknowledge a write that no read will ever return.
  const { store, replica } = await setup(t);
  let copy = update(null, new Map(), a, 1, Buffer.from('w'), 0);
  for (let i = 2; i <= 5; i++) copy = update(copy, copy.vv, a, i, Buffer.from('x'), 0);
  copy = update(copy, copy.vv, b, 6, Buffer.from('x'), 0);
  await replica.apply(key, encodeObject(copy));
  const stale = nextVersionEncoded(null, a, 7, Buffer.from('y'), 0);
  t.same(await replica.apply(key, stale), copy.vv, 'the copy\'s vv, so its coordinator versions again');
  t.ok((await stored(store))?.equals(encodeObject(copy)), 'the copy unchanged');
  const again = nextVersionEncoded(encodeObject({ vv: copy.vv, siblings: [] }), a, 8, Buffer.from('y'), 0);
  t.equal(await replica.apply(key, again), null, 'the second version supersedes it');
  t.equal(decoded((await stored(store))!).siblings[0]!.value!.toString(), 'y');
});
