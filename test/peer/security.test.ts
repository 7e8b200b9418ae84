// Who may talk on the cluster port, over real sockets: with a cluster secret
// both sides must prove it (and the secret never crosses the wire); a wrong or
// missing secret is refused and logged with the remote address; garbage, a
// Redis command, silence, oversized or out-of-order frames close that one
// connection while the node keeps serving its real peers.

import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { encodeFrameBuffer, encodeHandshake, FRAME_HEADER_BYTES, isFrameError, PEER_FORMAT_VERSION } from '../../protocol/peer.js';
import { introduce, nodeId, RawPeer, settle, startNode, waitFor, type Node } from './helpers.js';

/** The node still answers a real peer. */
async function stillServes(t: Test, from: Node, to: Node): Promise<void> {
  t.same(await from.transport.request(to.id, { type: 'count', n: 99 }, 2000), { type: 'count', n: 99 }, 'the node keeps serving its real peers');
}

/** A warning about a refused connection that names where it came from. */
function refusedFrom(node: Node, raw: RawPeer | null, pattern: RegExp): boolean {
  const remote = raw ? `127.0.0.1:${raw.localPort}` : '127.0.0.1:';
  return node.log.warnings().some((l) => pattern.test(`${l.msg} ${String(l.err ?? l.detail ?? '')}`) && String(l.remote).startsWith(remote));
}

t.test('matching secrets: connected, and the secret never crosses the wire', async (t) => {
  const secret = 'correct horse battery staple';
  const a = await startNode(t, 1, { secret });
  const b = await startNode(t, 2, { secret });
  // A recording proxy in front of B.
  const seen: Buffer[] = [];
  const proxy = net.createServer((client) => {
    const upstream = net.connect(b.port, '127.0.0.1');
    client.on('data', (c: Buffer) => (seen.push(c), upstream.write(c)));
    upstream.on('data', (c: Buffer) => (seen.push(c), client.write(c)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => void proxy.close());
  a.transport.setAddress(b.id, '127.0.0.1', (proxy.address() as net.AddressInfo).port);
  b.transport.setAddress(a.id, '127.0.0.1', a.port);

  t.same(await a.transport.request(b.id, { type: 'ack' }, 2000), { type: 'ack' });
  t.same(await b.transport.request(a.id, { type: 'ack' }, 2000), { type: 'ack' });
  const wire = Buffer.concat(seen);
  t.ok(wire.length > 100, `recorded ${wire.length} bytes of handshake and traffic`);
  t.equal(wire.indexOf(secret), -1, 'the secret is not in the bytes exchanged');
  t.same(a.log.warnings(), []);
  t.same(b.log.warnings(), []);
});

t.test('a wrong secret is refused on both sides and logged with the remote address', async (t) => {
  const a = await startNode(t, 1, { secret: 'secret-one' });
  const b = await startNode(t, 2, { secret: 'secret-two' });
  const c = await startNode(t, 3, { secret: 'secret-two' });
  introduce(a, b, c);
  const r = await settle(a.transport.request(b.id, { type: 'ack' }, 2000));
  t.equal(!r.ok && r.error.code, 'HANDSHAKE');
  t.match(!r.ok && r.error.message, /cluster secret/);
  t.ok(await waitFor(() => refusedFrom(b, null, /handshake failed.*wrong cluster secret/), 2000), 'B warns, naming the remote address');
  const again = await settle(a.transport.request(b.id, { type: 'ack' }, 2000));
  t.equal(!again.ok && again.error.code, 'UNREACHABLE', 'later requests fail fast');
  t.match(!again.ok && again.error.message, /cluster secret/, '...and say why');
  await stillServes(t, c, b);

  // A dialer that skips checking the acceptor's proof and sends a made-up one of its own.
  const raw = await RawPeer.connect(b.port);
  t.teardown(() => raw.close());
  raw.write(encodeHandshake({ step: 'hello', version: PEER_FORMAT_VERSION, auth: true, nodeId: nodeId(66), nonce: randomBytes(32) }));
  const ack = await raw.next();
  t.match(ack, { kind: 'handshake', handshake: { step: 'helloAck', auth: true } });
  raw.write(encodeHandshake({ step: 'proof', proof: randomBytes(32) }));
  t.match(await raw.next(), { kind: 'handshake', handshake: { step: 'refuse', reason: 'wrong cluster secret' } });
  t.equal(await raw.next(), 'closed', 'then B closes the connection');
  t.ok(refusedFrom(b, raw, /failed to prove the cluster secret/), 'and warns with the remote address');
  await stillServes(t, c, b);
});

t.test('a secret on one side only is refused, whichever side has it', async (t) => {
  const withSecret = await startNode(t, 1, { secret: 'only-here' });
  const without = await startNode(t, 2);
  introduce(withSecret, without);
  const r1 = await settle(withSecret.transport.request(without.id, { type: 'ack' }, 2000));
  t.equal(!r1.ok && r1.error.code, 'HANDSHAKE');
  t.match(!r1.ok && r1.error.message, /no cluster secret/);
  const r2 = await settle(without.transport.request(withSecret.id, { type: 'ack' }, 2000));
  t.equal(!r2.ok && r2.error.code, 'HANDSHAKE');
  t.match(!r2.ok && r2.error.message, /requires the cluster secret/);
  t.ok(await waitFor(() => refusedFrom(withSecret, null, /handshake failed.*has no cluster secret but this node requires one/), 2000));
});

t.test('garbage, Redis and HTTP on the cluster port: refused and logged; the node keeps serving', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  const inputs: Array<[string, Buffer]> = [
    ['random bytes', randomBytes(512)],
    ['redis inline PING', Buffer.from('PING\r\n')],
    ['redis multibulk SET', Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n')],
    ['HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['a 1 MiB length before the handshake', Buffer.from([0, 0, 0x10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])],
  ];
  for (const [name, bytes] of inputs) {
    const raw = await RawPeer.connect(b.port);
    t.teardown(() => raw.close());
    raw.write(bytes);
    const f = await raw.next(2000);
    t.equal(f, 'closed', `${name}: connection closed`);
    t.ok(await waitFor(() => refusedFrom(b, raw, /bad frame|handshake failed/), 1000), `${name}: warning names the remote address`);
  }
  await stillServes(t, a, b);
  t.equal(b.transport.stats().handshakeFailures, inputs.length);
});

t.test('out-of-order frames before the handshake ends are refused', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);

  // A data frame first.
  const raw1 = await RawPeer.connect(b.port);
  t.teardown(() => raw1.close());
  raw1.write(encodeFrameBuffer('request', 1, { type: 'dbsize' }));
  t.equal(await raw1.next(), 'closed', 'a request before hello: closed');
  t.ok(await waitFor(() => refusedFrom(b, raw1, /before the handshake/), 1000));

  // hello, then a data frame instead of the proof.
  const raw2 = await RawPeer.connect(b.port);
  t.teardown(() => raw2.close());
  raw2.write(encodeHandshake({ step: 'hello', version: PEER_FORMAT_VERSION, auth: false, nodeId: nodeId(77), nonce: randomBytes(32) }));
  t.match(await raw2.next(), { kind: 'handshake', handshake: { step: 'helloAck' } });
  raw2.write(encodeFrameBuffer('request', 1, { type: 'flushAll' }));
  t.equal(await raw2.next(), 'closed', 'a request before the proof: closed');

  // A hello claiming B's own id.
  const raw3 = await RawPeer.connect(b.port);
  t.teardown(() => raw3.close());
  raw3.write(encodeHandshake({ step: 'hello', version: PEER_FORMAT_VERSION, auth: false, nodeId: b.id, nonce: randomBytes(32) }));
  await raw3.next();
  raw3.write(encodeHandshake({ step: 'proof', proof: null }));
  t.match(await raw3.next(), { kind: 'handshake', handshake: { step: 'refuse' } }, 'claiming our own id: refused');

  // A version from before this format existed.
  const raw4 = await RawPeer.connect(b.port);
  t.teardown(() => raw4.close());
  raw4.write(encodeHandshake({ step: 'hello', version: 0, auth: false, nodeId: nodeId(78), nonce: randomBytes(32) }));
  t.match(await raw4.next(), { kind: 'handshake', handshake: { step: 'refuse', reason: /version 0 is not supported/ } });
  t.equal(await raw4.next(), 'closed');
  await stillServes(t, a, b);
});

t.test('a silent connection is closed at the handshake timeout; too many at once are refused', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2, { limits: { handshakeTimeoutMs: 1000, handshakesPendingMax: 3 } });
  introduce(a, b);
  const silent = await Promise.all([1, 2, 3, 4, 5].map(() => RawPeer.connect(b.port)));
  t.teardown(() => silent.forEach((r) => r.close()));
  // The two beyond the limit are closed on arrival; the others at the timeout.
  t.ok(await waitFor(() => silent.filter((r) => r.closed).length === 2, 500), 'two over the limit closed at once');
  t.equal(silent.filter((r) => r.closed).length, 2, 'the others wait for their timeout');
  t.ok(await waitFor(() => silent.every((r) => r.closed), 3000), 'the rest closed at the handshake timeout');
  t.ok(refusedFrom(b, silent[0]!, /did not finish within 1000 ms/), 'timeouts logged with the remote address');
  t.ok(b.log.warnings().some((l) => /too many peer handshakes/.test(l.msg)));
  await stillServes(t, a, b);
});

t.test('after the handshake: a bad CRC closes the connection, an unknown message type gets an error answer', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);

  const raw = await RawPeer.connect(b.port);
  t.teardown(() => raw.close());
  t.equal(await raw.handshake(nodeId(9)), b.id);
  // Unknown type, valid CRC: answered with an error, connection kept.
  const unknown = Buffer.alloc(FRAME_HEADER_BYTES);
  unknown.writeUInt32LE(10, 0);
  unknown[8] = 1;
  unknown.writeUInt32LE(5, 9);
  unknown[13] = 250;
  const { crc32c } = await import('@node-rs/crc32');
  unknown.writeUInt32LE(crc32c(unknown.subarray(8)), 4);
  raw.write(unknown);
  t.match(await raw.next(), { kind: 'response', id: 5, message: { type: 'error', code: 'UNKNOWN_TYPE' } });
  raw.write(encodeFrameBuffer('request', 6, { type: 'count', n: 6 }));
  t.match(await raw.next(), { kind: 'response', id: 6, message: { type: 'count', n: 6 } }, 'the connection still works');

  // A flipped bit: the frame fails its CRC and the connection is closed.
  const damaged = encodeFrameBuffer('request', 7, { type: 'count', n: 7 });
  damaged[damaged.length - 1]! ^= 0x10;
  raw.write(damaged);
  const f = await raw.next();
  t.equal(f, 'closed', 'closed after a bad CRC');
  t.ok(refusedFrom(b, raw, /bad frame/), 'logged with the remote address');
  t.ok(b.log.warnings().some((l) => l.error === 'BAD_CRC'));
  await stillServes(t, a, b);
  t.notOk(typeof f !== 'string' && isFrameError(f));
});
