// Kill -9 at random moments: a real node runs with --fsync always while
// several clients write; it is SIGKILLed, restarted on the same data
// directory, and every write it acknowledged must read back intact. Then the
// last record of a segment is torn at every byte: the node must still start
// and keep every earlier write.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { seededRandom } from '../../src/cluster/ports.js';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../../protocol/record.js';
import { type NodeProcess, startNode, tempDir } from '../e2e/harness.js';


const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100000);
const rng = seededRandom(seed);
const random = (): number => rng.next();
const rounds = Number(process.env.CRASH_ROUNDS ?? 6);

t.comment(`crash test seed ${seed} (rerun with CRASH_SEED=${seed})`);

t.test('SIGKILL while writing loses no acknowledged write (fsync always)', async (t) => {
  const dataDir = tempDir();
  /** key → the value the node acknowledged last; and every value sent, to judge unacknowledged ones. */
  const acked = new Map<string, string>();
  const sent = new Map<string, Set<string>>();
  let node: NodeProcess | undefined;
  for (let round = 0; round < rounds; round++) {
    node = await startNode({ dataDir, args: ['--fsync', 'always', '--admin-port', '0', '--segment-bytes-max', '64kb'] });
    // Everything acknowledged in earlier rounds is still there.
    const check = new Redis({ port: node.port, maxRetriesPerRequest: 0 });
    const keys = [...acked.keys()];
    const values = keys.length ? await check.mget(keys) : [];
    let lost = 0;
    keys.forEach((k, i) => {
      const v = values[i];
      // An unacknowledged later write may have landed; an acknowledged one may not vanish.
      if (v === null || v === undefined || !sent.get(k)!.has(v)) lost++;
      else if (v !== acked.get(k) && Number(v.split(':')[1]) < Number(acked.get(k)!.split(':')[1])) lost++;
    });
    t.equal(lost, 0, `round ${round}: all ${keys.length} acknowledged keys intact`);
    check.disconnect();

    const writers = Array.from({ length: 4 }, () => new Redis({ port: node!.port, maxRetriesPerRequest: 0, enableOfflineQueue: false }));
    writers.forEach((w) => w.on('error', () => {}));
    await Promise.all(writers.map((w) => new Promise((r) => w.once('ready', r))));
    let stop = false;
    let seq = round * 1_000_000;
    const loops = writers.map(async (w, wi) => {
      while (!stop) {
        // A pipeline of fresh keys and overwrites of a few hot keys.
        const batch: Array<[string, string]> = [];
        for (let i = 0; i < 1 + Math.floor(random() * 20); i++) {
          const key = random() < 0.3 ? `hot:${wi}:${Math.floor(random() * 5)}` : `k:${round}:${wi}:${seq}`;
          const value = `${'v'.repeat(Math.floor(random() * 200))}:${++seq}`;
          batch.push([key, value]);
          if (!sent.has(key)) sent.set(key, new Set());
          sent.get(key)!.add(value);
        }
        try {
          const p = w.pipeline();
          for (const [k, v] of batch) p.set(k, v);
          const res = await p.exec();
          let failed = false;
          res?.forEach(([err], i) => {
            if (!err) acked.set(batch[i]![0], batch[i]![1]);
            else failed = true;
          });
          if (failed) return; // the node died: errors come back at once, so stop rather than spin
        } catch {
          return; // the node died
        }
      }
    });
    await new Promise((r) => setTimeout(r, 150 + random() * 600));
    node.proc.kill('SIGKILL');
    await node.exited;
    stop = true;
    await Promise.all(loops);
    writers.forEach((w) => w.disconnect());
  }
  t.ok(acked.size > 100, `wrote ${acked.size} keys across ${rounds} crashes`);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

t.test('a torn last record, cut at every byte, never stops the node nor loses earlier writes', async (t) => {
  const dataDir = tempDir();
  let node = await startNode({ dataDir, args: ['--fsync', 'always', '--admin-port', '0'] });
  let r = new Redis({ port: node.port });
  for (let i = 0; i < 20; i++) await r.set(`before:${i}`, `value-${i}`);
  await r.set('last', 'the-last-record');
  r.disconnect();
  t.equal(await node.stop('SIGKILL'), 'SIGKILL');
  const segs = fs.readdirSync(dataDir).filter((f) => f.endsWith('.seg')).sort();
  const seg = path.join(dataDir, segs[segs.length - 1]!);
  const full = fs.readFileSync(seg);
  // The last record holds key "last"; its fixed header sits right before the key.
  const keyAt = full.lastIndexOf('lastthe-last-record'); // the key, then its value
  const recordStart = keyAt - RECORD_HEADER_BYTES;
  t.ok(recordStart >= SEGMENT_HEADER_BYTES, 'found the last record');
  let cuts = 0;
  for (let cut = full.length - 1; cut >= recordStart; cut--) {
    fs.writeFileSync(seg, full.subarray(0, cut));
    // A restart may have opened a fresh segment after ours; drop it so ours is the tail again.
    for (const f of fs.readdirSync(dataDir)) if (f.endsWith('.seg') && f > path.basename(seg)) fs.rmSync(path.join(dataDir, f));
    node = await startNode({ dataDir, args: ['--admin-port', '0'] });
    r = new Redis({ port: node.port });
    const values = await r.mget(...Array.from({ length: 20 }, (_, i) => `before:${i}`), 'last');
    r.disconnect();
    await node.stop('SIGTERM');
    // The node truncated the torn tail; what it now holds must be exactly the cut file minus the torn record.
    t.equal(fs.statSync(seg).size, recordStart, `cut at ${cut}: torn record cut off`);
    if (values.slice(0, 20).some((v, i) => v !== `value-${i}`) || values[20] !== null) {
      t.fail(`cut at ${cut}: expected earlier writes and no torn record, got ${JSON.stringify(values)}`);
      break;
    }
    cuts++;
  }
  t.equal(cuts, full.length - recordStart, `node started and kept earlier writes after ${cuts} different cuts`);
  fs.rmSync(dataDir, { recursive: true, force: true });
});
