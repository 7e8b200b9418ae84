// A real cluster: separate node processes on loopback talking over real TCP.
// Writes through one node are read through every other; R+W>N reads see the
// latest acknowledged write; with N=3 W=2 one killed node changes nothing for
// clients and two give the quorum error; concurrent SETs of one key converge;
// a restarted node is repaired by reads; a peer without the secret is refused;
// ioredis Cluster and redis-cli -c run a workload.

import t from 'tap';
import { Cluster, Redis } from 'ioredis';
import { type NodeProcess, cli, clusterUp, eventually, restartNode, run, startCluster, startNode, freePort } from './harness.js';

const stopAll = (nodes: NodeProcess[]) => Promise.all(nodes.map((n) => n.stop('SIGTERM')));

t.test('3 nodes: write through one, read through every other; quorum behaviour under kills', async (t) => {
  const nodes = await startCluster(3);
  t.teardown(() => stopAll(nodes));
  const clients = nodes.map((n) => new Redis({ port: n.port, maxRetriesPerRequest: 0 }));
  t.teardown(() => clients.forEach((c) => c.disconnect()));

  for (let i = 0; i < 50; i++) await clients[i % 3]!.set(`k${i}`, `v${i}`);
  for (const [ci, c] of clients.entries()) {
    const got = await c.mget(...Array.from({ length: 50 }, (_, i) => `k${i}`));
    t.same(got, Array.from({ length: 50 }, (_, i) => `v${i}`), `node ${ci} reads every key written through the others`);
  }
  // Read-your-writes across nodes: each write through one node is read at once through the next.
  for (let i = 0; i < 30; i++) {
    await clients[i % 3]!.set('latest', String(i));
    t.equal(await clients[(i + 1) % 3]!.get('latest'), String(i));
  }
  t.equal(await clients[0]!.incr('counter'), 1);
  t.equal(await clients[1]!.incr('counter'), 2, 'INCR through another node sees the first');
  t.equal(await clients[2]!.incrby('counter', 10), 12);
  t.equal(await clients[1]!.del('k1', 'k2', 'nope'), 2);
  t.equal(await clients[2]!.exists('k1', 'k2', 'k3'), 1, 'deletes are seen everywhere');
  t.equal(await clients[0]!.dbsize(), 50 - 2 + 2, 'DBSIZE counts each key once across the cluster');
  const keys = (await clients[2]!.keys('k*')).sort();
  t.equal(keys.length, 48, 'KEYS covers the cluster');
  t.match(await cli(nodes[0]!.port, 'CLUSTER', 'INFO'), /cluster_state:ok/);

  // Kill one: N=3 W=2 R=2 still answers everything.
  nodes[2]!.proc.kill('SIGKILL');
  await nodes[2]!.exited;
  clients[2]!.disconnect();
  for (let i = 0; i < 20; i++) t.equal(await clients[i % 2]!.set(`after${i}`, 'x'), 'OK');
  t.equal(await clients[1]!.get('k10'), 'v10', 'reads still answer with one node dead');
  t.equal(await clients[0]!.incr('counter'), 13);
  // Kill a second: a write or read now reaches 1 of the 2 needed.
  nodes[1]!.proc.kill('SIGKILL');
  await nodes[1]!.exited;
  clients[1]!.disconnect();
  await t.rejects(clients[0]!.set('lonely', 'x'), /^TRYAGAIN write quorum not reached: 1 of 2 needed/);
  await t.rejects(clients[0]!.get('k10'), /^TRYAGAIN read quorum not reached: 1 of 2 needed/);
  const c0 = clients[0]!;
  t.same(await c0.call('CONSISTENCY', 'ONE'), ['n', 3, 'r', 1, 'w', 1], 'a connection can lower its levels');
  t.equal(await c0.get('k10'), 'v10', 'R=1 reads with one node left');
  t.equal(await c0.set('lonely', 'x'), 'OK', 'W=1 writes with one node left');
});

t.test('5 nodes: R+W>N reads see the latest acknowledged write, whichever node took it', async (t) => {
  const nodes = await startCluster(5);
  t.teardown(() => stopAll(nodes));
  const clients = nodes.map((n) => new Redis({ port: n.port, maxRetriesPerRequest: 0 }));
  t.teardown(() => clients.forEach((c) => c.disconnect()));
  for (let i = 0; i < 100; i++) {
    const key = `x${i % 7}`;
    await clients[i % 5]!.set(key, String(i));
    t.equal(await clients[(i * 3 + 1) % 5]!.get(key), String(i), `write ${i} visible`);
  }
  const owners = (await clients[0]!.call('CLUSTER', 'OWNERS', 'x1')) as string[][];
  t.equal(owners.length, 3, 'preference list has N=3 owners');
  t.equal(new Set(owners.map((o) => o[0])).size, 3, 'owners are distinct');
  t.equal((await clients[4]!.keys('x*')).length, 7);
});

t.test('concurrent SETs of one key through different nodes converge to one value everywhere', async (t) => {
  const nodes = await startCluster(3);
  t.teardown(() => stopAll(nodes));
  const clients = nodes.map((n) => new Redis({ port: n.port, maxRetriesPerRequest: 0 }));
  t.teardown(() => clients.forEach((c) => c.disconnect()));
  for (let round = 0; round < 20; round++) {
    await Promise.all(clients.map((c, i) => c.set('contended', `r${round}-n${i}`)));
  }
  // Reads repair the replicas; then every node, even asking only itself first, answers the same.
  await eventually(async () => {
    const seen = await Promise.all(clients.map((c) => c.get('contended')));
    return new Set(seen).size === 1;
  }, 5000, 'one value everywhere');
  const seen = await Promise.all(clients.map((c) => c.get('contended')));
  t.equal(new Set(seen).size, 1, `every node answers ${seen[0]}`);
  t.match(seen[0], /^r19-/, 'the value is one of the last round');
});

t.test('SETs of one key arriving together ride one round, and every owner ends with the last', async (t) => {
  const nodes = await startCluster(3);
  t.teardown(() => stopAll(nodes));
  const clients = Array.from({ length: 20 }, () => new Redis({ port: nodes[0]!.port, maxRetriesPerRequest: 0 }));
  t.teardown(() => clients.forEach((c) => c.disconnect()));
  // W=ALL: once acknowledged, every owner holds the round's version (a rider's, if one rode along).
  await Promise.all(clients.map((c) => c.call('CONSISTENCY', 'WRITE', 'ALL')));
  for (let round = 0; round < 10; round++) {
    const replies = await Promise.all(clients.map((c, i) => c.set('hot', `r${round}-c${i}`)));
    t.ok(replies.every((r) => r === 'OK'), `round ${round}: all 20 acknowledged`);
  }
  const combined = Number(/cluster_writes_combined:(\d+)/.exec(await cli(nodes[0]!.port, 'CLUSTER', 'INFO'))?.[1]);
  t.ok(combined > 0, `SETs rode along (${combined} of 200)`);
  // Each node's own copy (R=1 answers from it first), read before any quorum read could repair it.
  const own = await Promise.all(
    nodes.map(async (n) => {
      const c = new Redis({ port: n.port, maxRetriesPerRequest: 0 });
      try {
        await c.call('CONSISTENCY', 'READ', 'ONE');
        return await c.get('hot');
      } finally {
        c.disconnect();
      }
    }),
  );
  t.match(own[0], /^r9-c\d+$/, 'the coordinator holds a SET of the last round');
  t.same(own, [own[0], own[0], own[0]], 'the other owners got the same last version');
});

t.test('SETs of one key through a node that does not own it go to the first owner as one item per turn', async (t) => {
  const nodes = await startCluster(4);
  t.teardown(() => stopAll(nodes));
  const via = nodes[0]!;
  const myId = await cli(via.port, 'CLUSTER', 'MYID');
  let key = 'fwd0';
  for (let i = 1; (await cli(via.port, 'CLUSTER', 'OWNERS', key)).includes(myId); i++) key = `fwd${i}`;
  const clients = Array.from({ length: 20 }, () => new Redis({ port: via.port, maxRetriesPerRequest: 0 }));
  t.teardown(() => clients.forEach((c) => c.disconnect()));
  await Promise.all(clients.map((c) => c.call('CONSISTENCY', 'WRITE', 'ALL')));
  for (let round = 0; round < 10; round++) {
    const replies = await Promise.all(clients.map((c, i) => c.set(key, `r${round}-c${i}`)));
    t.ok(replies.every((r) => r === 'OK'), `round ${round}: all 20 acknowledged`);
  }
  const info = await cli(via.port, 'CLUSTER', 'INFO');
  const combined = Number(/cluster_forwards_combined:(\d+)/.exec(info)?.[1]);
  t.ok(combined > 0, `forwarded SETs rode along (${combined} of 200)`);
  // Every node answers the last round's value; with W=ALL each owner's copy already holds it.
  const values = await Promise.all(nodes.map((n) => cli(n.port, 'GET', key)));
  t.match(values[0], /^r9-c\d+$/);
  if (!values.every((v) => v === values[0])) {
    // Seen once in many runs and not reproduced since: say whether the difference outlives a second read
    // (read repair of a lagging copy) or stays (copies that resolve differently).
    const again = await Promise.all(nodes.map((n) => cli(n.port, 'GET', key)));
    const owners = await cli(via.port, 'CLUSTER', 'OWNERS', key);
    t.comment(`first reads ${JSON.stringify(values)}, second ${JSON.stringify(again)}, owners ${owners.replace(/\n/g, ' ')}`);
  }
  t.same(values, Array(4).fill(values[0]), 'every node answers the same');
});

t.test('forwarded writes batched together keep their own outcomes when one of them waits for a stopped owner', async (t) => {
  const nodes = await startCluster(5, { args: ['--request-timeout-ms', '1000'] });
  t.teardown(() => stopAll(nodes));
  const c = new Redis({ port: nodes[0]!.port, maxRetriesPerRequest: 0 });
  t.teardown(() => c.disconnect());
  const owners = async (key: string) => ((await c.call('CLUSTER', 'OWNERS', key)) as string[][]).map((o) => o[0]!);
  // Two keys node 0 does not own, with the same first owner; one also owned by node `stopped`, the other not.
  // Searched again until every answer it relies on is whole (a redis-cli or ring answer read while the
  // machine is loaded once gave an owner outside `ids`, and the test stopped node -1).
  let k1 = '';
  let k2 = '';
  let stopped = -1;
  let ids: string[] = [];
  await eventually(async () => {
    ids = await Promise.all(nodes.map((n) => cli(n.port, 'CLUSTER', 'MYID')));
    k1 = k2 = '';
    stopped = -1;
    for (let i = 0; k2 === '' && i < 2000; i++) {
      const o = await owners(`b${i}`);
      if (o.length !== 3 || !o.every((id) => ids.includes(id))) return false;
      if (o.includes(ids[0]!)) continue;
      if (k1 === '') {
        k1 = `b${i}`;
        stopped = ids.indexOf(o[2]!);
      } else if (o[0] === (await owners(k1))[0] && !o.includes(ids[stopped]!)) k2 = `b${i}`;
    }
    return k2 !== '' && stopped > 0;
  }, 10000, 'two keys with the same first owner, one owned by a node the other is not');
  t.pass(`keys found (${k1}, ${k2}), node ${stopped} to stop`);
  await c.call('CONSISTENCY', 'WRITE', 'ALL');
  nodes[stopped]!.proc.kill('SIGSTOP');
  t.teardown(() => nodes[stopped]!.proc.kill('SIGCONT'));
  // One connection's SETs of two keys start together and go to the first owner in one coordinateBatch.
  const replies = (await c.pipeline().set(k1, 'x').set(k2, 'y').exec())!;
  t.match(String(replies[0]![0]), /^ReplyError: TRYAGAIN write quorum not reached: 2 of 3 needed/, 'the SET needing the stopped owner failed with its own quorum error');
  t.same(replies[1], [null, 'OK'], 'the SET beside it succeeded');
  t.equal(await c.get(k2), 'y');
});

t.test('pipelined SETs of one key on one connection: the later absorbs the earlier, never across a read', async (t) => {
  const nodes = await startCluster(3);
  t.teardown(() => stopAll(nodes));
  const c = new Redis({ port: nodes[0]!.port, maxRetriesPerRequest: 0 });
  t.teardown(() => c.disconnect());
  const p = c.pipeline();
  for (let i = 0; i < 100; i++) p.set('pk', `v${i}`);
  p.get('pk').set('pk', 'after-get').set('other', 'x').set('pk', 'last').set('pk', 'expiring', 'EX', '100').set('pk', 'final');
  const replies = (await p.exec())!.map(([err, r]) => err?.message ?? r);
  t.same(replies.slice(0, 100), Array(100).fill('OK'), 'every SET acknowledged, in order');
  t.same(replies.slice(100), ['v99', 'OK', 'OK', 'OK', 'OK', 'OK'], 'the GET saw the SET before it; the rest in order');
  const absorbed = Number(/pipelined_sets_absorbed:(\d+)/.exec(await cli(nodes[0]!.port, 'INFO', 'stats'))?.[1]);
  t.ok(absorbed > 0 && absorbed <= 101, `SETs absorbed by a later one (${absorbed})`);
  const calls = Number(/cmdstat_set:calls=(\d+)/.exec(await cli(nodes[0]!.port, 'INFO', 'commandstats'))?.[1]);
  t.equal(calls, 105, 'absorbed SETs still count as calls');
  for (const n of nodes) t.equal(await cli(n.port, 'GET', 'pk'), 'final', 'every node has the last value');
  t.equal(await cli(nodes[1]!.port, 'TTL', 'pk'), '-1', 'the last SET (no expiry) won over the one with EX');
});

t.test('a restarted node is repaired by reads', async (t) => {
  const nodes = await startCluster(3);
  t.teardown(() => stopAll(nodes));
  const a = new Redis({ port: nodes[0]!.port, maxRetriesPerRequest: 0 });
  t.teardown(() => a.disconnect());
  await nodes[2]!.stop('SIGKILL');
  for (let i = 0; i < 40; i++) await a.set(`missed${i}`, `value${i}`);
  nodes[2] = await restartNode(nodes[2]!, ['--seeds', `127.0.0.1:${nodes[0]!.port}@${nodes[0]!.clusterPort}`]);
  await eventually(async () => (await clusterUp(nodes[0]!.port)) === 3, 15000, 'restarted node up');
  const c = new Redis({ port: nodes[2]!.port, maxRetriesPerRequest: 0 });
  t.teardown(() => c.disconnect());
  // With R=1 the restarted node answers from its own copy first: it missed the writes.
  await c.call('CONSISTENCY', 'READ', 'ONE', 'WRITE', 'QUORUM');
  const before = await c.mget(...Array.from({ length: 40 }, (_, i) => `missed${i}`));
  t.ok(before.filter((v) => v === null).length > 30, `restarted node misses the writes at first (${before.filter((v) => v === null).length}/40 missing)`);
  // Quorum reads through another node repair it.
  await c.call('CONSISTENCY', 'DEFAULT');
  const b = new Redis({ port: nodes[1]!.port, maxRetriesPerRequest: 0 });
  t.teardown(() => b.disconnect());
  t.same(await b.mget(...Array.from({ length: 40 }, (_, i) => `missed${i}`)), Array.from({ length: 40 }, (_, i) => `value${i}`));
  await c.call('CONSISTENCY', 'READ', 'ONE', 'WRITE', 'QUORUM');
  await eventually(async () => {
    const after = await c.mget(...Array.from({ length: 40 }, (_, i) => `missed${i}`));
    return after.every((v, i) => v === `value${i}`);
  }, 5000, 'read repair of the restarted node');
  t.pass('the restarted node holds every value after read repair');
});

t.test('a peer without the cluster secret is refused', async (t) => {
  const [good] = await startCluster(1, { args: ['--cluster-secret', 'right-secret'] });
  t.teardown(() => good!.stop());
  const badPort = await freePort();
  const bad = await startNode({
    args: ['--cluster-enabled', 'yes', '--cluster-port', String(badPort), '--admin-port', '0', '--cluster-secret', 'wrong-secret', '--seeds', `127.0.0.1:${good!.port}@${good!.clusterPort}`],
  });
  t.teardown(() => bad.stop());
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(await clusterUp(good!.port), 1, 'the good node still knows only itself');
  t.equal(await clusterUp(bad.port), 1, 'the bad node never joined');
  t.ok(
    good!.logs.some((l) => /handshake|refus|auth/i.test(String(l.msg))),
    'the refusal is logged',
  );
  // A raw client on the cluster port is refused too.
  const raw = await run('redis-cli', ['-p', String(good!.clusterPort), 'PING']);
  t.notMatch(raw.stdout, /PONG/, 'a Redis client on the peer port gets nothing');
});

t.test('ioredis Cluster and redis-cli -c run a workload', async (t) => {
  const nodes = await startCluster(3);
  t.teardown(() => stopAll(nodes));
  const cluster = new Cluster([{ host: '127.0.0.1', port: nodes[0]!.port }], { redisOptions: { maxRetriesPerRequest: 1 } });
  t.teardown(() => cluster.disconnect());
  for (let i = 0; i < 200; i++) await cluster.set(`ioc:${i}`, String(i));
  const values = await Promise.all(Array.from({ length: 200 }, (_, i) => cluster.get(`ioc:${i}`)));
  t.same(values, Array.from({ length: 200 }, (_, i) => String(i)), 'ioredis Cluster reads back every key');
  t.equal(await cluster.incr('ioc:counter'), 1);
  const slots = (await cluster.call('CLUSTER', 'SLOTS')) as unknown[][];
  t.ok(slots.length > 3, 'CLUSTER SLOTS lists slot ranges');
  t.equal(
    slots.reduce((n, s) => n + (Number(s[1]) - Number(s[0]) + 1), 0),
    16384,
    'the ranges cover every slot once',
  );
  for (let i = 0; i < 20; i++) {
    t.equal(await cli(nodes[i % 3]!.port, '-c', 'SET', `cli:${i}`, `v${i}`), 'OK');
  }
  for (let i = 0; i < 20; i++) t.equal(await cli(nodes[(i + 1) % 3]!.port, '-c', 'GET', `cli:${i}`), `v${i}`);
  t.match(await cli(nodes[0]!.port, 'CLUSTER', 'NODES'), /myself,master/);
});
