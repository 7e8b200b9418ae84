// Who is in the cluster, and who is reachable: the state machine behind
// gossip, without any I/O (src/cluster/gossip.ts drives it over a Transport).
//
// Every node keeps a table NodeId -> MemberState. Each member is the only
// writer of its own entry: it bumps `heartbeat` every gossip round and
// `incarnation` at every start, and gossip spreads the entries epidemically;
// on merge the higher (incarnation, heartbeat) wins, so every node converges
// to the same table. Two things are not taken from others:
//
// - 'left' (CLUSTER FORGET) is sticky: once an id is left it stays left, at
//   any incarnation, so a forgotten node is not re-learned from a peer that
//   has not heard yet, nor let back in by restarting. (A node that should
//   rejoin comes back with a new id, i.e. a new data directory.)
// - Liveness is local: each node runs its own phi accrual detector per member,
//   fed by the moments that member's heartbeat is seen to increase, and
//   marks it up or down itself. Liveness never changes the ring.
//
// Changes (added, left, restarted, changed, up, down) are returned by the
// call that caused them and also given to `onChange` listeners, so the node
// can rebuild its ring (added, left, changed) and log.

import { PhiAccrualDetector } from './failure.js';
import type { PhiOptions } from './failure.js';
import { randomInt, sample } from './ports.js';
import type { PeerAddress, Random } from './ports.js';
import type { MemberState, NodeId } from './types.js';
import { isNodeId } from '../../protocol/object.js';
import { clusterMembersMax, gossipFanoutDefault, memberWeightMax } from '../constants.js';

export type MembershipChange =
  /** A member we did not know (rebuild the ring). */
  | { kind: 'added'; member: MemberState }
  /** Forgotten, here or elsewhere (rebuild the ring). When `member` is this node, the cluster forgot us. */
  | { kind: 'left'; member: MemberState }
  /** A known member came back with a higher incarnation: a new process, possibly with lost state. */
  | { kind: 'restarted'; member: MemberState }
  /** Address, weight, datacenter or rack changed (rebuild the ring if the weight did). */
  | { kind: 'changed'; member: MemberState; previous: MemberState }
  | { kind: 'up'; member: MemberState }
  | { kind: 'down'; member: MemberState; phi: number };

export type MembershipListener = (change: MembershipChange) => void;

export interface MembershipOptions {
  random: Random;
  /** Live peers contacted per round. */
  gossipFanout?: number;
  /** Failure detector settings (threshold, heartbeat estimate = the gossip interval, ...). */
  phi?: PhiOptions;
  /** Peer addresses to gossip with while this node knows no other member. */
  seeds?: PeerAddress[];
  /** Most members tracked (including left ones); entries beyond it are ignored. */
  membersMax?: number;
}

/** Whom to gossip with this round. */
export interface GossipTargets {
  peers: NodeId[];
  /** Seed addresses, only while this node knows no other member. */
  seeds: PeerAddress[];
}

/** One row of CLUSTER NODES, as this node sees it. */
export interface MemberView {
  member: MemberState;
  self: boolean;
  up: boolean;
  phi: number;
  /** When this member's heartbeat last increased, on the caller's clock; undefined if never. */
  lastHeardMs: number | undefined;
}

interface Entry {
  state: MemberState;
  up: boolean;
  /** Undefined for this node itself. */
  detector: PhiAccrualDetector | undefined;
  lastHeardMs: number | undefined;
}

const copy = (m: MemberState): MemberState => ({
  id: m.id,
  host: m.host,
  port: m.port,
  clusterPort: m.clusterPort,
  incarnation: m.incarnation,
  heartbeat: m.heartbeat,
  state: m.state,
  weight: m.weight,
  datacenter: m.datacenter,
  rack: m.rack,
});

const isPort = (p: unknown): boolean => Number.isInteger(p) && (p as number) > 0 && (p as number) <= 0xffff;
const isCount = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
const isLabel = (s: unknown): boolean => typeof s === 'string' && s.length <= 255;

/** Why a gossiped entry cannot be trusted, or undefined if it is well-formed. */
export function memberProblem(m: MemberState): string | undefined {
  if (typeof m !== 'object' || m === null) return 'not an object';
  if (typeof m.id !== 'string' || !isNodeId(m.id)) return 'bad node id';
  if (typeof m.host !== 'string' || m.host.length === 0 || m.host.length > 255) return 'bad host';
  if (!isPort(m.port) || !isPort(m.clusterPort)) return 'bad port';
  if (!isCount(m.incarnation) || !isCount(m.heartbeat)) return 'bad incarnation or heartbeat';
  if (m.state !== 'member' && m.state !== 'left') return 'bad state';
  const weightOk = typeof m.weight === 'number' && Number.isFinite(m.weight) && m.weight >= 0 && m.weight <= memberWeightMax;
  if (!weightOk) return 'bad weight';
  if (!isLabel(m.datacenter) || !isLabel(m.rack)) return 'bad datacenter or rack';
  return undefined;
}

/** (incarnation, heartbeat) order: which of two entries for one member is newer. */
function compareVersions(a: MemberState, b: MemberState): number {
  return a.incarnation - b.incarnation || a.heartbeat - b.heartbeat;
}

function sameShape(a: MemberState, b: MemberState): boolean {
  return (
    a.host === b.host &&
    a.port === b.port &&
    a.clusterPort === b.clusterPort &&
    a.weight === b.weight &&
    a.datacenter === b.datacenter &&
    a.rack === b.rack
  );
}

export class Membership {
  readonly selfId: NodeId;
  readonly #table = new Map<NodeId, Entry>();
  readonly #listeners = new Set<MembershipListener>();
  readonly #random: Random;
  readonly #fanout: number;
  readonly #phi: PhiOptions;
  readonly #seeds: PeerAddress[] = [];
  readonly #membersMax: number;
  /** Gossiped entries ignored because they were malformed or the table was full. */
  rejectedEntries = 0;

  /**
   * `self` is this node's entry; its incarnation must be higher than at any
   * earlier start of this node id (the node keeps a counter, or uses its
   * start time in ms). Its heartbeat restarts from `self.heartbeat`.
   */
  constructor(self: MemberState, options: MembershipOptions) {
    const problem = memberProblem(self);
    if (problem !== undefined) throw new RangeError(`invalid self member: ${problem}`);
    this.selfId = self.id;
    this.#random = options.random;
    this.#fanout = options.gossipFanout ?? gossipFanoutDefault;
    this.#phi = options.phi ?? {};
    this.#membersMax = options.membersMax ?? clusterMembersMax;
    const state: MemberState = { ...copy(self), state: 'member' };
    this.#table.set(self.id, { state, up: true, detector: undefined, lastHeardMs: undefined });
    for (const seed of options.seeds ?? []) this.addSeed(seed);
  }

  // --- reading -----------------------------------------------------------------

  self(): MemberState {
    return copy(this.#self().state);
  }

  #self(): Entry {
    return this.#table.get(this.selfId)!;
  }

  get(id: NodeId): MemberState | undefined {
    const e = this.#table.get(id);
    return e === undefined ? undefined : copy(e.state);
  }

  /** This node's view of a member's liveness (itself: always up; unknown or left: false). */
  isUp(id: NodeId): boolean {
    const e = this.#table.get(id);
    return e !== undefined && e.state.state === 'member' && e.up;
  }

  /** Every entry, left ones included, sorted by id. */
  members(): MemberState[] {
    return [...this.#table.values()].map((e) => copy(e.state)).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** The members the ring is built from (state 'member', up or down). */
  ringMembers(): MemberState[] {
    return this.members().filter((m) => m.state === 'member');
  }

  /** The gossip payload: every entry, left ones included so forgetting spreads. */
  digest(): MemberState[] {
    return this.members();
  }

  /** Rows for CLUSTER NODES: every member in the ring, with this node's liveness view. */
  view(nowMs: number): MemberView[] {
    return this.ringMembers().map((member) => {
      const e = this.#table.get(member.id)!;
      return {
        member,
        self: member.id === this.selfId,
        up: e.up,
        phi: e.detector?.phi(nowMs) ?? 0,
        lastHeardMs: e.lastHeardMs,
      };
    });
  }

  seeds(): PeerAddress[] {
    return this.#seeds.map((s) => ({ ...s }));
  }

  // --- changing --------------------------------------------------------------

  /** Registers a listener for every change; returns the function that unregisters it. */
  onChange(listener: MembershipListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Remembers a peer address to gossip with while alone (a configured seed, CLUSTER MEET). */
  addSeed(address: PeerAddress): void {
    const self = this.#self().state;
    if (address.host === self.host && address.port === self.clusterPort) return; // ourselves
    if (this.#seeds.some((s) => s.host === address.host && s.port === address.port)) return;
    this.#seeds.push({ host: address.host, port: address.port });
  }

  /**
   * Starts a gossip round: bumps our heartbeat and picks the round's targets:
   * `gossipFanout` random live peers; plus, with probability down/(live+1)
   * (Cassandra's rule), one down member, so a recovery is noticed even by a
   * node that sees everyone down; plus the seeds while we know nobody.
   * (`nowMs` is unused today; it keeps every driver-facing call alike.)
   */
  tick(nowMs: number): GossipTargets {
    this.#self().state.heartbeat++;
    const live: NodeId[] = [];
    const down: NodeId[] = [];
    for (const [id, e] of this.#table) {
      if (id === this.selfId || e.state.state !== 'member') continue;
      (e.up ? live : down).push(id);
    }
    // Table order is insertion order, which differs between nodes; sort so a seed decides alone.
    live.sort();
    down.sort();
    const peers = sample(this.#random, live, this.#fanout);
    if (down.length > 0 && this.#random.next() < down.length / (live.length + 1)) {
      peers.push(down[randomInt(this.#random, down.length)]!);
    }
    const seeds = live.length + down.length === 0 ? this.seeds() : [];
    return { peers, seeds };
  }

  /**
   * Merges a peer's gossiped table into ours. Malformed entries are skipped
   * (counted in `rejectedEntries`): gossip is input from the network.
   */
  merge(members: readonly MemberState[], nowMs: number): MembershipChange[] {
    const changes: MembershipChange[] = [];
    for (const incoming of members) {
      if (memberProblem(incoming) !== undefined) {
        this.rejectedEntries++;
        continue;
      }
      if (incoming.id === this.selfId) this.#mergeSelf(incoming, changes);
      else this.#mergeOther(copy(incoming), nowMs, changes);
    }
    this.#emit(changes);
    return changes;
  }

  #mergeSelf(incoming: MemberState, changes: MembershipChange[]): void {
    const self = this.#self().state;
    if (self.state === 'left') return;
    if (incoming.state === 'left') {
      self.state = 'left';
      changes.push({ kind: 'left', member: copy(self) });
      return;
    }
    // Someone holds a newer entry for our id than ours: a previous life of this
    // node (whose incarnation we failed to exceed). Outbid it, or our fresh
    // entry would lose to the stale one everywhere (SWIM's refutation).
    if (compareVersions(incoming, self) > 0) self.incarnation = incoming.incarnation + 1;
  }

  #mergeOther(incoming: MemberState, nowMs: number, changes: MembershipChange[]): void {
    const entry = this.#table.get(incoming.id);
    if (entry === undefined) {
      if (this.#table.size >= this.#membersMax) {
        this.rejectedEntries++;
        return;
      }
      const detector = incoming.state === 'member' ? new PhiAccrualDetector(this.#phi) : undefined;
      detector?.heartbeat(nowMs);
      this.#table.set(incoming.id, { state: incoming, up: true, detector, lastHeardMs: detector ? nowMs : undefined });
      // A left entry for a stranger is kept silently: it only stops us learning that id later.
      if (incoming.state === 'member') changes.push({ kind: 'added', member: copy(incoming) });
      return;
    }

    const current = entry.state;
    if (current.state === 'left') return; // sticky
    if (incoming.state === 'left') {
      entry.state = { ...current, state: 'left' };
      entry.detector = undefined;
      changes.push({ kind: 'left', member: copy(entry.state) });
      return;
    }
    if (compareVersions(incoming, current) <= 0) return;

    entry.state = incoming;
    entry.lastHeardMs = nowMs;
    if (incoming.incarnation > current.incarnation) {
      // A new process: its old heartbeat rhythm says nothing about this one.
      entry.detector!.reset();
      changes.push({ kind: 'restarted', member: copy(incoming) });
    }
    entry.detector!.heartbeat(nowMs);
    if (!sameShape(current, incoming)) changes.push({ kind: 'changed', member: copy(incoming), previous: copy(current) });
    if (!entry.up) {
      // A heartbeat it bumped after we marked it down: it is alive.
      entry.up = true;
      changes.push({ kind: 'up', member: copy(incoming) });
    }
  }

  /**
   * CLUSTER FORGET: marks a member left, here now and everywhere as gossip
   * spreads it. Returns no change for ourselves, unknown ids or already left
   * ones; the command handler checks those first to give Redis' errors.
   */
  forget(id: NodeId): MembershipChange[] {
    const entry = this.#table.get(id);
    if (id === this.selfId || entry === undefined || entry.state.state === 'left') return [];
    entry.state = { ...entry.state, state: 'left' };
    entry.detector = undefined;
    const changes: MembershipChange[] = [{ kind: 'left', member: copy(entry.state) }];
    this.#emit(changes);
    return changes;
  }

  /** Marks members down whose phi passed the threshold (and up, should a detector have recovered). */
  evaluate(nowMs: number): MembershipChange[] {
    const changes: MembershipChange[] = [];
    for (const [id, e] of this.#table) {
      if (id === this.selfId || e.state.state !== 'member' || e.detector === undefined) continue;
      const phi = e.detector.phi(nowMs);
      const available = phi <= e.detector.threshold;
      if (e.up && !available) {
        e.up = false;
        changes.push({ kind: 'down', member: copy(e.state), phi });
      } else if (!e.up && available) {
        e.up = true;
        changes.push({ kind: 'up', member: copy(e.state) });
      }
    }
    this.#emit(changes);
    return changes;
  }

  #emit(changes: MembershipChange[]): void {
    // After the whole update, so listeners see a consistent table.
    for (const change of changes) for (const listener of this.#listeners) listener(change);
  }
}
