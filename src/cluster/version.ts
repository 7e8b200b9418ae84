// Dotted version vectors: how replicas of a key agree on what happened to it.
//
// An object is a set of siblings, each tagged with a dot (the node that
// coordinated the write, and that node's counter for the key), plus a version
// vector, the causal context: every dot at or below vv[node] has been seen.
// This is Riak's DVV in the form of Almeida et al.'s "dotted causal
// container": a sibling is obsolete exactly when a context has seen its dot
// but the object carrying that context no longer holds it. Only the writes a
// client saw are replaced by its write, so concurrent writes survive as
// siblings, and the number of siblings is bounded by the number of truly
// concurrent writes, not by the number of retries (sibling explosion).
//
// Objects and siblings are treated as immutable: every function returns new
// containers and never mutates its arguments (sibling objects and their
// value buffers may be shared between results).
//
// Canonical form, kept by every function here: vv sorted by node id without
// zero entries; siblings sorted by (node, counter) with distinct dots; every
// dot covered by vv. Two equal objects are then equal field by field, and
// encode to identical bytes (protocol/object.ts).

import assert from 'node:assert/strict';
import type { ObjectLimits } from '../../protocol/object.js';
import { objectSiblingsDecodeMax, objectVVEntriesMax, siblingsMax as siblingsMaxDefault, valueBytesMax } from '../constants.js';
import type { NodeId, Sibling, VersionedObject, VersionVector } from './types.js';

/** What this node accepts when it decodes an object (protocol/object.ts) from disk or a peer. */
export const objectLimits: ObjectLimits = {
  siblingsMax: objectSiblingsDecodeMax,
  vvEntriesMax: objectVVEntriesMax,
  valueBytesMax,
};

/** A dot: one write of one key by one coordinator. */
export interface Dot {
  node: NodeId;
  counter: number;
}

export function vvGet(vv: VersionVector, node: NodeId): number {
  return vv.get(node) ?? 0;
}

/** True when `a` has seen everything `b` has (a >= b pointwise). */
export function descends(a: VersionVector, b: VersionVector): boolean {
  for (const [node, counter] of b) if (vvGet(a, node) < counter) return false;
  return true;
}

/** Neither descends from the other. */
export function concurrentVV(a: VersionVector, b: VersionVector): boolean {
  return !descends(a, b) && !descends(b, a);
}

/** Pointwise maximum, canonical (sorted by node id, no zeros). */
export function mergeVV(a: VersionVector, b: VersionVector): VersionVector {
  const out = new Map<NodeId, number>(a);
  for (const [node, counter] of b) if (counter > vvGet(out, node)) out.set(node, counter);
  return canonicalVV(out);
}

function canonicalVV(vv: VersionVector): VersionVector {
  const entries = [...vv].filter(([, c]) => c > 0);
  entries.sort(([x], [y]) => compareIds(x, y));
  return new Map(entries);
}

/** True when the context `vv` has seen this dot. */
export function seen(vv: VersionVector, dot: Dot): boolean {
  return vvGet(vv, dot.node) >= dot.counter;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Storage order of siblings: by dot. */
export function compareDots(a: Dot, b: Dot): number {
  return compareIds(a.node, b.node) || a.counter - b.counter;
}

function dotKey(dot: Dot): string {
  return `${dot.node}:${dot.counter}`;
}

/**
 * Orders siblings for a plain GET: larger HLC is newer; ties go to the larger
 * node id, then the larger counter. Every node applies the same total order,
 * so every node answers the same, never by arrival order.
 */
export function compareNewness(a: Sibling, b: Sibling): number {
  return a.hlc - b.hlc || compareIds(a.node, b.node) || a.counter - b.counter;
}

/**
 * Two siblings with one dot should be the same write. If a coordinator ever
 * reused a dot (it lost its local copy, say), pick one by content so merge
 * still gives the same answer in any order.
 */
function pickSameDot(a: Sibling, b: Sibling): Sibling {
  const c =
    a.hlc - b.hlc ||
    (a.value === null ? 0 : 1) - (b.value === null ? 0 : 1) ||
    (a.value !== null && b.value !== null ? Buffer.compare(a.value, b.value) : 0) ||
    a.expiresAtMs - b.expiresAtMs;
  return c >= 0 ? a : b;
}

/** The highest HLC among an object's siblings (0 if none). */
export function newestHlc(obj: VersionedObject): number {
  let hlc = 0;
  for (const s of obj.siblings) if (s.hlc > hlc) hlc = s.hlc;
  return hlc;
}

export function emptyObject(): VersionedObject {
  return { vv: new Map(), siblings: [] };
}

/**
 * The DVV sync of two replicas' copies. A sibling of one side is kept if the
 * other side holds it too, or has not seen its dot; a sibling the other side
 * has seen but no longer holds was superseded there. The context is the
 * pointwise max. Commutative, associative and idempotent.
 */
export function merge(a: VersionedObject, b: VersionedObject): VersionedObject {
  const aDots = new Map(a.siblings.map((s) => [dotKey(s), s]));
  const bDots = new Map(b.siblings.map((s) => [dotKey(s), s]));
  const kept = new Map<string, Sibling>();
  for (const s of a.siblings) {
    const key = dotKey(s);
    const twin = bDots.get(key);
    if (twin !== undefined) kept.set(key, pickSameDot(s, twin));
    else if (!seen(b.vv, s)) kept.set(key, s);
  }
  for (const s of b.siblings) {
    const key = dotKey(s);
    if (!aDots.has(key) && !seen(a.vv, s)) kept.set(key, s);
  }
  const out: VersionedObject = {
    vv: mergeVV(a.vv, b.vv),
    siblings: [...kept.values()].sort(compareDots),
  };
  assertCanonical(out);
  return out;
}

/**
 * A write coordinated by `actor`. `context` is what the writer had seen: the
 * causal context a client sent back, or for a plain SET the merged vv the
 * coordinator read from the replicas. Local siblings covered by the context
 * are replaced; others are concurrent with this write and stay.
 *
 * The new dot is (actor, max(local.vv[actor], context[actor]) + 1): it must be
 * above anything the actor issued before, as far as anyone here knows.
 *
 * If more than `siblingsMax` siblings would remain, only the newest by HLC
 * are kept (the new write always is). The dropped dots stay in the vv, so
 * other replicas drop the same siblings when they sync with this copy.
 * Value null writes a tombstone.
 */
export function update(
  local: VersionedObject | null,
  context: VersionVector,
  actor: NodeId,
  hlc: number,
  value: Buffer | null,
  expiresAtMs: number,
  siblingsMax: number = siblingsMaxDefault,
): VersionedObject {
  assert.ok(siblingsMax >= 1, 'siblingsMax must be at least 1');
  const localVV = local?.vv ?? new Map<NodeId, number>();
  const counter = Math.max(vvGet(localVV, actor), vvGet(context, actor)) + 1;
  const written: Sibling = { node: actor, counter, hlc, value, expiresAtMs };

  let siblings = (local?.siblings ?? []).filter((s) => !seen(context, s));
  if (siblings.length + 1 > siblingsMax) {
    siblings = siblings.sort((x, y) => compareNewness(y, x)).slice(0, siblingsMax - 1);
  }
  siblings.push(written);

  // One new Map, in canonical order: the merged context with the actor's counter (context is often local's own vv).
  const vv = context === localVV ? new Map(localVV) : mergeVV(localVV, context);
  const sorted = vv.has(actor);
  vv.set(actor, counter);
  const out: VersionedObject = { vv: sorted ? vv : canonicalVV(vv), siblings: siblings.sort(compareDots) };
  assertCanonical(out);
  return out;
}

/**
 * True when `incoming` accounts for everything the copy `prior` holds: its
 * context covers prior's, and each of its siblings is either new to prior (its
 * dot unseen there) or held there identically. merge(prior, incoming) is then
 * incoming itself, and a write versioned as `incoming` supersedes whatever
 * `prior` had. A null prior (no copy) is always accounted for.
 */
export function accountsFor(incoming: VersionedObject, prior: VersionedObject | null): boolean {
  if (prior === null) return true;
  if (!descends(incoming.vv, prior.vv)) return false;
  for (const s of incoming.siblings) {
    if (!seen(prior.vv, s)) continue;
    const twin = prior.siblings.find((p) => p.node === s.node && p.counter === s.counter);
    if (twin === undefined || !equalSiblings(twin, s)) return false;
  }
  return true;
}

/** Not expired at `nowMs` (expiresAtMs 0 never expires). */
export function isCurrent(s: Sibling, nowMs: number): boolean {
  return s.expiresAtMs === 0 || s.expiresAtMs > nowMs;
}

/**
 * The value a plain GET returns: the newest current sibling by HLC, then node
 * id, then counter. Undefined when that winner is a tombstone (the key was
 * deleted) or every sibling has expired.
 */
export function resolve(obj: VersionedObject, nowMs: number): Sibling | undefined {
  let winner: Sibling | undefined;
  for (const s of obj.siblings) {
    if (!isCurrent(s, nowMs)) continue;
    if (winner === undefined || compareNewness(s, winner) > 0) winner = s;
  }
  return winner?.value === null ? undefined : winner;
}

/** The current, non-tombstone siblings, newest first (for sibling-aware reads). */
export function liveSiblings(obj: VersionedObject, nowMs: number): Sibling[] {
  return obj.siblings.filter((s) => s.value !== null && isCurrent(s, nowMs)).sort((a, b) => compareNewness(b, a));
}

export function equalVV(a: VersionVector, b: VersionVector): boolean {
  if (a.size !== b.size) return false;
  for (const [node, counter] of a) if (b.get(node) !== counter) return false;
  return true;
}

export function equalSiblings(a: Sibling, b: Sibling): boolean {
  return (
    a.node === b.node &&
    a.counter === b.counter &&
    a.hlc === b.hlc &&
    a.expiresAtMs === b.expiresAtMs &&
    (a.value === null ? b.value === null : b.value !== null && a.value.equals(b.value))
  );
}

/** Same context and same siblings (both are expected canonical, as every function here returns). */
export function equalObjects(a: VersionedObject, b: VersionedObject): boolean {
  return (
    equalVV(a.vv, b.vv) &&
    a.siblings.length === b.siblings.length &&
    a.siblings.every((s, i) => equalSiblings(s, b.siblings[i]!))
  );
}

/** Why `obj` is not in canonical form, or undefined when it is. For input checks and assertions. */
export function canonicalProblem(obj: VersionedObject): string | undefined {
  let previous: string | undefined;
  for (const [node, counter] of obj.vv) {
    if (!Number.isSafeInteger(counter) || counter <= 0) return `vv counter ${counter} for ${node} is not positive`;
    if (previous !== undefined && compareIds(previous, node) >= 0) return 'vv entries are not sorted by node id';
    previous = node;
  }
  for (let i = 0; i < obj.siblings.length; i++) {
    const s = obj.siblings[i]!;
    if (!seen(obj.vv, s)) return `sibling ${dotKey(s)} is not covered by the vv`;
    if (i > 0 && compareDots(obj.siblings[i - 1]!, s) >= 0) return 'siblings are not sorted by distinct dots';
  }
  return undefined;
}

function assertCanonical(obj: VersionedObject): void {
  const problem = canonicalProblem(obj);
  assert.ok(problem === undefined, `version.ts produced a non-canonical object: ${problem}`);
}
