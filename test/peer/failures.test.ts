// Peers that die and come back, over real sockets: in-flight requests reject
// at once with UNREACHABLE, later requests fail fast while the peer is down,
// a background reconnect (exponential backoff, full jitter) finds it again,
// and requests succeed once it is back on the same port. Once with a transport
// closed in-process, once with a real process killed by SIGKILL.

import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { PeerMessage } from '../../src/cluster/types.js';
import { backoffDelayMs } from '../../src/peer/backoff.js';
import { peerReconnectBaseMs, peerReconnectCapMs } from '../../src/constants.js';
import { introduce, mulberry32, nodeId, settle, startNode, waitFor } from './helpers.js';

const hang: PeerMessage = { type: 'readBatch', items: [{ key: Buffer.from('hang'), versionOnly: false }] };

t.test('backoff: full jitter under an exponential ceiling capped at peerReconnectCapMs', async (t) => {
  const rnd = mulberry32(9);
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(peerReconnectCapMs, peerReconnectBaseMs * 2 ** attempt);
    const delays = Array.from({ length: 2000 }, () => backoffDelayMs(attempt, peerReconnectBaseMs, peerReconnectCapMs, rnd));
    const max = Math.max(...delays);
    const min = Math.min(...delays);
    if (!t.ok(min >= 0 && max < ceiling && max > ceiling * 0.9, `attempt ${attempt}: delays in [0, ${ceiling}) spread over the range`, { diagnostic: true, min, max })) break;
  }
  t.equal(backoffDelayMs(1e6, 50, 2000, () => 0.999), 1998, 'a huge attempt count still gives a finite delay under the cap');
  t.equal(backoffDelayMs(0, 50, 2000, () => 0), 0);
});

t.test('peer closed: in-flight requests reject at once, later ones fail fast, requests work again after it returns', async (t) => {
  const a = await startNode(t, 1);
  let b = await startNode(t, 2);
  introduce(a, b);
  b.transport.setHandler((_from, msg) => (msg.type === 'readBatch' ? new Promise(() => {}) : msg));
  t.same(await a.transport.request(b.id, { type: 'ack' }, 2000), { type: 'ack' });

  const inflight = Array.from({ length: 500 }, () => settle(a.transport.request(b.id, hang, 30_000)));
  t.ok(await waitFor(() => a.transport.peerStats(b.id)!.inflight === 500, 2000));
  const killedAt = performance.now();
  await b.transport.close();
  const results = await Promise.all(inflight);
  const rejectMs = performance.now() - killedAt;
  t.ok(results.every((r) => !r.ok && r.error.code === 'UNREACHABLE'), 'all 500 rejected with UNREACHABLE');
  t.ok(rejectMs < 1000, `within ${rejectMs.toFixed(0)} ms of the close (their timeout was 30 s)`);
  t.equal(a.transport.peerStats(b.id)!.inflight, 0);

  // While it is down, requests fail fast instead of waiting for their timeout.
  let fast = 0;
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    const r = await settle(a.transport.request(b.id, { type: 'ack' }, 5000));
    if (!r.ok && r.error.code === 'UNREACHABLE' && performance.now() - started < 50) fast++;
  }
  t.equal(fast, 20, '20 requests while down: each UNREACHABLE in under 50 ms');
  const down = a.transport.peerStats(b.id)!;
  t.equal(down.connected, false);
  t.equal(down.state, 'backoff');
  t.ok(down.lastError, `last error shown: ${down.lastError}`);
  t.ok(await waitFor(() => a.transport.peerStats(b.id)!.connectFailures >= 2, 3000), 'reconnect attempts continue in the background');

  // Back on the same port: a reconnect finds it within the backoff cap.
  b = await startNode(t, 2, { port: b.port });
  const backAt = performance.now();
  t.ok(
    await waitFor(async () => (await settle(a.transport.request(b.id, { type: 'ack' }, 1000))).ok, peerReconnectCapMs + 2000),
    'requests succeed again',
  );
  t.comment(`reconnected ${(performance.now() - backAt).toFixed(0)} ms after the peer came back`);
  const up = a.transport.peerStats(b.id)!;
  t.equal(up.connected, true);
  t.equal(up.reconnects, 1, 'one reconnect counted');
  t.ok(a.log.warnings().some((l) => /lost the connection/.test(l.msg)), 'the drop is logged');
});

t.test('an address nobody listens on: UNREACHABLE, then fast failures while retrying in the background', async (t) => {
  const a = await startNode(t, 1);
  const ghost = await startNode(t, 50);
  const port = ghost.port;
  await ghost.transport.close(); // a port that was just free: connection refused
  a.transport.setAddress(nodeId(50), '127.0.0.1', port);
  const first = await settle(a.transport.request(nodeId(50), { type: 'ack' }, 2000));
  t.equal(!first.ok && first.error.code, 'UNREACHABLE');
  t.match(!first.ok && first.error.message, /ECONNREFUSED/);
  const started = performance.now();
  const second = await settle(a.transport.request(nodeId(50), { type: 'ack' }, 2000));
  t.equal(!second.ok && second.error.code, 'UNREACHABLE');
  t.ok(performance.now() - started < 50, 'the second fails at once');
  t.equal(a.log.warnings().filter((l) => /cannot connect/.test(l.msg)).length, 1, 'warned once, not at every retry');
});

/** Starts fixture-node.js and resolves when it listens. */
function spawnNode(n: number, port: number): Promise<{ child: ChildProcess; port: number }> {
  const script = fileURLToPath(new URL('./fixture-node.js', import.meta.url));
  const child = spawn(process.execPath, [script, String(n), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`fixture node exited with ${code}: ${out}`)));
  });
}

t.test('a peer process killed with SIGKILL: in-flight requests reject fast; a restarted process is reached again', async (t) => {
  const a = await startNode(t, 1);
  const first = await spawnNode(3, 0);
  t.teardown(() => void first.child.kill('SIGKILL'));
  a.transport.setAddress(nodeId(3), '127.0.0.1', first.port);
  t.same(await a.transport.request(nodeId(3), { type: 'count', n: 7 }, 5000), { type: 'count', n: 7 });

  const inflight = Array.from({ length: 1000 }, () => settle(a.transport.request(nodeId(3), hang, 30_000)));
  t.ok(await waitFor(() => a.transport.peerStats(nodeId(3))!.inflight === 1000, 2000));
  const killedAt = performance.now();
  first.child.kill('SIGKILL');
  const results = await Promise.all(inflight);
  const ms = performance.now() - killedAt;
  t.ok(results.every((r) => !r.ok && r.error.code === 'UNREACHABLE'), 'all 1000 rejected with UNREACHABLE');
  t.ok(ms < 2000, `within ${ms.toFixed(0)} ms of the kill`);
  const started = performance.now();
  const r = await settle(a.transport.request(nodeId(3), { type: 'ack' }, 5000));
  t.equal(!r.ok && r.error.code, 'UNREACHABLE');
  t.ok(performance.now() - started < 50, 'a request while it is down fails fast');

  const second = await spawnNode(3, first.port);
  t.teardown(() => void second.child.kill('SIGKILL'));
  t.ok(await waitFor(async () => (await settle(a.transport.request(nodeId(3), { type: 'ack' }, 1000))).ok, peerReconnectCapMs + 3000), 'the restarted node answers');
  t.same(await a.transport.request(nodeId(3), { type: 'count', n: 8 }, 5000), { type: 'count', n: 8 });
});

t.test('a peer that dials us is known to be back: the backoff is cut short', async (t) => {
  // Long backoff on A, so only the shortcut can explain a quick reconnect.
  const a = await startNode(t, 1, { limits: { reconnectBaseMs: 10_000, reconnectCapMs: 10_000 } });
  let b = await startNode(t, 2);
  introduce(a, b);
  t.same(await a.transport.request(b.id, { type: 'ack' }, 2000), { type: 'ack' });
  await b.transport.close();
  t.ok(await waitFor(() => a.transport.peerStats(b.id)!.state === 'backoff', 2000));
  b = await startNode(t, 2, { port: b.port });
  b.transport.setAddress(a.id, '127.0.0.1', a.port);
  const backAt = performance.now();
  t.same(await b.transport.request(a.id, { type: 'ack' }, 2000), { type: 'ack' }, 'B reaches A');
  t.ok(await waitFor(() => a.transport.peerStats(b.id)!.connected, 1000), 'A reconnects to B at once');
  t.ok(performance.now() - backAt < 1000, `within ${(performance.now() - backAt).toFixed(0)} ms, not the 10 s backoff`);
});

t.test('a node that moves to a new port: setAddress drops the old connection and dials the new one', async (t) => {
  const a = await startNode(t, 1);
  const b1 = await startNode(t, 2);
  introduce(a, b1);
  b1.transport.setHandler((_from, msg) => (msg.type === 'readBatch' ? new Promise(() => {}) : { type: 'count', n: 1 }));
  t.same(await a.transport.request(b1.id, { type: 'ack' }, 2000), { type: 'count', n: 1 });
  const stuck = settle(a.transport.request(b1.id, hang, 30_000));
  const b2 = await startNode(t, 2); // same id, another port (a restart elsewhere)
  b2.transport.setHandler(() => ({ type: 'count', n: 2 }));
  a.transport.setAddress(b2.id, '127.0.0.1', b2.port);
  const old = await stuck;
  t.equal(!old.ok && old.error.code, 'UNREACHABLE', 'the request on the old connection is failed, not left hanging');
  t.same(await a.transport.request(b2.id, { type: 'ack' }, 2000), { type: 'count', n: 2 }, 'answers come from the new address');
  t.equal(a.transport.peerStats(b2.id)!.port, b2.port);
});

t.test('removePeer and close: pending requests are rejected, nothing reconnects', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  const c = await startNode(t, 3);
  introduce(a, b, c);
  b.transport.setHandler(() => new Promise(() => {}));
  c.transport.setHandler(() => new Promise(() => {}));
  await settle(a.transport.request(b.id, { type: 'ack' }, 50)); // connected (the answer never comes)
  const toB = settle(a.transport.request(b.id, hang, 30_000));
  a.transport.removePeer(b.id);
  const r = await toB;
  t.equal(!r.ok && r.error.code, 'UNREACHABLE');
  t.equal(a.transport.peerStats(b.id), undefined, 'forgotten');
  const unknown = await settle(a.transport.request(b.id, { type: 'ack' }, 100));
  t.equal(!unknown.ok && unknown.error.code, 'UNKNOWN_PEER');

  const toC = settle(a.transport.request(c.id, hang, 30_000));
  await a.transport.close();
  const closed = await toC;
  t.equal(!closed.ok && closed.error.code, 'CLOSED', 'in-flight requests reject with CLOSED at close()');
  const after = await settle(a.transport.request(c.id, { type: 'ack' }, 100));
  t.equal(!after.ok && after.error.code, 'CLOSED');
  t.ok(await waitFor(() => c.transport.stats().inboundConnections === 0, 2000), 'the connection to C is gone');
});

t.test('a cluster port that accepts and never answers: the handshake times out', async (t) => {
  const sockets: net.Socket[] = [];
  const mute = net.createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    sockets.forEach((s) => s.destroy());
    mute.close();
  });
  const a = await startNode(t, 1, { limits: { handshakeTimeoutMs: 200 } });
  a.transport.setAddress(nodeId(5), '127.0.0.1', (mute.address() as net.AddressInfo).port);
  const started = performance.now();
  const r = await settle(a.transport.request(nodeId(5), { type: 'ack' }, 5000));
  const ms = performance.now() - started;
  t.equal(!r.ok && r.error.code, 'HANDSHAKE');
  t.match(!r.ok && r.error.message, /did not finish within 200 ms/);
  t.ok(ms < 1000, `failed after ${ms.toFixed(0)} ms`);
  const connect = await settle(a.transport.connectTo('127.0.0.1', (mute.address() as net.AddressInfo).port));
  t.equal(!connect.ok && connect.error.code, 'HANDSHAKE', 'connectTo fails the same way');
});
