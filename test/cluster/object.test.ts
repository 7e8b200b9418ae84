// The object codec (protocol/object.ts): round trips of thousands of objects
// from random histories, canonical bytes, limits, and no input ever making
// the decoder throw (random bytes, every truncation, bit flips).

import t from 'tap';
import { checkObject, decodeObject, encodedMaxHlc, encodeObject, encodedObjectExpiry, encodedObjectLength, nextVersionEncoded, objectExpiry, OBJECT_FORMAT_VERSION, supersedesEncoded } from '../../protocol/object.js';
import type { ObjectLimits } from '../../protocol/object.js';
import { randomInt, seededRandom } from '../../src/cluster/ports.js';
import type { VersionedObject } from '../../src/cluster/types.js';
import { accountsFor, equalObjects, merge, objectLimits, update } from '../../src/cluster/version.js';
import { nodeId } from './helpers.js';
import { randomHistory } from './histories.js';

const decodeObjectChecked = decodeObject;

const objects = Array.from({ length: 60 }, (_, seed) =>
  randomHistory(1000 + seed, { steps: 30, hlcRange: 2 ** 50, expiryProbability: 0.2 }).objects,
).flat();

function decodeOk(buf: Buffer, limits: ObjectLimits = objectLimits): VersionedObject {
  const r = decodeObject(buf, limits);
  if (r.kind !== 'ok') throw new Error(`decode failed: ${r.reason}`);
  return r.object;
}

t.test('round trip', async (t) => {
  let failures = 0;
  for (const obj of objects) {
    const buf = encodeObject(obj);
    if (buf.length !== encodedObjectLength(obj) || !equalObjects(decodeOk(buf), obj)) failures++;
  }
  t.equal(failures, 0, `${objects.length} objects`);
  t.ok(equalObjects(decodeOk(encodeObject({ vv: new Map(), siblings: [] })), { vv: new Map(), siblings: [] }), 'the empty object');
});

t.test('bytes are canonical: insertion order does not matter', async (t) => {
  const obj = objects.find((o) => o.vv.size >= 3 && o.siblings.length >= 2)!;
  const shuffled: VersionedObject = { vv: new Map([...obj.vv].reverse()), siblings: obj.siblings.slice().reverse() };
  t.ok(encodeObject(shuffled).equals(encodeObject(obj)));
});

t.test('values are copied out of the input buffer', async (t) => {
  const obj = update(null, new Map(), nodeId(1), 1, Buffer.from('hello'), 0);
  const buf = encodeObject(obj);
  const decoded = decodeOk(buf);
  buf.fill(0);
  t.equal(decoded.siblings[0]!.value!.toString(), 'hello');
});

t.test('tombstones and expiry survive', async (t) => {
  const a = nodeId(1);
  let obj = update(null, new Map(), a, 5, Buffer.from('x'), 1_700_000_000_000);
  obj = update(obj, new Map(), a, 6, null, 0);
  const back = decodeOk(encodeObject(obj));
  t.equal(back.siblings[0]!.expiresAtMs, 1_700_000_000_000);
  t.equal(back.siblings[1]!.value, null, 'tombstone');
});

t.test('the encoder refuses what the format cannot carry', async (t) => {
  const a = nodeId(1);
  const good = update(null, new Map(), a, 1, Buffer.from('x'), 0);
  t.throws(() => encodeObject({ vv: new Map([['not-hex', 1]]), siblings: [] }), RangeError);
  t.throws(() => encodeObject({ vv: new Map([[a.toUpperCase(), 1]]), siblings: [] }), RangeError, 'upper-case hex would not round-trip');
  t.throws(() => encodeObject({ vv: new Map(), siblings: good.siblings }), RangeError, 'dot not covered');
  t.throws(() => encodeObject({ vv: good.vv, siblings: [good.siblings[0]!, good.siblings[0]!] }), RangeError, 'duplicate dot');
  t.throws(() => encodeObject({ vv: good.vv, siblings: [{ ...good.siblings[0]!, hlc: 2 ** 60 }] }), RangeError);
  t.throws(() => encodeObject({ vv: new Map([[a, 2 ** 32]]), siblings: [] }), RangeError);
});

t.test('the decoder rejects non-canonical and out-of-limit input', async (t) => {
  const [a, b] = [nodeId(1), nodeId(2)].sort();
  let obj = update(null, new Map(), a!, 1, Buffer.from('x'), 0);
  obj = update(obj, new Map(), b!, 2, Buffer.from('yy'), 0);
  const buf = encodeObject(obj);
  const corrupt = (bytes: Buffer, limits: ObjectLimits = objectLimits) => {
    const r = decodeObject(bytes, limits);
    return r.kind === 'corrupt' ? r.reason : 'decoded';
  };
  t.match(corrupt(buf, { ...objectLimits, siblingsMax: 1 }), /exceed the limit/);
  t.match(corrupt(buf, { ...objectLimits, vvEntriesMax: 1 }), /exceed the limit/);
  t.match(corrupt(buf, { ...objectLimits, valueBytesMax: 1 }), /exceeds the limit/);
  t.match(corrupt(Buffer.concat([buf, Buffer.from([0])])), /trailing/);
  const v2 = Buffer.from(buf);
  v2[0] = OBJECT_FORMAT_VERSION + 1;
  t.match(corrupt(v2), /version/);

  const swapped = Buffer.from(buf); // swap the two vv entries: unsorted
  buf.copy(swapped, 3, 27, 51);
  buf.copy(swapped, 27, 3, 27);
  t.match(corrupt(swapped), /not sorted/);

  const uncovered = Buffer.from(buf); // first sibling's counter above its vv entry
  const firstSibling = 3 + 2 * 24 + 2;
  uncovered.writeUInt32LE(9, firstSibling + 2);
  t.match(corrupt(uncovered), /not covered/);

  const badIndex = Buffer.from(buf);
  badIndex.writeUInt16LE(7, firstSibling);
  t.match(corrupt(badIndex), /names vv entry/);

  const flags = Buffer.from(buf);
  flags[firstSibling + 22] = 0x80;
  t.match(corrupt(flags), /unknown flags/);

  const tombWithValue = Buffer.from(buf);
  tombWithValue[firstSibling + 22] = 1;
  t.match(corrupt(tombWithValue), /tombstone/);
});

t.test('no input makes the decoder throw, and checkObject agrees with it on every input', async (t) => {
  const random = seededRandom(3);
  let disagreements = 0;
  const decodeObject = (buf: Buffer, limits: ObjectLimits) => {
    const r = decodeObjectChecked(buf, limits);
    const reason = checkObject(buf, limits);
    if ((r.kind === 'ok') !== (reason === null) || (r.kind === 'corrupt' && r.reason !== reason)) disagreements++;
    return r;
  };
  let decoded = 0;
  let notCanonical = 0;
  let runs = 0;
  // Every truncation of some valid encodings: always corrupt, never a throw.
  for (const obj of objects.slice(0, 200)) {
    const buf = encodeObject(obj);
    for (let cut = 0; cut < buf.length; cut++) {
      runs++;
      if (decodeObject(buf.subarray(0, cut), objectLimits).kind === 'ok') t.fail(`a truncation to ${cut} bytes decoded`);
    }
  }
  // Random bit flips and byte overwrites of valid encodings.
  for (let i = 0; i < 20_000; i++) {
    const buf = Buffer.from(encodeObject(objects[randomInt(random, objects.length)]!));
    for (let k = 1 + randomInt(random, 3); k > 0; k--) {
      const at = randomInt(random, buf.length);
      if (random.next() < 0.5) buf[at]! ^= 1 << randomInt(random, 8);
      else buf[at] = randomInt(random, 256);
    }
    runs++;
    const r = decodeObject(buf, objectLimits);
    if (r.kind === 'ok') {
      decoded++;
      // The decoder accepts only canonical bytes, so whatever decodes re-encodes to the very same bytes.
      if (!encodeObject(r.object).equals(buf)) notCanonical++;
    }
  }
  // Pure noise, sometimes with a plausible version byte.
  for (let i = 0; i < 20_000; i++) {
    const buf = Buffer.alloc(randomInt(random, 200));
    for (let k = 0; k < buf.length; k++) buf[k] = randomInt(random, 256);
    if (buf.length > 0 && random.next() < 0.5) buf[0] = OBJECT_FORMAT_VERSION;
    runs++;
    decodeObject(buf, objectLimits);
  }
  t.equal(notCanonical, 0, 'every mutated encoding that decoded re-encodes byte for byte');
  t.equal(disagreements, 0, 'checkObject gives the verdict and reason decodeObject does');
  t.pass(`${runs} damaged inputs, none threw (${decoded} mutated encodings still decoded: flips in values or HLCs)`);
});

t.test('objectExpiry', async (t) => {
  const a = nodeId(1);
  const one = (expiresAtMs: number, value: Buffer | null = Buffer.from('x')) => update(null, new Map(), a, 1, value, expiresAtMs);
  t.equal(objectExpiry({ vv: new Map(), siblings: [] }), 0, 'empty: no expiry');
  t.equal(objectExpiry(one(500)), 500);
  t.equal(objectExpiry(one(0)), 0);
  const two = update(one(500), new Map(), a, 2, Buffer.from('y'), 900);
  t.equal(objectExpiry(two), 900, 'every sibling expires: the latest');
  const withTombstone = update(one(500), new Map(), a, 2, null, 0);
  t.equal(objectExpiry(withTombstone), 0, 'a tombstone without expiry keeps the object');
});

t.test('encodedObjectExpiry is objectExpiry on the bytes', async (t) => {
  let differ = 0;
  for (const obj of objects) if (encodedObjectExpiry(encodeObject(obj)) !== objectExpiry(obj)) differ++;
  t.equal(differ, 0, `${objects.length} objects`);
});

t.test('supersedesEncoded: true only where storing the incoming bytes is the merge', async (t) => {
  // Every ordered pair of copies from a few histories (copies of one key), plus new writes over each copy.
  let claimed = 0;
  let wrong = 0;
  let pairs = 0;
  const histories = Array.from({ length: 12 }, (_, seed) => randomHistory(5000 + seed, { steps: 25, hlcRange: 1000 }));
  for (const h of histories) {
    const copies = h.objects.slice(-40);
    const fresh = copies.map((c, i) => update(c, c.vv, h.actors[i % h.actors.length]!, 10_000 + i, Buffer.from(`new ${i}`), 0));
    for (const local of copies) {
      for (const incoming of [...copies, ...fresh]) {
        pairs++;
        if (!supersedesEncoded(encodeObject(incoming), encodeObject(local))) continue;
        claimed++;
        const merged = merge(local, incoming);
        if (!equalObjects(merged, incoming) || equalObjects(merged, local) || !accountsFor(incoming, local)) wrong++;
      }
    }
    // A new write versioned over a copy always qualifies: the fast path is the common path.
    for (let i = 0; i < copies.length; i++) if (!supersedesEncoded(encodeObject(fresh[i]!), encodeObject(copies[i]!))) wrong++;
  }
  t.equal(wrong, 0, `${pairs} pairs, ${claimed} claimed`);
  t.ok(claimed > histories.length * 40, 'and it claims many of them');
  const one = update(null, new Map(), nodeId(1), 1, Buffer.from('x'), 0);
  t.notOk(supersedesEncoded(encodeObject(one), encodeObject(one)), 'the same version again: not new');
  t.notOk(supersedesEncoded(encodeObject(one), Buffer.from([OBJECT_FORMAT_VERSION, 9, 0])), 'a local copy whose vv does not fit: decode instead');
  t.notOk(supersedesEncoded(encodeObject({ vv: one.vv, siblings: [] }), encodeObject({ vv: new Map(), siblings: [] })), 'no siblings: decode instead');
});

t.test('nextVersionEncoded is update() over the copy\'s own vv, encoded', async (t) => {
  const random = seededRandom(11);
  // Actors already in the vvs (1..4), and ones sorting before and after all of them.
  const actors = [nodeId(1), nodeId(2), nodeId(3), nodeId(4), '0'.repeat(40), 'f'.repeat(40)];
  let differ = 0;
  let runs = 0;
  for (const local of [null, ...objects.slice(0, 400)]) {
    for (const actor of actors) {
      const hlc = randomInt(random, 2 ** 40);
      const expiresAtMs = random.next() < 0.3 ? randomInt(random, 2 ** 41) : 0;
      const value = Buffer.alloc(randomInt(random, 40), randomInt(random, 256));
      const expected = encodeObject(update(local, local?.vv ?? new Map(), actor, hlc, value, expiresAtMs));
      const built = nextVersionEncoded(local === null ? null : encodeObject(local), actor, hlc, value, expiresAtMs);
      runs++;
      if (!built.equals(expected)) differ++;
    }
  }
  t.equal(differ, 0, `${runs} versions built byte for byte as update() + encodeObject`);
  t.throws(() => nextVersionEncoded(null, 'not-hex', 1, Buffer.from('x'), 0), RangeError, 'a bad actor id');
  t.throws(() => nextVersionEncoded(null, nodeId(1), 2 ** 53, Buffer.from('x'), 0), RangeError, 'an HLC beyond 2^53');
  const full = encodeObject({ vv: new Map([[nodeId(1), 0xffff_ffff]]), siblings: [] });
  t.throws(() => nextVersionEncoded(full, nodeId(1), 1, Buffer.from('x'), 0), RangeError, 'a counter past u32');
});

t.test('encodedMaxHlc', async (t) => {
  let differ = 0;
  for (const obj of objects) if (encodedMaxHlc(encodeObject(obj)) !== obj.siblings.reduce((m, s) => Math.max(m, s.hlc), 0)) differ++;
  t.equal(differ, 0, `${objects.length} objects`);
});

t.test('equal objects have equal encodings, and only they (reads compare copies by their bytes)', async (t) => {
  const sample = objects.slice(0, 300);
  const encoded = sample.map((o) => encodeObject(o));
  let wrong = 0;
  let equalPairs = 0;
  for (let i = 0; i < sample.length; i++) {
    for (let j = 0; j < sample.length; j++) {
      const same = equalObjects(sample[i]!, sample[j]!);
      if (same && i !== j) equalPairs++;
      if (same !== encoded[i]!.equals(encoded[j]!)) wrong++;
    }
  }
  t.equal(wrong, 0, `${sample.length ** 2} pairs`);
  t.ok(equalPairs > 0, `including ${equalPairs} pairs of distinct but equal objects`);
});
