// The peer frame codec (protocol/peer.ts): every message type and handshake
// step round trips; the incremental decoder gives the same frames whatever
// the chunking; every single-bit flip is caught; malformed payloads, unknown
// types and oversized lengths come back as error values; no input makes it throw.

import t from 'tap';
import { isDeepStrictEqual } from 'node:util';
import { crc32c } from '@node-rs/crc32';
import {
  decodeFrame,
  encodeFrame,
  encodeFrameBuffer,
  encodeHandshake,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  handshakeProof,
  isFrameError,
  MessageTypeCode,
  proofMatches,
  type Frame,
  type FrameError,
  type Handshake,
} from '../../protocol/peer.js';
import { encodeObject } from '../../protocol/object.js';
import type { PeerMessage } from '../../src/cluster/types.js';
import { peerFrameBytesMax } from '../../src/constants.js';
import { mulberry32, nodeId, objectLimits, rawFrame, sampleMessages, sampleObject } from './helpers.js';

const kinds = ['request', 'response', 'oneWay'] as const;

function decodeAll(d: FrameDecoder): Array<Frame | FrameError> {
  const out: Array<Frame | FrameError> = [];
  for (let guard = 0; guard < 100_000; guard++) {
    const f = d.next();
    if (f === null) return out;
    out.push(f);
    if (isFrameError(f) && f.fatal) return out; // sticky: asking again gives the same error
  }
  throw new Error('decoder did not stop');
}

/** Frames of a stream fed in the given chunks. */
function feed(chunks: Buffer[], max = peerFrameBytesMax): Array<Frame | FrameError> {
  const d = new FrameDecoder(max, objectLimits);
  const out: Array<Frame | FrameError> = [];
  for (const c of chunks) {
    d.push(c);
    out.push(...decodeAll(d));
    if (out.some((f) => isFrameError(f) && f.fatal)) break;
  }
  return out;
}

const handshakes: Handshake[] = [
  { step: 'hello', version: 1, auth: true, nodeId: nodeId(1), nonce: Buffer.alloc(32, 7) },
  { step: 'hello', version: 200, auth: false, nodeId: nodeId(2), nonce: Buffer.alloc(32, 8) },
  { step: 'helloAck', version: 1, auth: true, nodeId: nodeId(3), nonce: Buffer.alloc(32, 9), proof: Buffer.alloc(32, 1) },
  { step: 'helloAck', version: 1, auth: false, nodeId: nodeId(3), nonce: Buffer.alloc(32, 9), proof: null },
  { step: 'proof', proof: Buffer.alloc(32, 2) },
  { step: 'proof', proof: null },
  { step: 'welcome' },
  { step: 'refuse', reason: 'wrong cluster secret' },
];

t.test('every message type round trips in every frame kind', async (t) => {
  const msgs = sampleMessages();
  const covered = new Set(msgs.map((m) => m.type));
  t.same([...covered].sort(), Object.keys(MessageTypeCode).sort(), 'the samples cover every PeerMessage type');
  for (const kind of kinds) {
    for (const [i, msg] of msgs.entries()) {
      const id = kind === 'oneWay' ? 0 : 0xffff_ff00 + i;
      const buf = encodeFrameBuffer(kind, id, msg);
      t.equal(buf.readUInt32LE(0), buf.length - 4, 'length field counts the rest');
      t.equal(buf.readUInt32LE(4), crc32c(buf.subarray(8)), 'crc covers bytes 8..end');
      const f = decodeFrame(buf, objectLimits);
      if (isFrameError(f)) throw new Error(`${msg.type}: ${f.message}`);
      t.equal(f.kind, kind);
      t.equal(f.id, id);
      t.same((f as { message: PeerMessage }).message, msg, `${kind} ${msg.type}`);
    }
  }
});

t.test('objects travel as their encodings and arrive checked, not decoded', async (t) => {
  const f = decodeFrame(encodeFrameBuffer('response', 7, { type: 'objects', results: [encodeObject(sampleObject), null] }), objectLimits);
  if (isFrameError(f)) throw new Error(f.message);
  const results = (f as { message: PeerMessage & { type: 'objects' } }).message.results;
  t.ok(Buffer.isBuffer(results[0]) && results[0].equals(encodeObject(sampleObject)), 'the bytes sent');
  const bad = encodeObject(sampleObject);
  bad[0] = 99;
  const refused = decodeFrame(encodeFrameBuffer('response', 7, { type: 'objects', results: [bad] }), objectLimits);
  t.ok(isFrameError(refused), 'an encoding that does not check out fails the frame');
  t.match((refused as { message: string }).message, /objects.object: unsupported object format version 99/);
});

t.test('a writeBatch object that is not a valid encoding fails the frame', async (t) => {
  const good = encodeObject(sampleObject);
  const bad = Buffer.from(good);
  bad[0] = 99; // an unknown object format version
  const buf = encodeFrameBuffer('request', 3, { type: 'writeBatch', items: [{ key: Buffer.from('k'), encoded: bad, report: false }] });
  const f = decodeFrame(buf, objectLimits);
  t.ok(isFrameError(f), 'refused');
  t.match((f as { message: string }).message, /writeBatch.object: unsupported object format version 99/);
});

t.test('every handshake step round trips', async (t) => {
  for (const hs of handshakes) {
    const f = decodeFrame(encodeHandshake(hs), objectLimits);
    if (isFrameError(f)) throw new Error(`${hs.step}: ${f.message}`);
    t.equal(f.kind, 'handshake');
    t.same((f as { handshake: Handshake }).handshake, hs, hs.step);
  }
  // A later version may append fields to hello: the prefix is still read.
  const hello = encodeHandshake(handshakes[0]!);
  const longer = rawFrame(4, 0, 1, Buffer.concat([hello.subarray(FRAME_HEADER_BYTES), Buffer.from('future fields')]));
  const f = decodeFrame(longer, objectLimits);
  t.notOk(isFrameError(f), 'hello with trailing bytes is accepted');
  t.same((f as { handshake: Handshake }).handshake, handshakes[0]);
  // But not without the magic: that is not a Distri-KV peer.
  const noMagic = Buffer.from(hello);
  noMagic.write('XXXX', FRAME_HEADER_BYTES, 'latin1');
  noMagic.writeUInt32LE(crc32c(noMagic.subarray(8)), 4);
  const bad = decodeFrame(noMagic, objectLimits);
  t.ok(isFrameError(bad) && bad.error === 'BAD_PAYLOAD' && /DKVP/.test(bad.message));
});

t.test('large byte fields are referenced, not copied, when encoding', async (t) => {
  const value = Buffer.alloc(1024 * 1024, 0x5a);
  const chunks = encodeFrame('response', 9, { type: 'reply', resp: value });
  t.ok(chunks.includes(value), 'the 1 MiB reply is one of the chunks, by reference');
  t.equal(chunks.reduce((n, c) => n + c.length, 0), FRAME_HEADER_BYTES + 4 + value.length);
  const args = [Buffer.from('SET'), Buffer.from('k'), value];
  t.ok(encodeFrame('request', 1, { type: 'forward', args, resp3: false, r: 2, w: 2 }).includes(value));
  // And the frame still decodes to the same bytes.
  const f = decodeFrame(Buffer.concat(chunks), objectLimits) as { message: { resp: Buffer } };
  t.ok(f.message.resp.equals(value));
});

t.test('decoding: small fields are copied out of the frame, large ones are views of it', async (t) => {
  const big = Buffer.alloc(64 * 1024, 0x11);
  const frame = encodeFrameBuffer('request', 3, { type: 'scanPage', cursor: 1, keys: [Buffer.from('small'), big] });
  const f = decodeFrame(frame, objectLimits) as { message: { keys: Buffer[] } };
  const [small, large] = f.message.keys as [Buffer, Buffer];
  t.not(small.buffer, frame.buffer, 'a small key does not pin the frame (or the socket read it came in)');
  t.equal(large.buffer, frame.buffer, 'a large value is not copied');
  frame.fill(0);
  t.equal(small.toString(), 'small', 'the small key survives reuse of the frame bytes');
});

t.test('messages that break the types are refused at encode time (a caller bug)', async (t) => {
  t.throws(() => encodeFrame('request', 1, { type: 'gossip', from: 'not-hex', members: [] }), TypeError);
  t.throws(() => encodeFrame('request', 1, { type: 'gossip', from: nodeId(0xabcdef).toUpperCase(), members: [] }), TypeError);
  t.throws(() => encodeFrame('request', 1, { type: 'scan', cursor: -1, count: 1 }), TypeError);
  t.throws(() => encodeFrame('request', 1, { type: 'scan', cursor: 2 ** 53, count: 1 }), TypeError);
  t.throws(() => encodeFrame('request', 2 ** 32, { type: 'ack' }), TypeError);
  t.throws(() => encodeFrame('request', 1, { type: 'nope' } as unknown as PeerMessage), TypeError);
});

/** A stream of every message and handshake step, with known frames. */
function sampleStream(): { stream: Buffer; frames: Buffer[] } {
  const frames: Buffer[] = handshakes.map((hs) => encodeHandshake(hs));
  sampleMessages().forEach((m, i) => frames.push(encodeFrameBuffer(kinds[i % 3]!, i % 3 === 2 ? 0 : i + 1, m)));
  return { stream: Buffer.concat(frames), frames };
}

function okFrames(results: Array<Frame | FrameError>): Frame[] {
  return results.filter((f): f is Frame => !isFrameError(f));
}

t.test('the decoder gives the same frames whatever the split', async (t) => {
  const { stream, frames } = sampleStream();
  const expected = frames.map((f) => decodeFrame(f, objectLimits));
  const badSplits: number[] = [];
  for (let i = 0; i <= stream.length; i++) {
    if (!isDeepStrictEqual(feed([stream.subarray(0, i), stream.subarray(i)]), expected)) badSplits.push(i);
  }
  t.same(badSplits, [], `all ${stream.length + 1} two-way splits decode identically`);
  t.same(feed([...stream].map((b) => Buffer.from([b]))), expected, 'one byte at a time');
  const rnd = mulberry32(1);
  const badRounds: number[] = [];
  for (let round = 0; round < 500; round++) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < stream.length; ) {
      const n = 1 + Math.floor(rnd() * 300);
      chunks.push(stream.subarray(at, at + n));
      at += n;
    }
    if (!isDeepStrictEqual(feed(chunks), expected)) badRounds.push(round);
  }
  t.same(badRounds, [], '500 random multi-way splits decode identically');
});

t.test('a large frame split into socket-sized chunks decodes once complete', async (t) => {
  const value = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < value.length; i += 4096) value[i] = i & 0xff;
  const buf = encodeFrameBuffer('request', 77, { type: 'reply', resp: value });
  const d = new FrameDecoder(peerFrameBytesMax, objectLimits);
  let frame: Frame | FrameError | null = null;
  for (let at = 0; at < buf.length; at += 65536) {
    t.equal(frame, null, 'nothing before the last chunk');
    d.push(buf.subarray(at, at + 65536));
    frame = d.next();
  }
  t.notOk(frame === null || isFrameError(frame));
  t.ok((frame as { message: { resp: Buffer } }).message.resp.equals(value), '8 MB intact');
  t.equal(d.bufferedBytes, 0);
});

t.test('frames large enough to be assembled as they arrive: any split, and damage caught', async (t) => {
  const value = Buffer.alloc(300 * 1024);
  for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
  const frames = [
    encodeFrameBuffer('request', 1, { type: 'count', n: 1 }),
    encodeFrameBuffer('response', 2, { type: 'reply', resp: value }),
    encodeFrameBuffer('request', 3, { type: 'count', n: 3 }),
  ];
  const stream = Buffer.concat(frames);
  const expected = frames.map((f) => decodeFrame(f, objectLimits));
  const bigStart = frames[0]!.length;
  const bigEnd = bigStart + frames[1]!.length;
  // Splits around every boundary of the big frame, and every 997th byte inside it.
  const points = new Set<number>();
  for (const edge of [0, bigStart, bigStart + 4, bigStart + 8, bigStart + 14, bigEnd, stream.length]) {
    for (let d = -20; d <= 20; d++) if (edge + d >= 0 && edge + d <= stream.length) points.add(edge + d);
  }
  for (let i = 0; i < stream.length; i += 997) points.add(i);
  const bad: number[] = [];
  for (const i of points) {
    if (!isDeepStrictEqual(feed([stream.subarray(0, i), stream.subarray(i)]), expected)) bad.push(i);
    // Three pieces: the middle one in 1000-byte chunks, like socket reads.
    const chunks = [stream.subarray(0, i)];
    for (let at = i; at < stream.length; at += 1000) chunks.push(stream.subarray(at, at + 1000));
    if (!isDeepStrictEqual(feed(chunks), expected)) bad.push(-i);
  }
  t.same(bad, [], `${points.size} split points decode identically`);

  // A flipped bit anywhere after the big frame's length field is a CRC error, however the bytes arrive.
  const rnd = mulberry32(3);
  const problems: string[] = [];
  for (let k = 0; k < 200; k++) {
    const at = bigStart + 4 + Math.floor(rnd() * (frames[1]!.length - 4));
    const damaged = Buffer.from(stream);
    damaged[at]! ^= 1 << Math.floor(rnd() * 8);
    const chunks: Buffer[] = [];
    for (let p = 0; p < damaged.length; p += 4096) chunks.push(damaged.subarray(p, p + 4096));
    const got = feed(chunks);
    if (!isDeepStrictEqual(okFrames(got), [expected[0]])) problems.push(`${at}: damaged frame decoded`);
    const last = got[got.length - 1];
    if (!(last && isFrameError(last) && last.error === 'BAD_CRC')) problems.push(`${at}: no CRC error`);
  }
  t.same(problems, [], '200 random flips inside the assembled frame are all CRC errors');
});

t.test('every single-bit flip is detected; frames before it survive', async (t) => {
  const { stream, frames } = sampleStream();
  const starts: number[] = [];
  frames.reduce((at, f) => (starts.push(at), at + f.length), 0);
  const originals = frames.map((f) => decodeFrame(f, objectLimits) as Frame);
  let checked = 0;
  const problems: string[] = [];
  for (let byte = 0; byte < stream.length; byte++) {
    let frameIndex = 0;
    while (frameIndex + 1 < starts.length && starts[frameIndex + 1]! <= byte) frameIndex++;
    const offsetInFrame = byte - starts[frameIndex]!;
    for (let bit = 0; bit < 8; bit++) {
      const bad = Buffer.from(stream);
      bad[byte]! ^= 1 << bit;
      const got = feed([bad]);
      const ok = okFrames(got);
      // No damaged frame is ever returned as good: what decodes is the frames before the flip.
      if (!isDeepStrictEqual(ok, originals.slice(0, frameIndex))) problems.push(`byte ${byte} bit ${bit}: damaged frame decoded`);
      if (offsetInFrame >= 4) {
        const err = got[got.length - 1];
        if (!(err && isFrameError(err) && err.error === 'BAD_CRC' && err.fatal)) problems.push(`byte ${byte} bit ${bit}: no CRC error`);
      }
      checked++;
    }
  }
  t.same(problems, [], `${checked} single-bit flips: none decodes as a frame, every one past the length field is BAD_CRC`);
});

t.test('malformed frames come back as error values', async (t) => {
  const good = encodeFrameBuffer('request', 5, { type: 'ack' });

  // Payload cut short, with a valid CRC: non-fatal, says which request it was.
  const truncated = rawFrame(1, 42, MessageTypeCode.readBatch, Buffer.from([1, 0, 0, 0, 100, 0, 0, 0, 1, 2, 3]));
  let got = feed([Buffer.concat([truncated, good])]);
  t.match(got[0], { error: 'BAD_PAYLOAD', fatal: false, kind: 'request', id: 42 });
  t.match((got[0] as FrameError).message, /truncated/);
  t.match(got[1], { kind: 'request', id: 5, message: { type: 'ack' } }, 'the stream stays in sync after a non-fatal error');

  // Trailing bytes, an impossible bool, a count larger than the payload, a bad object.
  const cases: Array<[string, Buffer]> = [
    ['trailing bytes', rawFrame(1, 1, MessageTypeCode.ack, Buffer.from([0]))],
    ['bool 2', rawFrame(1, 1, MessageTypeCode.readBatch, Buffer.from([1, 0, 0, 0, 1, 0, 0, 0, 0x61, 2]))],
    ['empty batch', rawFrame(1, 1, MessageTypeCode.readBatch, Buffer.from([0, 0, 0, 0]))],
    ['result status 4', rawFrame(2, 1, MessageTypeCode.objects, Buffer.from([1, 0, 0, 0, 4]))],
    ['huge count', rawFrame(1, 1, MessageTypeCode.forward, Buffer.from([0, 2, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]))],
    ['u64 above 2^53', rawFrame(1, 1, MessageTypeCode.count, Buffer.from([0, 0, 0, 0, 0, 0, 0x20, 0]))],
    ['corrupt object', rawFrame(2, 1, MessageTypeCode.objects, Buffer.from([1, 0, 0, 0, 1, 3, 0, 0, 0, 9, 9, 9]))],
    ['member state 7', (() => {
      const f = encodeFrameBuffer('request', 1, sampleMessages()[0]!);
      const p = Buffer.from(f.subarray(FRAME_HEADER_BYTES));
      const stateAt = 20 + 4 + 20 + 4 + '10.0.0.7'.length + 2 + 2 + 8 + 8;
      p[stateAt] = 7;
      return rawFrame(1, 1, MessageTypeCode.gossip, p);
    })()],
  ];
  for (const [name, frame] of cases) {
    const r = decodeFrame(frame, objectLimits);
    t.match(r, { error: 'BAD_PAYLOAD', fatal: false }, name);
  }

  // Unknown message type: intact frame, non-fatal, so the request can be answered.
  got = feed([rawFrame(1, 9, 200, Buffer.alloc(0))]);
  t.match(got[0], { error: 'UNKNOWN_TYPE', fatal: false, kind: 'request', id: 9 });

  // Unknown frame kind: fatal.
  got = feed([rawFrame(9, 9, 1, Buffer.alloc(0)), good]);
  t.match(got, [{ error: 'UNKNOWN_KIND', fatal: true }]);

  // Length below the header, and above the limit: fatal, the latter as soon as 4 bytes are in.
  const short = Buffer.alloc(14);
  short.writeUInt32LE(3, 0);
  t.match(feed([short]), [{ error: 'FRAME_TOO_SHORT', fatal: true }]);
  const d = new FrameDecoder(4096, objectLimits);
  d.push(Buffer.from([0x01, 0x00, 0x00, 0x40]));
  t.match(d.next(), { error: 'FRAME_TOO_LARGE', fatal: true }, 'refused before the body arrives');
  t.match(d.next(), { error: 'FRAME_TOO_LARGE' }, 'errors are sticky');
  d.push(good);
  t.equal(d.bufferedBytes, 0, 'nothing is buffered after a fatal error');

  // A Redis command sent to the cluster port reads as a giant length.
  for (const text of ['PING\r\n', '*1\r\n$4\r\nPING\r\n', 'GET /health HTTP/1.1\r\n\r\n']) {
    t.match(feed([Buffer.from(text)], 4096), [{ error: 'FRAME_TOO_LARGE', fatal: true }], JSON.stringify(text));
  }
});

t.test('random garbage never makes the decoder throw', async (t) => {
  const rnd = mulberry32(7);
  const { stream } = sampleStream();
  let errors = 0;
  let frames = 0;
  for (let i = 0; i < 20_000; i++) {
    let input: Buffer;
    if (i % 2 === 0) {
      input = Buffer.alloc(Math.floor(rnd() * 200));
      for (let j = 0; j < input.length; j++) input[j] = Math.floor(rnd() * 256);
    } else {
      // Mostly valid stream with a few random bytes overwritten: reaches deeper into the payload decoder.
      input = Buffer.from(stream.subarray(0, Math.floor(rnd() * stream.length)));
      for (let k = 0; k < 3; k++) input[Math.floor(rnd() * input.length)] = Math.floor(rnd() * 256);
    }
    const chunks: Buffer[] = [];
    for (let at = 0; at < input.length; ) {
      const n = 1 + Math.floor(rnd() * 64);
      chunks.push(input.subarray(at, at + n));
      at += n;
    }
    for (const f of feed(chunks, 4096)) {
      if (isFrameError(f)) errors++;
      else frames++;
    }
  }
  t.ok(errors > 1000, `errors reported as values (${errors})`);
  t.ok(frames > 0, `valid prefixes still decode (${frames})`);
});

t.test('handshake proofs are bound to secret, role, nonces and ids', async (t) => {
  const secret = Buffer.from('s3cret');
  const nD = Buffer.alloc(32, 1);
  const nA = Buffer.alloc(32, 2);
  const base = handshakeProof(secret, 'dialer', 1, nD, nA, nodeId(1), nodeId(2));
  t.equal(base.length, 32);
  t.ok(proofMatches(base, handshakeProof(secret, 'dialer', 1, nD, nA, nodeId(1), nodeId(2))), 'deterministic');
  const variants = [
    handshakeProof(Buffer.from('s3creT'), 'dialer', 1, nD, nA, nodeId(1), nodeId(2)),
    handshakeProof(secret, 'acceptor', 1, nD, nA, nodeId(1), nodeId(2)),
    handshakeProof(secret, 'dialer', 2, nD, nA, nodeId(1), nodeId(2)),
    handshakeProof(secret, 'dialer', 1, nA, nD, nodeId(1), nodeId(2)),
    handshakeProof(secret, 'dialer', 1, nD, nA, nodeId(2), nodeId(1)),
  ];
  for (const v of variants) t.notOk(proofMatches(base, v));
  t.notOk(proofMatches(base, null));
  t.notOk(proofMatches(base, base.subarray(0, 31)));
  t.notOk(encodeHandshake({ step: 'hello', version: 1, auth: true, nodeId: nodeId(1), nonce: nD }).includes(secret), 'the secret is never on the wire');
});
