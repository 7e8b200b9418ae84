// The gossip loop: drives a Membership over the ports. Every round (about
// gossipIntervalMs, jittered so nodes do not fall into lockstep) it
// re-evaluates liveness, bumps our heartbeat, and does a push-pull exchange
// with the round's targets: it sends our table, the peer merges it and
// answers with its own, which we merge. Incoming exchanges arrive through
// `handle`, which the node's peer dispatcher calls for 'gossip' messages.
//
// A failed or timed-out exchange is simply dropped: deciding that a member is
// down is the failure detector's job, from the heartbeats that stop arriving,
// not the job of any single request.

import assert from 'node:assert/strict';
import type { Membership } from './membership.js';
import type { Clock, PeerAddress, Random, Timers, Transport } from './ports.js';
import type { NodeId, PeerMessage } from './types.js';
import { gossipIntervalMsDefault, gossipRequestTimeoutMs } from '../constants.js';

export interface GossipPorts {
  /** Preferably monotonic (ports.ts `monotonicClock`): it times heartbeats. */
  clock: Clock;
  timers: Timers;
  random: Random;
  transport: Transport;
}

export interface GossipOptions {
  intervalMs?: number;
  requestTimeoutMs?: number;
}

/** Rounds are spread over interval * (1 ± this), so nodes started together drift apart. */
const roundJitter = 0.1;

export class GossipDriver {
  readonly intervalMs: number;
  readonly requestTimeoutMs: number;
  /** Rounds run so far. */
  rounds = 0;
  #timer: unknown;
  #running = false;
  /** Set by stop(): answers arriving afterwards belong to a stopped node. */
  #stopped = false;

  constructor(
    readonly membership: Membership,
    private readonly ports: GossipPorts,
    options: GossipOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? gossipIntervalMsDefault;
    this.requestTimeoutMs = options.requestTimeoutMs ?? gossipRequestTimeoutMs;
    assert.ok(this.intervalMs > 0 && this.requestTimeoutMs > 0);
  }

  /** Starts the rounds; the first comes after a random part of one interval. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopped = false;
    this.#schedule(this.ports.random.next() * this.intervalMs);
  }

  /** Stops the rounds; answers still in flight are ignored. */
  stop(): void {
    this.#running = false;
    this.#stopped = true;
    if (this.#timer !== undefined) this.ports.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  get running(): boolean {
    return this.#running;
  }

  #schedule(delayMs: number): void {
    this.#timer = this.ports.timers.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#running) return;
      this.round();
      this.#schedule(this.intervalMs * (1 - roundJitter + 2 * roundJitter * this.ports.random.next()));
    }, delayMs);
  }

  /** One round, now. Public so tests and CLUSTER MEET can hurry things along. */
  round(): void {
    const now = this.ports.clock.now();
    this.rounds++;
    this.membership.evaluate(now);
    const targets = this.membership.tick(now);
    const msg = this.#message();
    for (const peer of targets.peers) {
      this.#exchange(this.ports.transport.request(peer, msg, this.requestTimeoutMs));
    }
    for (const seed of targets.seeds) {
      this.#exchange(this.ports.transport.requestAddress(seed, msg, this.requestTimeoutMs));
    }
  }

  /**
   * CLUSTER MEET: remembers the address as a seed and gossips with it at once.
   * Resolves true when it answered (its members are merged by then).
   */
  meet(address: PeerAddress): Promise<boolean> {
    this.membership.addSeed(address);
    return this.#exchange(this.ports.transport.requestAddress(address, this.#message(), this.requestTimeoutMs));
  }

  /** Answers a peer's gossip: merge its table, reply with ours. */
  handle(from: NodeId, msg: PeerMessage): PeerMessage {
    if (msg.type !== 'gossip') {
      return { type: 'error', code: 'ERR', message: `gossip handler got a '${msg.type}' message` };
    }
    this.membership.merge(msg.members, this.ports.clock.now());
    return this.#message();
  }

  #message(): PeerMessage {
    return { type: 'gossip', from: this.membership.selfId, members: this.membership.digest() };
  }

  #exchange(request: Promise<PeerMessage>): Promise<boolean> {
    return request.then(
      (answer) => {
        if (this.#stopped || answer.type !== 'gossip') return false;
        this.membership.merge(answer.members, this.ports.clock.now());
        return true;
      },
      () => false, // no answer: the failure detector will notice if it keeps happening
    );
  }
}
