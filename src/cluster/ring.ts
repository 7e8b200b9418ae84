// Where keys live: consistent hashing with virtual nodes.
//
// A key maps to a Redis Cluster slot (CRC16 of the key, or of its first
// non-empty {hash tag}, mod 16384), so keys sharing a tag share a preference
// list exactly as they share a slot in Redis Cluster. The 16384 slots sit at
// evenly spaced points of a 32-bit ring; each member owns `vnodesPerWeight *
// weight` tokens on that ring, and a slot's preference list is the first N
// distinct members clockwise from the slot's point.
//
// Why slots are spaced evenly rather than hashed onto the ring: a token's arc
// then covers contiguous slots, so CLUSTER SLOTS needs about one range per
// token (~2,000 for 5 nodes) instead of one per slot boundary (~13,000 when
// neighbouring slots land at random places). Balance is the same either way:
// it comes from the randomness of the tokens.
//
// A Ring is immutable and computed the same by every node from the same
// membership, whatever the order it learned the members in: tokens depend on
// node ids and weights only, and ties are broken by node id. Liveness does not
// enter: a down member keeps its ranges (the coordinator walks past it with
// `successors`, which is Dynamo's sloppy quorum), so a flapping node does not
// reshuffle data.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import { memberWeightMax, replicasDefault, ringSlots, vnodesPerWeightDefault } from '../constants.js';
import type { MemberState, NodeId } from './types.js';

export interface RingToken {
  /** Position on the ring, an unsigned 32-bit integer. */
  token: number;
  node: NodeId;
}

export interface SlotRange {
  /** First and last slot of the range, inclusive, as CLUSTER SLOTS prints them. */
  start: number;
  end: number;
  /** The preference list (the first is the primary) of every slot in the range. */
  owners: readonly NodeId[];
}

export interface RingOptions {
  /** N: replicas per key. */
  replicas?: number;
  vnodesPerWeight?: number;
}

const ringSize = 2 ** 32;
/** Distance between two slot points; slot s sits in the middle of its step. */
const slotStep = ringSize / ringSlots;

/** A stable 32-bit hash: the first four bytes of md5. Only used when a ring is built. */
export function hash32(text: string): number {
  // crypto.hash (Node >= 20.12) is the one-shot form, about 3x faster than createHash.
  const digest =
    typeof crypto.hash === 'function' ? crypto.hash('md5', text, 'buffer') : crypto.createHash('md5').update(text).digest();
  return digest.readUInt32BE(0);
}

/** The Redis Cluster slot of a key (CRC16-XMODEM of the key or its {hash tag}, mod 16384). */
export function slotOf(key: Buffer | string): number {
  return calculateSlot(key);
}

/** The ring position of a slot. */
export function slotPoint(slot: number): number {
  return slot * slotStep + slotStep / 2;
}

/** Tokens a member of this weight gets; out-of-range weights (bad gossip) are clamped rather than trusted. */
export function vnodeCount(weight: number, vnodesPerWeight: number): number {
  if (!Number.isFinite(weight) || weight <= 0) return 0;
  return Math.round(Math.min(weight, memberWeightMax) * vnodesPerWeight);
}

export class Ring {
  readonly replicas: number;
  readonly vnodesPerWeight: number;
  /** Ids of the members that own tokens, sorted. */
  readonly nodes: readonly NodeId[];
  /** A digest of everything placement depends on: equal fingerprints, equal placement. */
  readonly fingerprint: string;

  readonly #tokens: readonly RingToken[];
  /** For each slot, the index of its first token clockwise. */
  readonly #slotToken: Uint32Array;
  /** For each token index, the first `replicas` distinct nodes clockwise (equal neighbours share one array). */
  readonly #owners: ReadonlyArray<readonly NodeId[]>;
  /** For each token index, every distinct node clockwise; built on first use. */
  readonly #successors = new Map<number, readonly NodeId[]>();

  constructor(members: Iterable<MemberState>, options: RingOptions = {}) {
    this.replicas = options.replicas ?? replicasDefault;
    this.vnodesPerWeight = options.vnodesPerWeight ?? vnodesPerWeightDefault;
    assert.ok(Number.isInteger(this.replicas) && this.replicas >= 1, `replicas must be a positive integer`);
    assert.ok(Number.isInteger(this.vnodesPerWeight) && this.vnodesPerWeight >= 1, `vnodesPerWeight must be a positive integer`);

    const tokens: RingToken[] = [];
    const nodes = new Set<NodeId>();
    for (const m of members) {
      if (m.state !== 'member') continue;
      assert.ok(!nodes.has(m.id), `member ${m.id} listed twice`);
      const count = vnodeCount(m.weight, this.vnodesPerWeight);
      if (count === 0) continue;
      nodes.add(m.id);
      for (let i = 0; i < count; i++) tokens.push({ token: hash32(`${m.id}:${i}`), node: m.id });
    }
    // Ties (two tokens on one point) are broken by node id so the order never depends on input order.
    tokens.sort((a, b) => a.token - b.token || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    this.#tokens = Object.freeze(tokens.map((t) => Object.freeze(t)));
    this.nodes = Object.freeze([...nodes].sort());

    this.#owners = this.#computeOwners();
    this.#slotToken = new Uint32Array(ringSlots);
    if (tokens.length > 0) {
      // Slot points ascend, so one sweep finds every slot's successor token.
      let j = 0;
      for (let slot = 0; slot < ringSlots; slot++) {
        const point = slotPoint(slot);
        while (j < tokens.length && tokens[j]!.token < point) j++;
        this.#slotToken[slot] = j === tokens.length ? 0 : j;
      }
    }

    const h = crypto.createHash('sha1');
    h.update(`replicas=${this.replicas}\n`);
    for (const t of this.#tokens) h.update(`${t.token} ${t.node}\n`);
    this.fingerprint = h.digest('hex');
  }

  #computeOwners(): ReadonlyArray<readonly NodeId[]> {
    const tokens = this.#tokens;
    const want = Math.min(this.replicas, this.nodes.length);
    const owners: Array<readonly NodeId[]> = [];
    let previous: readonly NodeId[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const list: NodeId[] = [];
      for (let k = 0; list.length < want; k++) {
        assert.ok(k < tokens.length, 'ring walk went round without finding N distinct nodes');
        const node = tokens[(i + k) % tokens.length]!.node;
        if (!list.includes(node)) list.push(node);
      }
      // Neighbouring tokens usually share a list; sharing the array keeps memory small
      // and makes range grouping an identity check.
      const same = list.length === previous.length && list.every((n, x) => n === previous[x]);
      previous = same ? previous : Object.freeze(list);
      owners.push(previous);
    }
    return owners;
  }

  /** The ring's tokens in clockwise order (for CLUSTER RING-style introspection). */
  tokens(): readonly RingToken[] {
    return this.#tokens;
  }

  slotOf(key: Buffer | string): number {
    return slotOf(key);
  }

  /** The first N distinct members clockwise from the slot: its replicas, primary first. O(1). */
  ownersOfSlot(slot: number): readonly NodeId[] {
    // Not assert.ok(cond, `...${slot}`): that would build the message on every call of this hot path.
    if (!(Number.isInteger(slot) && slot >= 0 && slot < ringSlots)) throw new RangeError(`slot out of range: ${slot}`);
    if (this.#tokens.length === 0) return [];
    return this.#owners[this.#slotToken[slot]!]!;
  }

  /** The replicas of a key, primary first. */
  preferenceList(key: Buffer | string): readonly NodeId[] {
    return this.ownersOfSlot(slotOf(key));
  }

  primaryOfSlot(slot: number): NodeId | undefined {
    return this.ownersOfSlot(slot)[0];
  }

  /**
   * Every member in clockwise order from the slot, each once; the first N are
   * `ownersOfSlot`. The coordinator walks further along it past down members
   * to find fallback replicas (sloppy quorum).
   */
  successors(slot: number): readonly NodeId[] {
    this.ownersOfSlot(slot); // validates the slot
    if (this.#tokens.length === 0) return [];
    const start = this.#slotToken[slot]!;
    let list = this.#successors.get(start);
    if (list === undefined) {
      const out: NodeId[] = [];
      const seen = new Set<NodeId>();
      for (let k = 0; k < this.#tokens.length && out.length < this.nodes.length; k++) {
        const node = this.#tokens[(start + k) % this.#tokens.length]!.node;
        if (!seen.has(node)) {
          seen.add(node);
          out.push(node);
        }
      }
      list = Object.freeze(out);
      this.#successors.set(start, list);
    }
    return list;
  }

  /** Contiguous slot ranges with the same whole preference list (CLUSTER SLOTS with replicas). */
  slotRanges(): SlotRange[] {
    return this.#ranges((a, b) => a === b);
  }

  /** Contiguous slot ranges with the same primary; `owners` is the first slot's list. */
  primarySlotRanges(): SlotRange[] {
    return this.#ranges((a, b) => a[0] === b[0]);
  }

  #ranges(same: (a: readonly NodeId[], b: readonly NodeId[]) => boolean): SlotRange[] {
    if (this.#tokens.length === 0) return [];
    const ranges: SlotRange[] = [];
    let start = 0;
    let owners = this.ownersOfSlot(0);
    for (let slot = 1; slot <= ringSlots; slot++) {
      const next = slot < ringSlots ? this.ownersOfSlot(slot) : undefined;
      if (next === undefined || !same(owners, next)) {
        ranges.push({ start, end: slot - 1, owners });
        if (next !== undefined) {
          start = slot;
          owners = next;
        }
      }
    }
    return ranges;
  }

  /** How many slots each member is primary for. */
  primarySlotCounts(): Map<NodeId, number> {
    const counts = new Map<NodeId, number>(this.nodes.map((n) => [n, 0]));
    for (let slot = 0; slot < ringSlots; slot++) {
      const p = this.primaryOfSlot(slot)!;
      counts.set(p, counts.get(p)! + 1);
    }
    return counts;
  }

  equals(other: Ring): boolean {
    return this.fingerprint === other.fingerprint;
  }
}
