// SIGKILL during compaction, many times: a child process writes and deletes
// keys in a store whose compactor runs all the time (tiny segments, no
// throttle, no tombstone grace), and is killed at a random moment. After
// every kill the store must open with every acknowledged write, no
// resurrected delete, and no leftover of the interrupted compaction.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { seededRandom } from '../../src/cluster/ports.js';
import { captureLog, open, read, tempDir } from '../storage/helpers.js';
import { compactionKeys, compactionOp, compactionOpsInFlight } from './compaction-ops.js';

const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100000);
const rounds = Number(process.env.CRASH_ROUNDS ?? 12);
const rng = seededRandom(seed);
const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'compaction-child.js');
t.comment(`compaction crash seed ${seed} (rerun with CRASH_SEED=${seed})`);

/** Every value key K may hold when ops up to `acked` are durable and up to acked + inFlight may be. */
function allowed(k: number, acked: number): Set<string | undefined> {
  const ok = new Set<string | undefined>();
  let last: string | undefined;
  for (let n = k; n <= acked; n += compactionKeys) last = compactionOp(n).value;
  ok.add(last);
  for (let n = k; n <= acked + compactionOpsInFlight; n += compactionKeys) if (n > acked) ok.add(compactionOp(n).value);
  return ok;
}

t.test('SIGKILL at random points of compaction loses no acknowledged write and resurrects no delete', async (t) => {
  const dir = tempDir(t);
  let acked = -1;
  const seen = { finished: 0, undone: 0, compactions: 0 };
  for (let round = 0; round < rounds; round++) {
    const proc = spawn(process.execPath, [child, dir, String(acked + 1)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    // Wait for the first acknowledgement, then kill at a random moment.
    for (let i = 0; i < 500 && !out.includes('acked'); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50 + rng.next() * 400));
    proc.kill('SIGKILL');
    await exited;
    if (!out.includes('acked')) {
      t.fail(`round ${round}: child never acknowledged: ${err.slice(0, 500)}`);
      return;
    }
    for (const m of out.matchAll(/acked (\d+)/g)) acked = Math.max(acked, Number(m[1]));
    seen.compactions += (err.match(/compacted/g) ?? []).length;

    const log = captureLog();
    const store = await open(dir, { logger: log.logger });
    const rec = store.stats().recovery;
    seen.finished += rec.compactionsFinished;
    seen.undone += rec.compactionsUndone;
    const bad: string[] = [];
    for (let k = 0; k < compactionKeys; k++) {
      const v = await read(store, `key${k}`);
      if (!allowed(k, acked).has(v)) bad.push(`key${k}=${v?.slice(0, 12)}`);
    }
    await store.close();
    const left = fs.readdirSync(dir).filter((f) => /\.(compacting|commit|tmp)$/.test(f));
    // A kill leaves a stale lock, and may leave a write half done at the end of the active segment.
    const problems = log.problems().filter((m) => !/stale lock|torn record at the end of|header was never written/.test(m));
    if (bad.length > 0 || left.length > 0 || problems.length > 0) {
      t.fail(`round ${round} (acked ${acked}): wrong ${bad.slice(0, 5).join(' ')}; leftovers ${left}; log ${problems.slice(0, 3)}`);
      return;
    }
  }
  t.pass(`${rounds} kills, ${acked + 1} ops acknowledged`);
  t.comment(`recovery finished ${seen.finished} and undid ${seen.undone} interrupted compactions`);
  t.ok(seen.finished + seen.undone > 0, 'kills landed inside compactions');
});
