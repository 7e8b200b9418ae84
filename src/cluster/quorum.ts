// Counting replica answers against a quorum. One round asks every owner of a
// key and is decided as soon as `need` of them answered (met) or so many
// failed that `need` can no longer be reached (failed). Answers that come in
// after the decision are still collected, for read repair.

import * as assert from 'node:assert';
import type { NodeId } from './types.js';

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
    if (this.settled) return Promise.resolve();
    return new Promise((resolve) => (this.#onSettled = resolve));
  }

  /** A one-line account for error replies (`need` when the caller's own minimum is lower than the tally's): "1 of 2 needed (3 asked; node abc: TIMEOUT)". */
  describe(need: number = this.need): string {
    const why = [...(this.#failures ?? [])].map(([n, r]) => `${n.slice(0, 8)}: ${r}`).join(', ');
    return `${this.answers.size} of ${need} needed (${this.asked.length} asked${why ? `; ${why}` : ''})`;
  }

  #decide(state: TallyState): void {
    this.#state = state;
    this.#onDecided?.(state);
  }

  #checkSettled(): void {
    if (this.settled) this.#onSettled?.();
  }
}
