// The peer transport over real sockets on 127.0.0.1: multiplexing thousands
// of concurrent requests between two and three nodes, coalesced writes,
// timeouts, the in-flight limit, handler failures, large payloads, one-way
// messages, CLUSTER MEET style connects, and read backpressure.

import t from 'tap';
import * as net from 'node:net';
import type { PeerMessage, WriteResult } from '../../src/cluster/types.js';
import { decodeObject, encodeObject } from '../../protocol/object.js';
import { encodeFrameBuffer, isFrameError, BATCH_ITEMS_MAX } from '../../protocol/peer.js';
import { peerInflightMax } from '../../src/constants.js';
import { PeerError } from '../../src/peer/index.js';
import { introduce, nodeId, objectLimits, RawPeer, sampleObject, settle, sleep, startNode, waitFor } from './helpers.js';

function decoded(encoded: Buffer) {
  const d = decodeObject(encoded, objectLimits);
  if (d.kind !== 'ok') throw new Error(d.reason);
  return d.object;
}

/** A handler whose answer names the request and who sent it, after an optional random delay. */
function namingHandler(delays: boolean) {
  return async (from: string, msg: PeerMessage): Promise<PeerMessage> => {
    if (msg.type !== 'readBatch') return { type: 'error', code: 'UNEXPECTED', message: msg.type };
    const key = msg.items[0]!.key.toString();
    if (delays && key.endsWith('7')) await sleep(Math.floor(Math.random() * 5)); // answers out of order
    return { type: 'reply', resp: Buffer.from(`${from}:${key}`) };
  };
}

t.test('two transports: 4096 concurrent requests each way (the in-flight limit), all answered and matched', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  a.transport.setHandler(namingHandler(true));
  b.transport.setHandler(namingHandler(true));
  introduce(a, b);
  const n = peerInflightMax;
  const ask = (from: typeof a, to: typeof b) =>
    Array.from({ length: n }, (_, i) => from.transport.request(to.id, { type: 'readBatch', items: [{ key: Buffer.from(`k${i}`), versionOnly: false }] }, 10_000));
  const [ab, ba] = await Promise.all([Promise.all(ask(a, b)), Promise.all(ask(b, a))]);
  const wrongAB = ab.filter((m, i) => m.type !== 'reply' || m.resp.toString() !== `${a.id}:k${i}`).length;
  const wrongBA = ba.filter((m, i) => m.type !== 'reply' || m.resp.toString() !== `${b.id}:k${i}`).length;
  t.equal(wrongAB, 0, `${n} answers A->B, each to its own request`);
  t.equal(wrongBA, 0, `${n} answers B->A, each to its own request`);
  t.equal(a.transport.peerStats(b.id)!.inflight, 0, 'nothing left in flight');
  t.equal(a.transport.stats().inboundConnections, 1, 'one connection per direction');
  t.same(a.log.warnings(), []);
});

t.test('three transports: all to all at once', async (t) => {
  const nodes = [await startNode(t, 1), await startNode(t, 2), await startNode(t, 3)];
  for (const x of nodes) x.transport.setHandler(namingHandler(true));
  introduce(...nodes);
  const n = 3000;
  const work: Array<Promise<boolean>> = [];
  for (const from of nodes) {
    for (const to of nodes) {
      if (from === to) continue;
      for (let i = 0; i < n; i++) {
        const key = `${to.id.slice(0, 4)}-${i}`;
        work.push(
          from.transport
            .request(to.id, { type: 'readBatch', items: [{ key: Buffer.from(key), versionOnly: true }] }, 10_000)
            .then((m) => m.type === 'reply' && m.resp.toString() === `${from.id}:${key}`),
        );
      }
    }
  }
  const results = await Promise.all(work);
  t.equal(results.filter(Boolean).length, 6 * n, `${6 * n} requests over 6 connections, all matched`);
});

t.test('frames written in one tick are coalesced into few socket writes', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  await a.transport.request(b.id, { type: 'ack' }, 5000); // connect first, so only the burst is counted

  // Count real socket writes process-wide during the burst, independent of the transport's own counter.
  let socketWrites = 0;
  const original = net.Socket.prototype.write;
  net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
    socketWrites++;
    return (original as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof original;
  const before = a.transport.peerStats(b.id)!.traffic;
  const n = 1000;
  let answers: PeerMessage[];
  try {
    answers = await Promise.all(Array.from({ length: n }, (_, i) => a.transport.request(b.id, { type: 'count', n: i }, 5000)));
  } finally {
    net.Socket.prototype.write = original;
  }
  const after = a.transport.peerStats(b.id)!.traffic;
  t.same(answers.map((m) => (m.type === 'count' ? m.n : -1)), Array.from({ length: n }, (_, i) => i), 'all echoed back in order of request');
  const frames = after.framesSent - before.framesSent;
  const writes = after.writes - before.writes;
  t.equal(frames, n, `${n} request frames`);
  t.ok(writes <= 2, `A sent them in ${writes} socket write(s)`);
  t.ok(socketWrites <= 20, `${socketWrites} socket.write calls in the whole process for ${n} requests and ${n} answers`);
  t.comment(`coalescing: ${n} requests -> ${writes} write(s) by the requester; ${socketWrites} socket writes in all (requests + answers)`);
});

t.test('throughput over one connection with 1000 requests in flight', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  const key = Buffer.from('user:1000');
  await a.transport.request(b.id, { type: 'ack' }, 5000);
  const total = 200_000;
  const inflight = 1000;
  let sent = 0;
  let done = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (sent >= total) return;
      sent++;
      a.transport.request(b.id, { type: 'readBatch', items: [{ key, versionOnly: false }] }, 10_000).then(() => {
        if (++done === total) resolve();
        else next();
      }, reject);
    };
    for (let i = 0; i < inflight; i++) next();
  });
  const seconds = (performance.now() - started) / 1000;
  const traffic = a.transport.peerStats(b.id)!.traffic;
  t.equal(done, total);
  t.comment(
    `throughput: ${Math.round(total / seconds).toLocaleString('en')} requests/s with ${inflight} in flight over one connection; ` +
      `${traffic.framesSent.toLocaleString('en')} frames in ${traffic.writes.toLocaleString('en')} writes (${(traffic.framesSent / traffic.writes).toFixed(1)} frames/write)`,
  );
  t.ok(traffic.writes < traffic.framesSent / 10, 'at least 10 frames per write under load');
});

t.test('a request without an answer times out; the late answer is ignored and logged at debug', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  b.transport.setHandler(async (_from, msg) => {
    if (msg.type === 'readBatch') await sleep(1000);
    return msg;
  });
  await a.transport.request(b.id, { type: 'ack' }, 5000);
  const started = performance.now();
  const r = await settle(a.transport.request(b.id, { type: 'readBatch', items: [{ key: Buffer.from('slow'), versionOnly: false }] }, 100));
  const ms = performance.now() - started;
  t.equal(!r.ok && r.error.code, 'TIMEOUT');
  t.ok(ms >= 95 && ms < 900, `rejected after ${ms.toFixed(0)} ms (timeout 100 ms, answer at 1000 ms)`);
  t.match(!r.ok && r.error.message, /within 100 ms/);
  t.ok(await waitFor(() => a.log.lines.some((l) => l.level === 20 && /unknown request id/.test(l.msg)), 3000), 'the late answer is logged at debug');
  t.same(await a.transport.request(b.id, { type: 'dbsize' }, 1000), { type: 'dbsize' }, 'the connection still works');
  t.equal(a.transport.peerStats(b.id)!.traffic.timeouts, 1);
  t.equal(a.transport.peerStats(b.id)!.inflight, 0);
});

t.test('in-flight requests per peer are bounded: over the limit rejects at once with OVERLOADED', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let handled = 0;
  b.transport.setHandler(async (_from, msg) => {
    handled++;
    await gate;
    return msg;
  });
  const held = Array.from({ length: peerInflightMax }, (_, i) => a.transport.request(b.id, { type: 'count', n: i }, 30_000));
  t.equal(a.transport.peerStats(b.id)!.inflight, peerInflightMax);
  const started = performance.now();
  const over = await settle(a.transport.request(b.id, { type: 'count', n: -0 }, 30_000));
  t.ok(performance.now() - started < 50, 'rejected at once');
  t.equal(!over.ok && over.error.code, 'OVERLOADED');
  t.ok(!over.ok && over.error instanceof PeerError);
  t.match(!over.ok && over.error.message, new RegExp(`limit ${peerInflightMax}`));
  t.ok(await waitFor(() => handled === peerInflightMax, 5000), 'the held requests reached the handler');
  release();
  const answers = await Promise.all(held);
  t.equal(answers.length, peerInflightMax);
  t.same(await a.transport.request(b.id, { type: 'ack' }, 1000), { type: 'ack' }, 'accepted again once answers came back');
});

t.test('handler failures become error answers; the node keeps serving', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  b.transport.setHandler((_from, msg) => {
    if (msg.type === 'dbsize') throw new Error('sync boom');
    if (msg.type === 'flushAll') return Promise.reject(new Error('async boom'));
    if (msg.type === 'scan') return { type: 'gossip', from: 'bad id', members: [] }; // cannot be encoded
    return msg;
  });
  t.same(await a.transport.request(b.id, { type: 'dbsize' }, 2000), { type: 'error', code: 'HANDLER', message: 'sync boom' });
  t.same(await a.transport.request(b.id, { type: 'flushAll' }, 2000), { type: 'error', code: 'HANDLER', message: 'async boom' });
  const bad = await a.transport.request(b.id, { type: 'scan', cursor: 0, count: 1 }, 2000);
  t.match(bad, { type: 'error', code: 'INTERNAL', message: /could not be encoded/ });
  t.same(await a.transport.request(b.id, { type: 'ack' }, 2000), { type: 'ack' });
  t.ok(b.log.warnings().some((l) => /handler failed/.test(l.msg)), 'handler failures are logged');
});

t.test('no handler yet: an error answer, not a hang', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2, { echo: false });
  introduce(a, b);
  t.match(await a.transport.request(b.id, { type: 'ack' }, 2000), { type: 'error', code: 'NOHANDLER' });
});

t.test('large payloads: 8 MB each way, several at once', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  const values = [1, 2, 3, 4].map((k) => {
    const v = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < v.length; i += 997) v[i] = (i * k) & 0xff;
    return v;
  });
  const started = performance.now();
  const answers = await Promise.all(values.map((v) => a.transport.request(b.id, { type: 'reply', resp: v }, 20_000)));
  const ms = performance.now() - started;
  answers.forEach((m, i) => t.ok(m.type === 'reply' && m.resp.equals(values[i]!), `8 MB value ${i} came back intact`));
  t.comment(`4 x 8 MB echoed in ${ms.toFixed(0)} ms (${((64 * 1000) / ms).toFixed(0)} MB/s both ways)`);
  // Mixed with small requests, which must not be corrupted by the big frames around them.
  const mixed = await Promise.all([
    a.transport.request(b.id, { type: 'count', n: 1 }, 20_000),
    a.transport.request(b.id, { type: 'forward', args: [Buffer.from('SET'), Buffer.from('k'), values[0]!], resp3: false, r: 2, w: 2 }, 20_000),
    a.transport.request(b.id, { type: 'count', n: 2 }, 20_000),
  ]);
  t.same(mixed[0], { type: 'count', n: 1 });
  t.ok(mixed[1].type === 'forward' && mixed[1].args[2]!.equals(values[0]!));
  t.same(mixed[2], { type: 'count', n: 2 });
});

t.test('a message over the frame limit fails alone; the connection carries on', async (t) => {
  const limits = { frameBytesMax: 64 * 1024 };
  const a = await startNode(t, 1, { limits });
  const b = await startNode(t, 2, { limits });
  introduce(a, b);
  const big = Buffer.alloc(100 * 1024);
  b.transport.setHandler((_from, msg) => (msg.type === 'dbsize' ? { type: 'reply', resp: big } : msg));
  const slow = a.transport.request(b.id, { type: 'readBatch', items: [{ key: Buffer.from('k'), versionOnly: false }] }, 2000);
  const r = await settle(a.transport.request(b.id, { type: 'reply', resp: big }, 2000));
  t.equal(!r.ok && r.error.code, 'TOO_LARGE', 'an oversized request is refused before it is sent');
  t.match(await a.transport.request(b.id, { type: 'dbsize' }, 2000), { type: 'error', code: 'TOO_LARGE' }, 'an oversized answer becomes an error answer');
  t.equal(a.transport.send(b.id, { type: 'reply', resp: big }), false, 'an oversized one-way message is dropped');
  t.match(await slow, { type: 'readBatch' }, 'other requests on the connection are unaffected');
  t.equal(a.transport.peerStats(b.id)!.reconnects, 0, 'the connection was never dropped');
  t.equal(a.transport.peerStats(b.id)!.traffic.badFrames, 0);
});

t.test('one-way messages reach the handler; their results are not sent', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  const got: Array<[string, PeerMessage]> = [];
  b.transport.setHandler((from, msg) => {
    got.push([from, msg]);
    return msg;
  });
  // The first one waits for the first connection; the rest go straight out.
  for (let i = 0; i < 100; i++) t.equal(a.transport.send(b.id, { type: 'count', n: i }), true);
  t.ok(await waitFor(() => got.length === 100, 3000), 'all 100 arrived');
  t.same(got.map(([, m]) => (m.type === 'count' ? m.n : -1)), Array.from({ length: 100 }, (_, i) => i), 'in order');
  t.ok(got.every(([from]) => from === a.id), 'from is the authenticated sender');
  t.equal(a.transport.peerStats(b.id)!.traffic.framesReceived, 2, 'A received only the handshake (helloAck, welcome): no answers');
  t.equal(a.transport.send(nodeId(99), { type: 'ack' }), false, 'unknown peer: dropped');
});

t.test('connectTo learns the id (CLUSTER MEET); requestAddress; self; unknown peers', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  t.equal(await a.transport.connectTo('127.0.0.1', b.port), b.id);
  t.same(await a.transport.request(b.id, { type: 'ack' }, 1000), { type: 'ack' }, 'the met node is usable at once');
  t.equal(a.transport.peerStats(b.id)!.connected, true);
  t.equal(await a.transport.connectTo('127.0.0.1', b.port), b.id, 'meeting again is harmless');
  t.equal(a.transport.stats().peers.length, 1);

  const c = await startNode(t, 3);
  t.same(await c.transport.requestAddress({ host: '127.0.0.1', port: b.port }, { type: 'count', n: 5 }, 2000), { type: 'count', n: 5 });

  const self = await settle(a.transport.connectTo('127.0.0.1', a.port));
  t.equal(!self.ok && self.error.code, 'SELF', 'dialing our own port is recognised');
  t.equal((await settle(a.transport.request(a.id, { type: 'ack' }, 100))).ok, false);
  const unknown = await settle(a.transport.request(nodeId(99), { type: 'ack' }, 100));
  t.equal(!unknown.ok && unknown.error.code, 'UNKNOWN_PEER');
  t.notOk(a.log.warnings().some((l) => /handshake/.test(l.msg)), 'a self-connection is not warned about as an intrusion');
});

t.test('an address that now belongs to another node fails the handshake', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  a.transport.setAddress(nodeId(42), '127.0.0.1', b.port); // we think node 42 lives there; node 2 does
  const r = await settle(a.transport.request(nodeId(42), { type: 'ack' }, 2000));
  t.equal(!r.ok && r.error.code, 'HANDSHAKE');
  t.match(!r.ok && r.error.message, /not the expected/);
  t.match(a.transport.peerStats(nodeId(42))!.lastError, /not the expected/);
});

t.test('simultaneous dials: both directions work, one connection each way', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  introduce(a, b);
  const [x, y] = await Promise.all([a.transport.request(b.id, { type: 'count', n: 1 }, 2000), b.transport.request(a.id, { type: 'count', n: 2 }, 2000)]);
  t.same([x, y], [{ type: 'count', n: 1 }, { type: 'count', n: 2 }]);
  t.equal(a.transport.stats().inboundConnections, 1);
  t.equal(b.transport.stats().inboundConnections, 1);
});

t.test('backpressure: a peer that does not read its answers stops being read', async (t) => {
  const b = await startNode(t, 2, { limits: { writeBufferBytesHigh: 2 * 1024 * 1024 } });
  let handled = 0;
  const big = Buffer.alloc(1024 * 1024, 1);
  b.transport.setHandler(() => {
    handled++;
    return { type: 'reply', resp: big };
  });
  const raw = await RawPeer.connect(b.port);
  t.teardown(() => raw.close());
  t.equal(await raw.handshake(nodeId(1)), b.id);
  raw.socket.pause(); // read nothing: answers pile up in the kernel, then in B's socket buffer
  let id = 1;
  const ask = (n: number): void => {
    for (let i = 0; i < n; i++) raw.write(encodeFrameBuffer('request', id++, { type: 'ack' }));
  };
  // A few requests at a time, so B reads them as they come, until B stops reading.
  while (id <= 200 && b.transport.stats().inbound.readPauses === 0) {
    ask(2);
    await sleep(5);
  }
  t.ok(await waitFor(() => b.transport.stats().inbound.readPauses > 0, 5000), 'B paused reading');
  const sent = id - 1;
  await sleep(100);
  const handledWhilePaused = handled;
  t.ok(handledWhilePaused < sent + 1 && handledWhilePaused > 2, `B handled ${handledWhilePaused} requests (answers: ${handledWhilePaused} MB) and paused`);
  ask(50);
  await sleep(300);
  t.equal(handled, handledWhilePaused, 'none of 50 further requests is read while the answers cannot be sent');
  raw.socket.resume();
  const total = sent + 50;
  let answers = 0;
  while (answers < total) {
    const f = await raw.next(5000);
    if (typeof f === 'string' || isFrameError(f)) break;
    if (f.kind === 'response' && f.message.type === 'reply' && f.message.resp.length === big.length) answers++;
  }
  t.equal(answers, total, `all ${total} requests answered once the peer reads again`);
  t.equal(handled, total);
  t.equal(b.transport.stats().inbound.readPauses >= 1, true);
});

t.test('writes (and reads) sent in one turn travel as one writeBatch (readBatch); each waiter hears its own item', async (t) => {
  const a = await startNode(t, 1);
  const b = await startNode(t, 2);
  const batches: number[] = [];
  const reads: number[] = [];
  b.transport.setHandler((_from, msg): PeerMessage => {
    if (msg.type === 'readBatch') {
      reads.push(msg.items.length);
      return { type: 'objects', results: msg.items.map((i) => (i.key.toString() === 'none' ? null : i.versionOnly ? { error: 'ERR no' } : encodeObject(sampleObject))) };
    }
    if (msg.type !== 'writeBatch') return { type: 'ack' };
    batches.push(msg.items.length);
    const results: WriteResult[] = msg.items.map((item) => {
      const k = item.key.toString();
      if (k.startsWith('fail')) return { error: `ERR cannot write ${k}` };
      if (k.startsWith('seen') && item.report) return { seen: new Map([[nodeId(9), 7]]) };
      return null;
    });
    return { type: 'writtenBatch', results };
  });
  introduce(a, b);
  await a.transport.request(b.id, { type: 'ack' }, 5000); // connected, so the writes below queue on the connection

  /** Sends n writes in one turn; resolves with what each waiter heard, in order. */
  const send = (keys: string[], report = true): Promise<string[]> =>
    Promise.all(
      keys.map(
        (key) =>
          new Promise<string>((resolve) =>
            a.transport.sendWrite(
              b.id,
              { key: Buffer.from(key), encoded: encodeObject(sampleObject), report },
              {
                answer: (node, seen) => resolve(`${node === b.id ? 'b' : node} ok ${seen === null ? '-' : [...seen].join(';')}`),
                fail: (node, reason) => resolve(`${node === b.id ? 'b' : node} failed ${reason}`),
              },
              5000,
            ),
          ),
      ),
    );

  const before = a.transport.peerStats(b.id)!.traffic.framesSent;
  const keys = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? `fail:${i}` : i % 3 === 1 ? `seen:${i}` : `plain:${i}`));
  const heard = await send(keys);
  t.same(batches, [300], 'one writeBatch of 300 items');
  t.equal(a.transport.peerStats(b.id)!.traffic.framesSent - before, 1, 'in one request frame');
  const want = keys.map((k) => (k.startsWith('fail') ? `b failed ERR cannot write ${k}` : k.startsWith('seen') ? `b ok ${nodeId(9)},7` : 'b ok -'));
  t.same(heard, want, 'every waiter heard its own item: done, done but not accounted for, or failed');

  batches.length = 0;
  const many = await send(Array.from({ length: BATCH_ITEMS_MAX + 100 }, (_, i) => `plain:${i}`), false);
  t.same(batches, [BATCH_ITEMS_MAX, 100], `cut at ${BATCH_ITEMS_MAX} items per batch`);
  t.ok(many.every((h) => h === 'b ok -'), 'all answered');

  // Reads queue the same way, in a batch of their own.
  const read = (key: string, versionOnly: boolean): Promise<string> =>
    new Promise((resolve) =>
      a.transport.sendRead(
        b.id,
        { key: Buffer.from(key), versionOnly },
        { answer: (_n, o) => resolve(o === null ? 'absent' : `${decoded(o).siblings.length} siblings`), fail: (_n, reason) => resolve(reason) },
        5000,
      ),
    );
  const readsBefore = a.transport.peerStats(b.id)!.traffic.framesSent;
  t.same(await Promise.all([read('k', false), read('none', false), read('v', true)]), ['2 siblings', 'absent', 'ERR no']);
  t.same(reads, [3], 'three reads in one readBatch');
  t.equal(a.transport.peerStats(b.id)!.traffic.framesSent - readsBefore, 1, 'in one request frame');

  // A batch whose request fails (the other side goes away) fails every one of its writes.
  b.transport.setHandler(() => new Promise<PeerMessage>(() => {})); // never answers
  const lost = send(['x:1', 'x:2', 'x:3']);
  await sleep(50);
  await b.transport.close();
  t.same(
    (await lost).map((h) => h.replace(/ failed .*/, ' failed')),
    ['b failed', 'b failed', 'b failed'],
    'each write of a lost batch fails',
  );
});

t.test('read items an answer had no room for are asked for alone; a nested flush sends each batch once', async (t) => {
  const enc = encodeObject(sampleObject);
  // flushBytes just above one write item: queuing the read after it, then flushing, nests a flush.
  const limits = { flushBytes: 1 + enc.length + 5 };
  const a = await startNode(t, 1, { limits });
  const b = await startNode(t, 2, { limits });
  const seen: number[] = [];
  b.transport.setHandler((_from, msg): PeerMessage => {
    if (msg.type === 'writeBatch') return { type: 'writtenBatch', results: msg.items.map(() => null) };
    if (msg.type !== 'readBatch') return { type: 'ack' };
    seen.push(msg.items.length);
    // Room for the first object only, as a replica whose answer would pass readAnswerBytesMax says.
    return { type: 'objects', results: msg.items.map((_, i) => (i === 0 ? encodeObject(sampleObject) : { again: true as const })) };
  });
  introduce(a, b);
  await a.transport.request(b.id, { type: 'ack' }, 5000);
  let writeHeard = 0;
  a.transport.sendWrite(b.id, { key: Buffer.from('w'), encoded: enc, report: false }, { answer: () => writeHeard++, fail: () => writeHeard++ }, 5000);
  const heard: string[] = [];
  const reads = ['r1', 'r2', 'r3'].map(
    (key) =>
      new Promise<void>((resolve) =>
        a.transport.sendRead(
          b.id,
          { key: Buffer.from(key), versionOnly: false },
          {
            answer: (_n, o) => {
              heard.push(`${key}:${o === null ? undefined : decoded(o).siblings.length}`);
              resolve();
            },
            fail: (_n, reason) => {
              heard.push(`${key}:${reason}`);
              resolve();
            },
          },
          5000,
        ),
      ),
  );
  await Promise.all(reads);
  await sleep(100);
  t.same(heard.sort(), ['r1:2', 'r2:2', 'r3:2'], 'every read answered once, with its object');
  t.same(seen, [3, 1, 1], 'one batch of 3, then the 2 without room asked alone');
  t.equal(writeHeard, 1, 'the write waiter heard once');
});
