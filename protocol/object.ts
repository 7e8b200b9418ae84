// The binary form of a versioned object (src/cluster/types.ts): a key's
// siblings and version vector, as stored as a segment record's value and as
// carried in peer frames. This file is the ONE home of that format
// (docs/cluster.md describes the model). Pure codec: bytes in, values out.
// The segment record and the peer frame around it carry the checksums.
//
// All integers are little-endian.
//
//   offset size field
//        0    1 version        OBJECT_FORMAT_VERSION (1)
//        1    2 vvCount        u16, <= limits.vvEntriesMax
//        3      vv entries, vvCount x 24 bytes, sorted by node id, ids distinct:
//                 0   20 node id     the 40-hex node id as 20 raw bytes
//                20    4 counter     u32, >= 1
//        .    2 siblingCount   u16, <= limits.siblingsMax
//        .      siblings, each 27 bytes + value, sorted by (node, counter), dots distinct:
//                 0    2 node        u16 index into the vv entries (the dot's node)
//                 2    4 counter     u32, 1 ..= that node's vv counter (the vv covers every dot)
//                 6    8 hlc         u64 <= 2^53-1, hybrid logical clock of the write
//                14    8 expiresAtMs u64 <= 2^53-1, absolute unix ms, 0 = never
//                22    1 flags       bit 0: tombstone (a delete); other bits reserved, 0
//                23    4 valueLength u32 <= limits.valueBytesMax; 0 for a tombstone
//                27    v value
//
// The buffer holds exactly one object: trailing bytes are an error.
//
// Why a node index rather than the id per sibling: the vv must name every
// sibling's node anyway, so siblings cost 2 bytes of node instead of 20.
// Why the canonical order is enforced on decode: equal objects then have
// equal bytes, so replicas (and Merkle trees over these bytes) agree on
// "same" without decoding.

import type { NodeId, Sibling, VersionedObject } from '../src/cluster/types.js';

export const OBJECT_FORMAT_VERSION = 1;
const VV_START = 3; // after version and vvCount
const VV_ENTRY_BYTES = 24;
const SIBLING_HEADER_BYTES = 27;
const NODE_ID_BYTES = 20;
const u16Max = 0xffff;
const u32Max = 0xffffffff;
const two32 = 2 ** 32;

export const ObjectFlag = {
  Tombstone: 1,
} as const;
const objectFlagsKnown = ObjectFlag.Tombstone;

/** What a decoder accepts (src/cluster/version.ts exports the node's values as `objectLimits`). */
export interface ObjectLimits {
  siblingsMax: number;
  vvEntriesMax: number;
  valueBytesMax: number;
}

export type ObjectDecodeResult = { kind: 'ok'; object: VersionedObject } | { kind: 'corrupt'; reason: string };

const nodeIdPattern = /^[0-9a-f]{40}$/;
/** Ids already checked (a cluster has few nodes; bounded all the same). */
const knownNodeIds = new Set<string>();
const knownNodeIdsMax = 4096;

/** True for ids this format can carry: 40 lowercase hex characters. */
export function isNodeId(id: string): boolean {
  if (knownNodeIds.has(id)) return true;
  if (!nodeIdPattern.test(id)) return false;
  if (knownNodeIds.size < knownNodeIdsMax) knownNodeIds.add(id);
  return true;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Bytes `encodeObject` will produce. */
export function encodedObjectLength(obj: VersionedObject): number {
  let length = 1 + 2 + obj.vv.size * VV_ENTRY_BYTES + 2;
  for (const s of obj.siblings) length += SIBLING_HEADER_BYTES + (s.value?.length ?? 0);
  return length;
}

function checkU53(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} ${value} is not an integer in 0..2^53-1`);
}

function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value % two32, offset);
  buf.writeUInt32LE(Math.floor(value / two32), offset + 4);
}

function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset + 4) * two32 + buf.readUInt32LE(offset);
}

/** The position of `node` in the sorted vv entries (a sibling's node is always there: checked by the caller). */
function vvIndexOf(vv: Array<[NodeId, number]>, node: NodeId): number {
  for (let i = 0; i < vv.length; i++) if (vv[i]![0] === node) return i;
  throw new Error(`sibling node ${node} missing from the vv`); // a bug here: encodeObject checked coverage
}

/**
 * Encodes an object into its canonical bytes (vv sorted by id, siblings by
 * dot, whatever order they come in). An object the format cannot represent
 * (an id that is not 40 hex, a dot the vv does not cover, a duplicate dot, a
 * counter above u32) is a programming error: RangeError.
 */
export function encodeObject(obj: VersionedObject): Buffer {
  // Objects from src/cluster/version.ts are already canonical: check the order in one pass and sort only if not.
  let vv = [...obj.vv];
  let sorted = true;
  for (let i = 0; i < vv.length; i++) {
    if (vv[i]![1] === 0 || (i > 0 && compareIds(vv[i - 1]![0], vv[i]![0]) >= 0)) sorted = false;
  }
  if (!sorted) vv = vv.filter(([, c]) => c !== 0).sort(([a], [b]) => compareIds(a, b));
  if (vv.length > u16Max) throw new RangeError(`${vv.length} vv entries do not fit the format`);
  if (obj.siblings.length > u16Max) throw new RangeError(`${obj.siblings.length} siblings do not fit the format`);
  for (const [id, counter] of vv) {
    if (!isNodeId(id)) throw new RangeError(`node id ${JSON.stringify(id)} is not 40 lowercase hex characters`);
    if (!Number.isInteger(counter) || counter < 1 || counter > u32Max) throw new RangeError(`vv counter ${counter} out of range`);
  }
  let siblings = obj.siblings;
  for (let i = 1; i < siblings.length; i++) {
    const a = siblings[i - 1]!;
    const b = siblings[i]!;
    if ((compareIds(a.node, b.node) || a.counter - b.counter) > 0) {
      siblings = siblings.slice().sort((x, y) => compareIds(x.node, y.node) || x.counter - y.counter);
      break;
    }
  }
  for (let i = 0; i < siblings.length; i++) {
    const s = siblings[i]!;
    const covered = obj.vv.get(s.node);
    if (covered === undefined || !Number.isInteger(s.counter) || s.counter < 1 || s.counter > covered) {
      throw new RangeError(`sibling ${s.node}:${s.counter} is not covered by the vv`);
    }
    if (i > 0 && siblings[i - 1]!.node === s.node && siblings[i - 1]!.counter === s.counter) {
      throw new RangeError(`duplicate dot ${s.node}:${s.counter}`);
    }
    checkU53('hlc', s.hlc);
    checkU53('expiresAtMs', s.expiresAtMs);
    if (s.value !== null && s.value.length > u32Max) throw new RangeError('value too large for the format');
  }

  const buf = Buffer.allocUnsafe(encodedObjectLength(obj));
  let o = 0;
  buf[o++] = OBJECT_FORMAT_VERSION;
  buf.writeUInt16LE(vv.length, o);
  o += 2;
  for (const [id, counter] of vv) {
    buf.write(id, o, NODE_ID_BYTES, 'hex');
    buf.writeUInt32LE(counter, o + NODE_ID_BYTES);
    o += VV_ENTRY_BYTES;
  }
  buf.writeUInt16LE(siblings.length, o);
  o += 2;
  for (const s of siblings) {
    buf.writeUInt16LE(vvIndexOf(vv, s.node), o);
    buf.writeUInt32LE(s.counter, o + 2);
    writeU64(buf, s.hlc, o + 6);
    writeU64(buf, s.expiresAtMs, o + 14);
    buf[o + 22] = s.value === null ? ObjectFlag.Tombstone : 0;
    const length = s.value?.length ?? 0;
    buf.writeUInt32LE(length, o + 23);
    o += SIBLING_HEADER_BYTES;
    if (s.value !== null) o += s.value.copy(buf, o);
  }
  if (o !== buf.length) throw new Error(`object encoder wrote ${o} of ${buf.length} bytes`); // a bug here, not bad input
  return buf;
}

/**
 * Checks that `buf` holds one object the encoder could have produced, without
 * building it: null if so, else why not. A replica stores and answers objects
 * as the bytes it received or holds, so it checks them this way instead of
 * decoding them (decodeObject runs the same check first).
 */
export function checkObject(buf: Buffer, limits: ObjectLimits): string | null {
  if (buf.length < 5) return `${buf.length} bytes is shorter than the smallest object`;
  if (buf[0] !== OBJECT_FORMAT_VERSION) return `unsupported object format version ${buf[0]}`;
  const vvCount = buf.readUInt16LE(1);
  if (vvCount > limits.vvEntriesMax) return `${vvCount} vv entries exceed the limit of ${limits.vvEntriesMax}`;
  if (buf.length - VV_START < vvCount * VV_ENTRY_BYTES + 2) return 'truncated in the version vector';
  let o = VV_START;
  for (let i = 0; i < vvCount; i++, o += VV_ENTRY_BYTES) {
    if (buf.readUInt32LE(o + NODE_ID_BYTES) === 0) return `vv counter of ${idAt(buf, o)} is 0`;
    if (i > 0 && compareIdsAt(buf, o - VV_ENTRY_BYTES, buf, o) >= 0) return 'vv entries not sorted by distinct node id';
  }

  const siblingCount = buf.readUInt16LE(o);
  o += 2;
  if (siblingCount > limits.siblingsMax) return `${siblingCount} siblings exceed the limit of ${limits.siblingsMax}`;
  let previousIndex = -1;
  let previousCounter = 0;
  for (let i = 0; i < siblingCount; i++) {
    if (buf.length - o < SIBLING_HEADER_BYTES) return `truncated in sibling ${i}`;
    const nodeIndex = buf.readUInt16LE(o);
    const counter = buf.readUInt32LE(o + 2);
    const hlc = readU64(buf, o + 6);
    const expiresAtMs = readU64(buf, o + 14);
    const flags = buf[o + 22]!;
    const length = buf.readUInt32LE(o + 23);
    o += SIBLING_HEADER_BYTES;

    if (nodeIndex >= vvCount) return `sibling ${i} names vv entry ${nodeIndex} of ${vvCount}`;
    const entry = VV_START + nodeIndex * VV_ENTRY_BYTES;
    if (counter === 0 || counter > buf.readUInt32LE(entry + NODE_ID_BYTES)) return `sibling ${i} dot ${idAt(buf, entry)}:${counter} is not covered by the vv`;
    if (nodeIndex < previousIndex || (nodeIndex === previousIndex && counter <= previousCounter)) return 'siblings not sorted by distinct dots';
    if (!Number.isSafeInteger(hlc) || !Number.isSafeInteger(expiresAtMs)) return `sibling ${i} has a u64 beyond 2^53`;
    if ((flags & ~objectFlagsKnown) !== 0) return `sibling ${i} has unknown flags ${flags}`;
    if ((flags & ObjectFlag.Tombstone) !== 0 && length !== 0) return `tombstone sibling ${i} carries ${length} value bytes`;
    if (length > limits.valueBytesMax) return `sibling ${i} value of ${length} bytes exceeds the limit`;
    if (buf.length - o < length) return `truncated in the value of sibling ${i}`;
    o += length;
    previousIndex = nodeIndex;
    previousCounter = counter;
  }
  if (o !== buf.length) return `${buf.length - o} trailing bytes after the object`;
  return null;
}

/**
 * Decodes and checks one object. Never throws on bad bytes: anything the
 * encoder could not have produced is `corrupt` with a reason. Values are
 * copied out, so `buf` may be reused afterwards.
 */
export function decodeObject(buf: Buffer, limits: ObjectLimits): ObjectDecodeResult {
  const reason = checkObject(buf, limits);
  if (reason !== null) return { kind: 'corrupt', reason };
  // Checked: from here on every field is where and what the format says.
  const vvCount = buf.readUInt16LE(1);
  const ids: NodeId[] = [];
  const vv = new Map<NodeId, number>();
  let o = VV_START;
  for (let i = 0; i < vvCount; i++, o += VV_ENTRY_BYTES) {
    const id = idAt(buf, o);
    ids.push(id);
    vv.set(id, buf.readUInt32LE(o + NODE_ID_BYTES));
  }
  const siblingCount = buf.readUInt16LE(o);
  o += 2;
  const siblings: Sibling[] = [];
  for (let i = 0; i < siblingCount; i++) {
    const length = buf.readUInt32LE(o + 23);
    let value: Buffer | null = null;
    if ((buf[o + 22]! & ObjectFlag.Tombstone) === 0) {
      value = Buffer.allocUnsafe(length);
      buf.copy(value, 0, o + SIBLING_HEADER_BYTES, o + SIBLING_HEADER_BYTES + length);
    }
    siblings.push({ node: ids[buf.readUInt16LE(o)]!, counter: buf.readUInt32LE(o + 2), hlc: readU64(buf, o + 6), value, expiresAtMs: readU64(buf, o + 14) });
    o += SIBLING_HEADER_BYTES + length;
  }
  return { kind: 'ok', object: { vv, siblings } };
}

/** Decodes an encoding already checked (checkObject, or made by the encoder): a failure is a bug, and throws. */
export function decodeCheckedObject(buf: Buffer, limits: ObjectLimits): VersionedObject {
  const d = decodeObject(buf, limits);
  if (d.kind !== 'ok') throw new Error(`a checked object does not decode: ${d.reason}`);
  return d.object;
}

/** Where the sibling count of a checked encoding is (the siblings follow it). */
function siblingCountAt(buf: Buffer): number {
  return VV_START + buf.readUInt16LE(1) * VV_ENTRY_BYTES;
}

/** The offset just past the sibling whose header is at `o` (its header and value). */
function afterSibling(buf: Buffer, o: number): number {
  return o + SIBLING_HEADER_BYTES + buf.readUInt32LE(o + 23);
}

/** objectExpiry of a checked encoding, without decoding it. */
export function encodedObjectExpiry(buf: Buffer): number {
  const at = siblingCountAt(buf);
  let latest = 0;
  for (let i = 0, o = at + 2; i < buf.readUInt16LE(at); i++, o = afterSibling(buf, o)) {
    const expiresAtMs = readU64(buf, o + 14);
    if (expiresAtMs === 0) return 0;
    if (expiresAtMs > latest) latest = expiresAtMs;
  }
  return latest;
}

/**
 * Whether storing `incoming` over the copy `local` is right as it stands: the
 * DVV merge of the two would be `incoming` itself and differ from `local`.
 * That holds when incoming's vv covers local's and local has seen none of
 * incoming's dots (a new write, the common case), and this checks only that,
 * on the bytes: false means "decode both and merge". `incoming` must be a
 * checked encoding; of `local` only the vv is read, and a vv that does not
 * fit its buffer answers false.
 *
 * Why that is enough: local's siblings all have dots within local's vv, so
 * incoming has seen each and holds none of them (its dots are all new to
 * local): the merge drops them all, keeps all of incoming's, and its vv is
 * incoming's. And accountsFor(incoming, local) holds, so a reported write
 * was accounted for. That argument needs a canonical `local`: one whose
 * siblings are damaged behind a sound vv is corrupt, and is overwritten
 * here as the decoding path overwrites it (a corrupt copy reads as none),
 * only without being counted or logged.
 */
export function supersedesEncoded(incoming: Buffer, local: Buffer): boolean {
  if (local.length < 5 || local[0] !== OBJECT_FORMAT_VERSION) return false;
  const localCount = local.readUInt16LE(1);
  if (local.length < VV_START + localCount * VV_ENTRY_BYTES + 2) return false;
  const incomingCount = incoming.readUInt16LE(1);
  for (let l = 0, lo = VV_START; l < localCount; l++, lo += VV_ENTRY_BYTES) {
    const io = vvEntryFor(incoming, incomingCount, local, lo);
    if (io < 0 || incoming.readUInt32LE(io + NODE_ID_BYTES) < local.readUInt32LE(lo + NODE_ID_BYTES)) return false;
  }
  const at = siblingCountAt(incoming);
  const siblingCount = incoming.readUInt16LE(at);
  if (siblingCount === 0) return false;
  for (let i = 0, o = at + 2; i < siblingCount; i++, o = afterSibling(incoming, o)) {
    const lo = vvEntryFor(local, localCount, incoming, VV_START + incoming.readUInt16LE(o) * VV_ENTRY_BYTES);
    if (lo >= 0 && local.readUInt32LE(lo + NODE_ID_BYTES) >= incoming.readUInt32LE(o + 2)) return false; // local has seen this dot
  }
  return true;
}

/**
 * The encoding of the version a plain SET on an owner writes over the copy
 * `local` (a checked encoding; null: no copy): what
 * encodeObject(update(local, local.vv, actor, hlc, value, expiresAtMs)) gives
 * (src/cluster/version.ts), built from local's bytes without decoding them.
 * With local's own vv as the context every local sibling is superseded, so
 * the new object is local's vv with the actor's counter one higher, and one
 * sibling: the write. Throws RangeError where encodeObject would.
 */
export function nextVersionEncoded(local: Buffer | null, actor: NodeId, hlc: number, value: Buffer, expiresAtMs: number): Buffer {
  checkU53('hlc', hlc);
  checkU53('expiresAtMs', expiresAtMs);
  if (value.length > u32Max) throw new RangeError('value too large for the format');
  const id = rawNodeId(actor);
  const localCount = local === null ? 0 : local.readUInt16LE(1);
  // The actor's entry: where it is, or where it goes in id order.
  let at = 0;
  let counter = 1;
  let held = false;
  for (; at < localCount; at++) {
    const order = compareIdsAt(local!, VV_START + at * VV_ENTRY_BYTES, id, 0);
    if (order === 0) {
      held = true;
      counter = local!.readUInt32LE(VV_START + at * VV_ENTRY_BYTES + NODE_ID_BYTES) + 1;
      break;
    }
    if (order > 0) break;
  }
  if (counter > u32Max) throw new RangeError(`vv counter ${counter} out of range`);
  const vvCount = localCount + (held ? 0 : 1);
  if (vvCount > u16Max) throw new RangeError(`${vvCount} vv entries do not fit the format`);

  const buf = Buffer.allocUnsafe(VV_START + vvCount * VV_ENTRY_BYTES + 2 + SIBLING_HEADER_BYTES + value.length);
  buf[0] = OBJECT_FORMAT_VERSION;
  buf.writeUInt16LE(vvCount, 1);
  let o = VV_START;
  if (at > 0) o += local!.copy(buf, o, VV_START, VV_START + at * VV_ENTRY_BYTES);
  id.copy(buf, o);
  buf.writeUInt32LE(counter, o + NODE_ID_BYTES);
  o += VV_ENTRY_BYTES;
  const rest = VV_START + (at + (held ? 1 : 0)) * VV_ENTRY_BYTES;
  if (local !== null && rest < VV_START + localCount * VV_ENTRY_BYTES) o += local.copy(buf, o, rest, VV_START + localCount * VV_ENTRY_BYTES);
  buf.writeUInt16LE(1, o);
  o += 2;
  buf.writeUInt16LE(at, o);
  buf.writeUInt32LE(counter, o + 2);
  writeU64(buf, hlc, o + 6);
  writeU64(buf, expiresAtMs, o + 14);
  buf[o + 22] = 0;
  buf.writeUInt32LE(value.length, o + 23);
  o += SIBLING_HEADER_BYTES;
  o += value.copy(buf, o);
  if (o !== buf.length) throw new Error(`version builder wrote ${o} of ${buf.length} bytes`); // a bug here, not bad input
  return buf;
}

/** The highest HLC among the siblings of a checked encoding (0 if none). */
export function encodedMaxHlc(buf: Buffer): number {
  const at = siblingCountAt(buf);
  let max = 0;
  for (let i = 0, o = at + 2; i < buf.readUInt16LE(at); i++, o = afterSibling(buf, o)) max = Math.max(max, readU64(buf, o + 6));
  return max;
}

/** A node id as its 20 raw bytes; the last one asked is kept (a coordinator asks for its own id). */
let lastRawId: { id: NodeId; raw: Buffer } | null = null;
function rawNodeId(id: NodeId): Buffer {
  if (lastRawId !== null && lastRawId.id === id) return lastRawId.raw;
  if (!isNodeId(id)) throw new RangeError(`node id ${JSON.stringify(id)} is not 40 lowercase hex characters`);
  lastRawId = { id, raw: Buffer.from(id, 'hex') };
  return lastRawId.raw;
}

/** The offset in `buf` of the vv entry (of `count`) whose id is the one at `idBuf[idAt]`, or -1. No order assumed. */
function vvEntryFor(buf: Buffer, count: number, idBuf: Buffer, at: number): number {
  for (let i = 0, o = VV_START; i < count; i++, o += VV_ENTRY_BYTES) if (compareIdsAt(buf, o, idBuf, at) === 0) return o;
  return -1;
}

/** Raw node ids compare as their lowercase hex does. */
function compareIdsAt(a: Buffer, aAt: number, b: Buffer, bAt: number): number {
  for (let i = 0; i < NODE_ID_BYTES; i++) {
    const d = a[aAt + i]! - b[bAt + i]!;
    if (d !== 0) return d;
  }
  return 0;
}

function idAt(buf: Buffer, at: number): NodeId {
  return buf.toString('hex', at, at + NODE_ID_BYTES);
}

/**
 * When the store may drop the whole object by itself: 0 (never) if any
 * sibling, live or tombstone, has no expiry; else the latest expiry, when
 * every sibling has expired. (encodedObjectExpiry is the same on the bytes.)
 */
export function objectExpiry(obj: VersionedObject): number {
  if (obj.siblings.length === 0) return 0;
  let latest = 0;
  for (const s of obj.siblings) {
    if (s.expiresAtMs === 0) return 0;
    if (s.expiresAtMs > latest) latest = s.expiresAtMs;
  }
  return latest;
}
