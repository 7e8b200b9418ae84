// A deterministic simulation of a cluster in one process: a fake clock, a
// timer queue, a seeded PRNG and a fake network between in-process nodes,
// each a Membership driven by the real GossipDriver. The network has per-link
// delay, loss, reordering (a random extra delay), partitions, and nodes can be
// killed and restarted. Everything random comes from the one seed, and events
// run in (time, insertion) order, so the same seed replays the same trace.
//
// Time only moves when the simulation runs timers; between two timers the
// microtask queue is drained (promise continuations of requests), so a
// response's `.then` runs at the simulated instant it was delivered.

import assert from 'node:assert/strict';
import { GossipDriver } from '../../src/cluster/gossip.js';
import { Membership } from '../../src/cluster/membership.js';
import type { MembershipChange } from '../../src/cluster/membership.js';
import { coordinateBatching, readBatching, seededRandom, sendAlone, writeBatching } from '../../src/cluster/ports.js';
import type { Clock, PeerAddress, PeerHandler, Random, Timers, Transport } from '../../src/cluster/ports.js';
import { Ring } from '../../src/cluster/ring.js';
import type { MemberState, NodeId, PeerMessage } from '../../src/cluster/types.js';
import { gossipIntervalMsDefault } from '../../src/constants.js';
import { nodeId } from './helpers.js';

export class SimClock implements Clock {
  ms = 0;
  now(): number {
    return this.ms;
  }
}

interface TimerEntry {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A binary min-heap of timers ordered by (time, insertion). */
export class SimTimers implements Timers {
  #heap: TimerEntry[] = [];
  #seq = 0;
  constructor(private readonly clock: SimClock) {}

  setTimeout(fn: () => void, ms: number): unknown {
    const entry: TimerEntry = { at: this.clock.ms + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#push(entry);
    return entry;
  }

  clearTimeout(handle: unknown): void {
    (handle as TimerEntry).cancelled = true;
  }

  /** The next live timer due at or before `limitMs`, removed from the queue. */
  popDue(limitMs: number): TimerEntry | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (top.at > limitMs) return undefined;
      this.#pop();
      if (!top.cancelled) return top;
    }
    return undefined;
  }

  #less(a: TimerEntry, b: TimerEntry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(e: TimerEntry): void {
    const h = this.#heap;
    h.push(e);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

export interface NetworkOptions {
  delayMinMs: number;
  delayMaxMs: number;
  /** Probability that any one message is lost. */
  dropProbability: number;
  /** Probability that a message is held back by up to `reorderDelayMs` more, overtaking order. */
  reorderProbability: number;
  reorderDelayMs: number;
}

export const networkDefaults: NetworkOptions = {
  delayMinMs: 1,
  delayMaxMs: 10,
  dropProbability: 0,
  reorderProbability: 0.05,
  reorderDelayMs: 100,
};

export interface SimNode {
  label: string;
  id: NodeId;
  address: PeerAddress;
  incarnation: number;
  alive: boolean;
  membership: Membership;
  driver: GossipDriver;
  /** Every membership change this node reported, with the time. */
  changes: Array<{ atMs: number; change: MembershipChange }>;
}

export interface SimOptions {
  seed: number;
  network?: Partial<NetworkOptions>;
  intervalMs?: number;
  gossipFanout?: number;
}

const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class Sim {
  readonly clock = new SimClock();
  readonly timers = new SimTimers(this.clock);
  readonly random: Random;
  readonly network: NetworkOptions;
  readonly intervalMs: number;
  readonly nodes: SimNode[] = [];
  readonly trace: string[] = [];
  /** Unordered pairs "a|b" that cannot talk. */
  readonly #cut = new Set<string>();
  readonly #handlers = new Map<NodeId, PeerHandler>();
  readonly #seed: number;
  readonly #fanout: number | undefined;

  constructor(options: SimOptions) {
    this.#seed = options.seed;
    this.random = seededRandom(options.seed);
    this.network = { ...networkDefaults, ...options.network };
    this.intervalMs = options.intervalMs ?? gossipIntervalMsDefault;
    this.#fanout = options.gossipFanout;
  }

  log(event: string): void {
    this.trace.push(`${this.clock.ms.toFixed(3)} ${event}`);
  }

  node(label: string): SimNode {
    const n = this.nodes.find((x) => x.label === label);
    assert.ok(n, `no node ${label}`);
    return n;
  }

  /** Creates and starts a node; `seeds` are labels of nodes whose addresses it starts from. */
  addNode(label: string, seeds: string[] = []): SimNode {
    const index = this.nodes.length;
    const node = {
      label,
      id: nodeId(`sim-${label}`),
      address: { host: `10.0.0.${index + 1}`, port: 17000 },
      incarnation: 0,
      alive: false,
      changes: [],
    } as unknown as SimNode;
    this.nodes.push(node);
    this.#boot(node, seeds.map((s) => this.node(s).address));
    return node;
  }

  #boot(node: SimNode, seeds: PeerAddress[]): void {
    node.incarnation++;
    // Each life of each node gets its own stream, derived from the one seed.
    const random = seededRandom(this.#seed * 7919 + this.nodes.indexOf(node) * 101 + node.incarnation);
    const self: MemberState = {
      id: node.id,
      host: node.address.host,
      port: 7000,
      clusterPort: node.address.port,
      incarnation: node.incarnation,
      heartbeat: 0,
      state: 'member',
      weight: 1,
      datacenter: 'dc1',
      rack: 'r1',
    };
    node.membership = new Membership(self, {
      random,
      seeds,
      gossipFanout: this.#fanout,
      phi: { firstHeartbeatEstimateMs: this.intervalMs },
    });
    node.membership.onChange((change) => {
      node.changes.push({ atMs: this.clock.ms, change });
      this.log(`${node.label} ${change.kind} ${this.labelOf(change.member.id)}`);
    });
    node.driver = new GossipDriver(node.membership, { clock: this.clock, timers: this.timers, random, transport: this.#transport(node) }, {
      intervalMs: this.intervalMs,
    });
    this.#handlers.set(node.id, (from, msg) => node.driver.handle(from, msg));
    node.alive = true;
    node.driver.start();
    this.log(`${node.label} start incarnation ${node.incarnation}`);
  }

  labelOf(id: NodeId): string {
    return this.nodes.find((n) => n.id === id)?.label ?? id.slice(0, 6);
  }

  /** Stops the process: no more rounds, no answers, and its state is lost. */
  kill(label: string): void {
    const node = this.node(label);
    node.driver.stop();
    node.alive = false;
    this.log(`${label} killed`);
  }

  /** Starts a killed node again: same id, higher incarnation, empty table, the given seeds. */
  restart(label: string, seeds: string[]): void {
    const node = this.node(label);
    assert.ok(!node.alive, `${label} is running`);
    this.#boot(node, seeds.map((s) => this.node(s).address));
  }

  /** Cuts every link between the two groups (both directions). */
  partition(a: string[], b: string[]): void {
    for (const x of a) for (const y of b) this.#cut.add(this.#pair(this.node(x).id, this.node(y).id));
    this.log(`partition [${a}] | [${b}]`);
  }

  heal(): void {
    this.#cut.clear();
    this.log('heal');
  }

  #pair(a: NodeId, b: NodeId): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  #linkUp(from: NodeId, to: NodeId): boolean {
    const a = this.nodes.find((n) => n.id === from);
    const b = this.nodes.find((n) => n.id === to);
    return !!a?.alive && !!b?.alive && !this.#cut.has(this.#pair(from, to));
  }

  /** Sends one message over the fake network; `deliver` runs at the receiver if it arrives. */
  #send(from: NodeId, to: NodeId, msg: PeerMessage, deliver: (msg: PeerMessage) => void): void {
    const what = `${this.labelOf(from)}->${this.labelOf(to)} ${msg.type}`;
    if (!this.#linkUp(from, to)) return this.log(`${what} blocked`);
    if (this.random.next() < this.network.dropProbability) return this.log(`${what} dropped`);
    let delay = this.network.delayMinMs + this.random.next() * (this.network.delayMaxMs - this.network.delayMinMs);
    if (this.random.next() < this.network.reorderProbability) delay += this.random.next() * this.network.reorderDelayMs;
    // A copy, as bytes on a wire would be: nodes must never share objects.
    const copy = structuredClone(msg);
    this.timers.setTimeout(() => {
      // A partition or a kill while the message was in flight loses it too.
      if (!this.#linkUp(from, to)) return this.log(`${what} lost in flight`);
      this.log(`${what} delivered`);
      deliver(copy);
    }, delay);
  }

  #transport(node: SimNode): Transport {
    const incarnation = node.incarnation; // the life this transport belongs to
    const request = (to: NodeId, msg: PeerMessage, timeoutMs: number): Promise<PeerMessage> =>
      new Promise((resolve, reject) => {
        let settled = false;
        const timer = this.timers.setTimeout(() => {
          if (settled) return;
          settled = true;
          reject(new Error('timeout'));
        }, timeoutMs);
        this.#send(node.id, to, msg, (delivered) => {
          const handler = this.#handlers.get(to)!;
          void Promise.resolve(handler(node.id, delivered)).then((answer) => {
            this.#send(to, node.id, answer, (reply) => {
              if (settled || node.incarnation !== incarnation) return; // a previous life asked
              settled = true;
              this.timers.clearTimeout(timer);
              resolve(reply);
            });
          });
        });
      });
    return {
      request,
      sendWrite: (to, item, waiter, timeoutMs) => sendAlone({ request }, writeBatching, to, item, waiter, timeoutMs),
      sendRead: (to, item, waiter, timeoutMs) => sendAlone({ request }, readBatching, to, item, waiter, timeoutMs),
      sendCoordinate: (to, item, waiter, timeoutMs) => sendAlone({ request }, coordinateBatching, to, item, waiter, timeoutMs),
      requestAddress: (to, msg, timeoutMs) => {
        const target = this.nodes.find((n) => n.address.host === to.host && n.address.port === to.port);
        if (target === undefined) return Promise.reject(new Error('connection refused'));
        return request(target.id, msg, timeoutMs);
      },
    };
  }

  /** Runs every timer due in the next `ms` of simulated time. */
  async run(ms: number): Promise<void> {
    const end = this.clock.ms + ms;
    for (;;) {
      const timer = this.timers.popDue(end);
      if (timer === undefined) break;
      this.clock.ms = timer.at;
      timer.fn();
      await drain();
    }
    this.clock.ms = end;
  }

  /** Runs until `done()` holds (checked every `stepMs`); returns the simulated ms it took, or undefined. */
  async runUntil(done: () => boolean, maxMs: number, stepMs = 10): Promise<number | undefined> {
    const start = this.clock.ms;
    while (this.clock.ms - start < maxMs) {
      if (done()) return this.clock.ms - start;
      await this.run(stepMs);
    }
    return done() ? this.clock.ms - start : undefined;
  }

  alive(): SimNode[] {
    return this.nodes.filter((n) => n.alive);
  }

  /** What must be equal on every node once gossip converged: entries without heartbeats. */
  static shape(node: SimNode): string {
    return node.membership
      .members()
      .map((m) => `${m.id}/${m.state}/${m.incarnation}/${m.host}:${m.clusterPort}/${m.weight}`)
      .join(',');
  }

  /** Every running node holds the same table, knows `expected` members, and computes the same ring. */
  converged(expected: number): boolean {
    const alive = this.alive();
    const shapes = new Set(alive.map(Sim.shape));
    if (shapes.size !== 1) return false;
    if (alive[0]!.membership.ringMembers().length !== expected) return false;
    const rings = new Set(alive.map((n) => ringFingerprint(n.membership.ringMembers())));
    return rings.size === 1;
  }

  /** Every running node sees every other running node up. */
  allUp(): boolean {
    const alive = this.alive();
    return alive.every((a) => alive.every((b) => a === b || a.membership.isUp(b.id)));
  }
}

const ringCache = new Map<string, string>();

/** The ring fingerprint of a member list (cached: rings are rebuilt only when the membership differs). */
export function ringFingerprint(members: MemberState[]): string {
  const key = members.map((m) => `${m.id}/${m.weight}`).join(',');
  let fp = ringCache.get(key);
  if (fp === undefined) {
    fp = new Ring(members).fingerprint;
    ringCache.set(key, fp);
  }
  return fp;
}
