// Small shared helpers for the cluster tests: stable node ids and member
// entries, and random keys from a seeded PRNG.

import { createHash } from 'node:crypto';
import { seededRandom } from '../../src/cluster/ports.js';
import type { MemberState, NodeId } from '../../src/cluster/types.js';

/** A 40-hex node id derived from a label, the same on every run. */
export function nodeId(label: string | number): NodeId {
  return createHash('sha1').update(`node-${label}`).digest('hex');
}

export function member(id: NodeId, fields: Partial<MemberState> = {}): MemberState {
  return {
    id,
    host: '127.0.0.1',
    port: 7000,
    clusterPort: 17000,
    incarnation: 1,
    heartbeat: 0,
    state: 'member',
    weight: 1,
    datacenter: 'dc1',
    rack: 'r1',
    ...fields,
  };
}

/** `count` random keys ("key:<random>") from a seed. */
export function randomKeys(seed: number, count: number): string[] {
  const random = seededRandom(seed);
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push(`key:${Math.floor(random.next() * 2 ** 52).toString(36)}`);
  return keys;
}

export function ratio(x: number, digits = 3): string {
  return x.toFixed(digits);
}
