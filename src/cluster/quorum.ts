// Counting replica answers against a quorum. A read's QuorumTally asks every
// owner of a key and is decided as soon as `need` of them answered (met) or
// so many failed that `need` can no longer be reached (failed); answers that
// come in after the decision are still collected, for read repair. A write's
// WriteRound counts acknowledgements only, the cheaper thing the hot path of
// writes needs.

import * as assert from 'node:assert';
import type { Waiter } from './ports.js';
import type { NodeId, VersionVector } from './types.js';

export type TallyState = 'pending' | 'met' | 'failed';

export class QuorumTally<T> {
  readonly answers = new Map<NodeId, T>();
  /** Created on the first failure: most rounds have none. */
  #failures: Map<NodeId, string> | null = null;
  #state: TallyState = 'pending';
  #onDecided: ((state: TallyState) => void) | undefined;
  #onSettled: (() => void) | undefined;

  constructor(
    /** Every node asked. */
    readonly asked: readonly NodeId[],
    /** Answers needed for success. */
    readonly need: number,
  ) {
    assert.ok(need >= 1 && need <= asked.length, `quorum ${need} of ${asked.length} is impossible`);
  }

  get state(): TallyState {
    return this.#state;
  }

  /** Every node asked has answered or failed. */
  get settled(): boolean {
    return this.answers.size + (this.#failures?.size ?? 0) === this.asked.length;
  }

  answer(node: NodeId, value: T): void {
    if (this.answers.has(node) || this.#failures?.has(node)) return;
    this.answers.set(node, value);
    if (this.#state === 'pending' && this.answers.size >= this.need) this.#decide('met');
    this.#checkSettled();
  }

  fail(node: NodeId, reason: string): void {
    if (this.answers.has(node) || this.#failures?.has(node)) return;
    const failures = (this.#failures ??= new Map());
    failures.set(node, reason);
    if (this.#state === 'pending' && this.asked.length - failures.size < this.need) this.#decide('failed');
    this.#checkSettled();
  }

  /** Resolves when the quorum is met or cannot be. */
  decided(): Promise<TallyState> {
    if (this.#state !== 'pending') return Promise.resolve(this.#state);
    return new Promise((resolve) => (this.#onDecided = resolve));
  }

  /** Resolves when every node asked has answered or failed. */
  allSettled(): Promise<void> {
    return new Promise((resolve) => this.whenSettled(resolve));
  }

  /** Calls fn (once) when every node asked has answered or failed: at once if they have. One listener at a time. */
  whenSettled(fn: () => void): void {
    if (this.settled) fn();
    else this.#onSettled = fn;
  }

  /** A one-line account for error replies (see shortfall). */
  describe(): string {
    return shortfall(this.answers.size, this.need, this.asked.length, this.#failures === null ? [] : [...this.#failures]);
  }

  #decide(state: TallyState): void {
    this.#state = state;
    this.#onDecided?.(state);
  }

  #checkSettled(): void {
    if (this.settled) this.#onSettled?.();
  }
}

/** Hears how a write round ended: the quorum error, or the vvs of the owners whose copy the version did not account for. */
export type DoneListener = (err: Error | null, unaccounted: VersionVector[]) => void;

/**
 * The acknowledgements of one new version sent to a key's owners: the waiter
 * of every owner's write, this node's own included. The round is done once
 * `need` owners have it, with the version vectors of those whose copy it did
 * not account for; or, when `need` cannot be reached, once every owner has
 * been heard: with at least `w` acknowledgements it still succeeds (the
 * context check is best effort, the write stands on W), else it fails with
 * the quorum error. The write path's tally, so it is one object: whenDone
 * takes a callback, and the Promise form (`acked`) is made only when asked
 * for, off the hot path.
 */
export class WriteRound implements Waiter<VersionVector | null> {
  /** Owners heard from, one bit per index in `owners` (N <= 30). */
  #heard = 0;
  #acks = 0;
  #unaccounted: VersionVector[] | null = null;
  #failures: Array<[NodeId, string]> | null = null;
  #settled = false;
  #error: Error | null = null;
  #onDone: DoneListener | null = null;
  /** Listeners after the first (SETs that rode along, see Coordinator #versionSet); null on most rounds. */
  #moreOnDone: DoneListener[] | null = null;
  #acked: Promise<VersionVector[]> | null = null;

  constructor(
    readonly owners: readonly NodeId[],
    /** Acknowledgements that make the write succeed. */
    readonly w: number,
    /** Answers to wait for when all goes well (W, or the N-W+1 of a SET's context check). */
    readonly need: number,
    private readonly failed: (detail: string) => Error,
  ) {
    assert.ok(owners.length <= 30 && w >= 1 && w <= need && need <= owners.length, `write round ${w}/${need} of ${owners.length} is impossible`);
  }

  answer(node: NodeId, seen: VersionVector | null): void {
    if (!this.#hear(node)) return;
    this.#acks++;
    if (seen !== null) (this.#unaccounted ??= []).push(seen);
    this.#check();
  }

  fail(node: NodeId, reason: string): void {
    if (!this.#hear(node)) return;
    (this.#failures ??= []).push([node, reason]);
    this.#check();
  }

  /** The round is done (succeeded or failed). */
  get settled(): boolean {
    return this.#settled;
  }

  /** Calls fn once the round is done (at once if it is): the error, or the vvs it did not account for. Listeners are called in the order they came. */
  whenDone(fn: DoneListener): void {
    if (this.#settled) fn(this.#error, this.#unaccounted ?? []);
    else if (this.#onDone === null) this.#onDone = fn;
    else (this.#moreOnDone ??= []).push(fn);
  }

  /** whenDone as a Promise, rejected with the quorum error. */
  get acked(): Promise<VersionVector[]> {
    if (this.#acked === null) {
      this.#acked = new Promise((resolve, reject) => this.whenDone((err, unaccounted) => (err ? reject(err) : resolve(unaccounted))));
      this.#acked.catch(() => {}); // observed by the caller; this keeps an early failure from being "unhandled"
    }
    return this.#acked;
  }

  /** Marks an owner heard; false for a node that is not an owner or was heard already. */
  #hear(node: NodeId): boolean {
    const i = this.owners.indexOf(node);
    if (i < 0 || (this.#heard & (1 << i)) !== 0) return false;
    this.#heard |= 1 << i;
    return true;
  }

  #check(): void {
    if (this.#settled) return;
    if (this.#acks < this.need && this.#heard !== (1 << this.owners.length) - 1) return;
    this.#settled = true;
    if (this.#acks < this.w) this.#error = this.failed(shortfall(this.#acks, this.w, this.owners.length, this.#failures ?? []));
    const unaccounted = this.#unaccounted ?? [];
    this.#onDone?.(this.#error, unaccounted);
    if (this.#moreOnDone !== null) for (const fn of this.#moreOnDone) fn(this.#error, unaccounted);
  }
}

/** What a quorum error says: "1 of 2 needed (3 asked; 0a1b2c3d: TIMEOUT)". */
function shortfall(got: number, need: number, asked: number, failures: ReadonlyArray<[NodeId, string]>): string {
  const why = failures.map(([n, r]) => `${n.slice(0, 8)}: ${r}`).join(', ');
  return `${got} of ${need} needed (${asked} asked${why ? `; ${why}` : ''})`;
}
