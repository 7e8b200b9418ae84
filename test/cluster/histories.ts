// Random histories of one key across a few replicas, for property tests of
// version.ts and the object codec. Each replica is also the actor of the
// writes it coordinates (as a vnode is in Riak), clients read a context from
// one replica, several, or none (a blind write) and write at some replica,
// and replicas sync pairwise in random directions. Every write's context is
// recorded, so a test can compute from first principles which writes an
// object should still hold.

import { seededRandom, randomInt } from '../../src/cluster/ports.js';
import type { Random } from '../../src/cluster/ports.js';
import type { NodeId, Sibling, VersionedObject, VersionVector } from '../../src/cluster/types.js';
import { emptyObject, merge, mergeVV, seen, update } from '../../src/cluster/version.js';
import { nodeId } from './helpers.js';

export interface Write {
  sibling: Sibling;
  /** What the writer had seen: the writes it replaces. */
  context: VersionVector;
}

export interface History {
  random: Random;
  actors: NodeId[];
  /** Each replica's copy now. */
  replicas: VersionedObject[];
  /** Every write ever made, by dot. */
  writes: Map<string, Write>;
  /** Every copy any replica held along the way. */
  objects: VersionedObject[];
}

export interface HistoryOptions {
  steps: number;
  siblingsMax?: number;
  /** HLCs are drawn from [0, hlcRange): a small range makes ties common. */
  hlcRange?: number;
  /** Probability a sibling gets an expiry (drawn from [1, 100] ms). */
  expiryProbability?: number;
}

export const dotKey = (s: { node: NodeId; counter: number }): string => `${s.node}:${s.counter}`;

export function randomHistory(seed: number, options: HistoryOptions): History {
  const random = seededRandom(seed);
  const actorCount = 3 + randomInt(random, 3);
  const actors = Array.from({ length: actorCount }, (_, i) => nodeId(`h${seed}-${i}`));
  const replicas = actors.map(() => emptyObject());
  const writes = new Map<string, Write>();
  const objects: VersionedObject[] = [];
  const hlcRange = options.hlcRange ?? 50;
  const expiryProbability = options.expiryProbability ?? 0;

  for (let step = 0; step < options.steps; step++) {
    const r = random.next();
    const i = randomInt(random, actorCount);
    if (r < 0.4) {
      let context: VersionVector;
      const c = random.next();
      if (c < 0.4) context = replicas[i]!.vv; // read here, write here
      else if (c < 0.6) context = new Map(); // blind write
      else if (c < 0.8) {
        context = new Map(); // a quorum-style read of a random subset
        for (const replica of replicas) if (random.next() < 0.5) context = mergeVV(context, replica.vv);
      } else context = replicas[randomInt(random, actorCount)]!.vv; // a read elsewhere, maybe stale
      const value = random.next() < 0.1 ? null : Buffer.from(`v${step}-${randomInt(random, 1000)}`);
      const expiresAtMs = random.next() < expiryProbability ? 1 + randomInt(random, 100) : 0;
      const hlc = randomInt(random, hlcRange);
      const next = update(replicas[i]!, context, actors[i]!, hlc, value, expiresAtMs, options.siblingsMax);
      const written = next.siblings.find((s) => s.node === actors[i] && s.counter === next.vv.get(actors[i]!))!;
      writes.set(dotKey(written), { sibling: written, context });
      replicas[i] = next;
    } else {
      const j = randomInt(random, actorCount);
      const merged = merge(replicas[i]!, replicas[j]!);
      replicas[i] = merged;
      if (random.next() < 0.5) replicas[j] = merged; // push-pull
    }
    objects.push(...replicas);
  }
  return { random, actors, replicas, writes, objects };
}

/**
 * The dots an object should hold, from first principles: the writes its vv
 * has seen that no other seen write's context covers.
 */
export function expectedDots(obj: VersionedObject, writes: Map<string, Write>): string[] {
  const known = [...writes.values()].filter((w) => seen(obj.vv, w.sibling));
  return known
    .filter((u) => !known.some((w) => w !== u && seen(w.context, u.sibling)))
    .map((u) => dotKey(u.sibling))
    .sort();
}
