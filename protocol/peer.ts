// The peer wire format: the frames nodes exchange over their cluster port
// (requests, responses, one-way messages and the connection handshake) and the
// payload of every PeerMessage (src/cluster/types.ts). This file is the ONE home
// of that format; docs/peer.md describes it in prose. It is a pure codec: bytes
// in, values out; no sockets, no timers, no imports from src/ except types.
// Versioned objects inside messages are encoded by protocol/object.ts.
//
// All integers are little-endian, as in the segment format. A frame is:
//
//   offset size field
//        0    4 length   u32: bytes after this field (10 + payload length);
//                        10 <= length <= maxFrameBytes - 4
//        4    4 crc      CRC32C of bytes 8..end of the frame
//        8    1 kind     1 request, 2 response, 3 one-way, 4 handshake
//        9    4 id       u32 request id; a response carries the id of its request;
//                        0 for one-way and handshake frames
//       13    1 type     message type (below), or the handshake step
//       14    n payload
//
// Field encodings inside payloads:
//   bytes   u32 length, then the bytes
//   str     u32 length, then UTF-8
//   nodeid  20 raw bytes (the 40 lowercase hex characters of a NodeId, decoded)
//   bool    u8, 0 or 1 (anything else is a bad payload)
//   u16/u32 unsigned; u64 is 8 bytes and at most 2^53-1 (JavaScript numbers are exact up to there)
//   f64     IEEE 754 double
//
// Message types (kind request / response / one-way):
//    1 gossip     nodeid from, u32 n, n x member
//                 member: nodeid id, str host, u16 port, u16 clusterPort, u64 incarnation,
//                         u64 heartbeat, u8 state (0 member, 1 left), f64 weight,
//                         str datacenter, str rack
//    2, 3 (retired: getObject and object, now a readBatch item and its result)
//    4 (retired: putObject, now an item of writeBatch)
//    5 ack        (empty)
//    6 forward    bool resp3, u32 r, u32 w, u32 n, n x bytes arg
//    7 reply      bytes resp
//    8 scan       u64 cursor, u32 count
//    9 scanPage   u64 cursor, u32 n, n x bytes key
//   10 dbsize     (empty)
//   11 count      u64 n
//   12 flushAll   (empty)
//   13 error      str code, str message
//   14 (retired: coordinate, now an item of coordinateBatch)
//   15, 16 (retired: writeObject and written, now an item of writeBatch and its result)
//   19 readBatch  u32 n (1..BATCH_ITEMS_MAX), n x (bytes key, bool versionOnly): the keys one
//                 coordinator asks one replica for in one turn of its event loop; versionOnly: the
//                 values may come back empty (causal context and existence only)
//   20 objects    u32 n, n x result, one per item in order: u8 0 absent; 1 present, then bytes
//                 object; 2 failed, then str message (this item alone failed, e.g. a bad record);
//                 3 not answered here (the answer was full, see readAnswerBytesMax): ask for it alone
//   17 writeBatch u32 n (1..BATCH_ITEMS_MAX), n x (bytes key, bytes object, bool report): the
//                 versions one coordinator sends one replica in one turn of its event loop, merged in
//                 order into the replica's copies and answered once all are durable. With report set,
//                 the item's result says whether the version accounted for the copy it found
//   18 writtenBatch u32 n, n x result, one per item in order: u8 0 done (and accounted for the copy);
//                 1 done but not accounted for, then bytes object: the replica's version vector before
//                 the write (an object with no siblings); 2 failed, then str message (this item alone
//                 failed, e.g. a full disk)
//   21 coordinateBatch u32 n (1..BATCH_ITEMS_MAX), n x (bool delete (0 set, 1 delete), bytes key,
//                 bool hasValue, [bytes value], u64 expiresAtMs, u32 r, u32 w): the writes one node
//                 asks one owner to coordinate in one turn of its event loop, answered once all are done
//   22 coordinated u32 n, n x result, one per item in order: u8 0 done, then u64 count (1 for a set;
//                 for a delete, whether the key existed); 1 failed, then str message (the client's reply)
// A payload must be consumed exactly: trailing bytes are a bad payload.
//
// Handshake steps (kind 4), the only frames accepted before a connection is
// authenticated (see docs/peer.md for the exchange and what it proves):
//    1 hello      "DKVP", u8 version, u8 auth (0 none, 1 HMAC-SHA256), nodeid, 32-byte nonce
//    2 helloAck   "DKVP", u8 version, u8 auth, nodeid, 32-byte nonce, [32-byte proof] when auth
//    3 proof      bytes proof (empty without a secret)
//    4 welcome    (empty): the acceptor took the connection; data frames may flow
//    5 refuse     str reason; the sender closes the connection after it
// hello and helloAck may carry trailing bytes: a later version extends them and
// an older node still reads its prefix. `version` is the highest format version
// the sender speaks; a connection speaks the lower of the two.
//
// Why this shape: the length comes first so a reader knows how much to buffer
// before anything else; the CRC covers everything after it so a damaged kind,
// id or type is caught too (TCP's own checksum is weak, and a bug that desyncs
// the stream shows up as a bad CRC instead of a nonsense message). Large byte
// fields are carried as references to the caller's buffers (encodeFrame returns
// a list of chunks) so a 512 MB value is not copied to be framed.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CoordinateItem, CoordinateResult, MemberState, NodeId, PeerMessage, PeerMessageType, ReadItem, ReadResult, VersionedObject, WriteItem, WriteResult } from '../src/cluster/types.js';
import { crc32c } from './crc32c.js';
import { checkObject, decodeObject, encodeObject, type ObjectLimits } from './object.js';

/** Bytes before the payload: length, crc, kind, id, type. */
export const FRAME_HEADER_BYTES = 14;
/** The `length` field counts everything after itself: crc + kind + id + type + payload. */
const lengthFieldMin = FRAME_HEADER_BYTES - 4;
/** The highest (and current) peer format version this code speaks. */
export const PEER_FORMAT_VERSION = 1;
/** The lowest version this code accepts from a peer. */
export const PEER_FORMAT_VERSION_MIN = 1;
export const HANDSHAKE_MAGIC = Buffer.from('DKVP', 'latin1');
export const HANDSHAKE_NONCE_BYTES = 32;
export const HANDSHAKE_PROOF_BYTES = 32; // HMAC-SHA256
const nodeIdBytes = 20;
const nodeIdPattern = /^[0-9a-f]{40}$/;

/**
 * Byte fields at least this long are referenced, not copied: on encode they
 * become their own chunk; on decode they are views into the frame. Smaller
 * ones are copied on decode so a retained key does not pin a whole socket read.
 */
export const viewBytesMin = 16 * 1024;

export const FrameKind = {
  Request: 1,
  Response: 2,
  OneWay: 3,
  Handshake: 4,
} as const;
export type FrameKindName = 'request' | 'response' | 'oneWay' | 'handshake';
const kindNames: Record<number, FrameKindName> = { 1: 'request', 2: 'response', 3: 'oneWay', 4: 'handshake' };
const kindCodes: Record<FrameKindName, number> = { request: 1, response: 2, oneWay: 3, handshake: 4 };

export const MessageTypeCode: Record<PeerMessageType, number> = {
  gossip: 1,
  ack: 5,
  forward: 6,
  reply: 7,
  scan: 8,
  scanPage: 9,
  dbsize: 10,
  count: 11,
  flushAll: 12,
  error: 13,
  writeBatch: 17,
  writtenBatch: 18,
  readBatch: 19,
  objects: 20,
  coordinateBatch: 21,
  coordinated: 22,
};

/**
 * Most items in one writeBatch, readBatch or coordinateBatch (and so in one answer): a
 * coordinator starts another batch past it, and a decoder refuses more. It
 * bounds the work one request makes a replica do before it answers.
 */
export const BATCH_ITEMS_MAX = 1024;
const messageTypeNames = new Map<number, PeerMessageType>(
  Object.entries(MessageTypeCode).map(([name, code]) => [code, name as PeerMessageType]),
);

export type Handshake =
  | { step: 'hello'; version: number; auth: boolean; nodeId: NodeId; nonce: Buffer }
  | { step: 'helloAck'; version: number; auth: boolean; nodeId: NodeId; nonce: Buffer; proof: Buffer | null }
  | { step: 'proof'; proof: Buffer | null }
  | { step: 'welcome' }
  | { step: 'refuse'; reason: string };
export type HandshakeStep = Handshake['step'];

const handshakeCodes: Record<HandshakeStep, number> = { hello: 1, helloAck: 2, proof: 3, welcome: 4, refuse: 5 };
const handshakeNames = new Map<number, HandshakeStep>(
  Object.entries(handshakeCodes).map(([name, code]) => [code, name as HandshakeStep]),
);

/** One decoded frame. */
export type Frame =
  | { kind: 'request' | 'response' | 'oneWay'; id: number; message: PeerMessage }
  | { kind: 'handshake'; id: number; handshake: Handshake };

export type FrameErrorCode =
  /** The length field is above the decoder's limit (or the bytes are not a Distri-KV peer stream). */
  | 'FRAME_TOO_LARGE'
  /** The length field is below the fixed header size. */
  | 'FRAME_TOO_SHORT'
  | 'BAD_CRC'
  | 'UNKNOWN_KIND'
  | 'UNKNOWN_TYPE'
  /** Truncated payload, trailing bytes, or a field with an impossible value. */
  | 'BAD_PAYLOAD';

/**
 * A frame that could not be decoded. `fatal` means the stream can no longer be
 * trusted (framing or checksum broken): the connection must be closed. A
 * non-fatal error is a well-framed, intact frame whose content is not
 * understood; `kind` and `id` say which request it was so it can be answered.
 */
export interface FrameError {
  error: FrameErrorCode;
  message: string;
  fatal: boolean;
  kind?: FrameKindName;
  id?: number;
}

// --- Encoding ----------------------------------------------------------------

/**
 * Builds a frame as a list of chunks: the small fields are written into one
 * growing scratch buffer; byte fields of viewBytesMin or more are referenced
 * as chunks of their own.
 */
class ChunkWriter {
  private readonly chunks: Buffer[] = [];
  private buf = Buffer.allocUnsafe(256);
  /** Start of the part of `buf` not yet pushed to `chunks`. */
  private segStart = 0;
  private pos = 0;
  total = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    // Grow: only the unpushed segment moves; pushed chunks keep their views of the old buffer.
    const used = this.pos - this.segStart;
    const next = Buffer.allocUnsafe(Math.max(256, (used + n) * 2));
    this.buf.copy(next, 0, this.segStart, this.pos);
    this.buf = next;
    this.segStart = 0;
    this.pos = used;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
    this.total += 1;
  }
  u16(v: number, what: string): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new TypeError(`${what} must be a u16, got ${v}`);
    this.room(2);
    this.pos = this.buf.writeUInt16LE(v, this.pos);
    this.total += 2;
  }
  u32(v: number, what: string): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new TypeError(`${what} must be a u32, got ${v}`);
    this.room(4);
    this.pos = this.buf.writeUInt32LE(v, this.pos);
    this.total += 4;
  }
  u64(v: number, what: string): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`${what} must be a non-negative safe integer, got ${v}`);
    this.room(8);
    this.pos = this.buf.writeUInt32LE(v % 0x1_0000_0000, this.pos);
    this.pos = this.buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), this.pos);
    this.total += 8;
  }
  f64(v: number, what: string): void {
    if (typeof v !== 'number') throw new TypeError(`${what} must be a number`);
    this.room(8);
    this.pos = this.buf.writeDoubleLE(v, this.pos);
    this.total += 8;
  }
  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }
  raw(b: Buffer): void {
    if (b.length >= viewBytesMin) {
      if (this.pos > this.segStart) this.chunks.push(this.buf.subarray(this.segStart, this.pos));
      this.segStart = this.pos;
      this.chunks.push(b);
    } else {
      this.room(b.length);
      b.copy(this.buf, this.pos);
      this.pos += b.length;
    }
    this.total += b.length;
  }
  bytes(b: Buffer, what: string): void {
    if (!Buffer.isBuffer(b)) throw new TypeError(`${what} must be a Buffer`);
    if (b.length > 0xffff_ffff) throw new TypeError(`${what} length must be a u32, got ${b.length}`);
    this.room(4);
    this.pos = this.buf.writeUInt32LE(b.length, this.pos);
    this.total += 4;
    this.raw(b);
  }
  str(s: string, what: string): void {
    if (typeof s !== 'string') throw new TypeError(`${what} must be a string`);
    this.bytes(Buffer.from(s, 'utf8'), what);
  }
  nodeId(id: NodeId, what: string): void {
    if (typeof id !== 'string' || !nodeIdPattern.test(id)) {
      throw new TypeError(`${what} must be 40 lowercase hex characters, got ${JSON.stringify(id)}`);
    }
    this.room(nodeIdBytes);
    this.pos += this.buf.write(id, this.pos, nodeIdBytes, 'hex');
    this.total += nodeIdBytes;
  }
  finish(): Buffer[] {
    if (this.pos > this.segStart) this.chunks.push(this.buf.subarray(this.segStart, this.pos));
    this.segStart = this.pos;
    return this.chunks;
  }
}

function writeMember(w: ChunkWriter, m: MemberState): void {
  w.nodeId(m.id, 'member.id');
  w.str(m.host, 'member.host');
  w.u16(m.port, 'member.port');
  w.u16(m.clusterPort, 'member.clusterPort');
  w.u64(m.incarnation, 'member.incarnation');
  w.u64(m.heartbeat, 'member.heartbeat');
  if (m.state !== 'member' && m.state !== 'left') throw new TypeError(`member.state must be 'member' or 'left', got ${String(m.state)}`);
  w.u8(m.state === 'member' ? 0 : 1);
  w.f64(m.weight, 'member.weight');
  w.str(m.datacenter, 'member.datacenter');
  w.str(m.rack, 'member.rack');
}

function writeObject(w: ChunkWriter, obj: VersionedObject, what: string): void {
  w.bytes(encodeObject(obj), what);
}

/** The item count of a batch or its answer (see readBatchCount). */
function writeBatchCount(w: ChunkWriter, what: string, n: number, min: 0 | 1): void {
  if (n < min || n > BATCH_ITEMS_MAX) throw new TypeError(`${what} must be ${min}..${BATCH_ITEMS_MAX}, got ${n}`);
  w.u32(n, what);
}

function writeMessage(w: ChunkWriter, msg: PeerMessage): void {
  switch (msg.type) {
    case 'gossip':
      w.nodeId(msg.from, 'gossip.from');
      w.u32(msg.members.length, 'gossip.members length');
      for (const m of msg.members) writeMember(w, m);
      return;
    case 'readBatch':
      writeBatchCount(w, 'readBatch.items length', msg.items.length, 1);
      for (const item of msg.items) {
        w.bytes(item.key, 'readBatch.key');
        w.bool(item.versionOnly);
      }
      return;
    case 'objects':
      writeBatchCount(w, 'objects.results length', msg.results.length, 0);
      for (const r of msg.results) {
        if (r === null) {
          w.u8(0);
        } else if (Buffer.isBuffer(r)) {
          w.u8(1);
          w.bytes(r, 'objects.object'); // a replica's copy, encoded
        } else if ('error' in r) {
          w.u8(2);
          w.str(r.error, 'objects.error');
        } else {
          w.u8(3);
        }
      }
      return;
    case 'writeBatch':
      writeBatchCount(w, 'writeBatch.items length', msg.items.length, 1);
      for (const item of msg.items) {
        w.bytes(item.key, 'writeBatch.key');
        w.bytes(item.encoded, 'writeBatch.object');
        w.bool(item.report);
      }
      return;
    case 'writtenBatch':
      writeBatchCount(w, 'writtenBatch.results length', msg.results.length, 0);
      for (const r of msg.results) {
        if (r === null) {
          w.u8(0);
        } else if ('seen' in r) {
          w.u8(1);
          writeObject(w, { vv: r.seen, siblings: [] }, 'writtenBatch.seen');
        } else {
          w.u8(2);
          w.str(r.error, 'writtenBatch.error');
        }
      }
      return;
    case 'forward':
      w.bool(msg.resp3);
      w.u32(msg.r, 'forward.r');
      w.u32(msg.w, 'forward.w');
      w.u32(msg.args.length, 'forward.args length');
      for (const a of msg.args) w.bytes(a, 'forward.arg');
      return;
    case 'coordinateBatch':
      writeBatchCount(w, 'coordinateBatch.items length', msg.items.length, 1);
      for (const item of msg.items) {
        w.bool(item.op === 'delete');
        w.bytes(item.key, 'coordinateBatch.key');
        w.bool(item.value !== null);
        if (item.value !== null) w.bytes(item.value, 'coordinateBatch.value');
        w.u64(item.expiresAtMs, 'coordinateBatch.expiresAtMs');
        w.u32(item.r, 'coordinateBatch.r');
        w.u32(item.w, 'coordinateBatch.w');
      }
      return;
    case 'coordinated':
      writeBatchCount(w, 'coordinated.results length', msg.results.length, 0);
      for (const r of msg.results) {
        if (typeof r === 'number') {
          w.u8(0);
          w.u64(r, 'coordinated.count');
        } else {
          w.u8(1);
          w.str(r.error, 'coordinated.error');
        }
      }
      return;
    case 'reply':
      w.bytes(msg.resp, 'reply.resp');
      return;
    case 'scan':
      w.u64(msg.cursor, 'scan.cursor');
      w.u32(msg.count, 'scan.count');
      return;
    case 'scanPage':
      w.u64(msg.cursor, 'scanPage.cursor');
      w.u32(msg.keys.length, 'scanPage.keys length');
      for (const k of msg.keys) w.bytes(k, 'scanPage.key');
      return;
    case 'count':
      w.u64(msg.n, 'count.n');
      return;
    case 'error':
      w.str(msg.code, 'error.code');
      w.str(msg.message, 'error.message');
      return;
    case 'ack':
    case 'dbsize':
    case 'flushAll':
      return;
    default: {
      const never: never = msg;
      throw new TypeError(`unknown peer message type ${JSON.stringify((never as { type: unknown }).type)}`);
    }
  }
}

function writeHandshake(w: ChunkWriter, hs: Handshake): void {
  switch (hs.step) {
    case 'hello':
    case 'helloAck':
      w.raw(HANDSHAKE_MAGIC);
      w.u8(hs.version);
      w.u8(hs.auth ? 1 : 0);
      w.nodeId(hs.nodeId, `${hs.step}.nodeId`);
      if (hs.nonce.length !== HANDSHAKE_NONCE_BYTES) throw new TypeError(`${hs.step}.nonce must be ${HANDSHAKE_NONCE_BYTES} bytes`);
      w.raw(hs.nonce);
      if (hs.step === 'helloAck') {
        if (hs.auth !== (hs.proof !== null)) throw new TypeError('helloAck carries a proof exactly when auth is set');
        if (hs.proof !== null) {
          if (hs.proof.length !== HANDSHAKE_PROOF_BYTES) throw new TypeError(`helloAck.proof must be ${HANDSHAKE_PROOF_BYTES} bytes`);
          w.raw(hs.proof);
        }
      }
      return;
    case 'proof':
      if (hs.proof !== null && hs.proof.length !== HANDSHAKE_PROOF_BYTES) throw new TypeError(`proof must be ${HANDSHAKE_PROOF_BYTES} bytes`);
      w.bytes(hs.proof ?? Buffer.alloc(0), 'proof');
      return;
    case 'welcome':
      return;
    case 'refuse':
      w.str(hs.reason, 'refuse.reason');
      return;
    default: {
      const never: never = hs;
      throw new TypeError(`unknown handshake step ${JSON.stringify((never as { step: unknown }).step)}`);
    }
  }
}

function frame(kind: number, id: number, type: number, body: (w: ChunkWriter) => void): Buffer[] {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) throw new TypeError(`frame id must be a u32, got ${id}`);
  const w = new ChunkWriter();
  w.u32(0, 'length'); // patched below
  w.u32(0, 'crc'); // patched below
  w.u8(kind);
  w.u32(id, 'id');
  w.u8(type);
  body(w);
  const total = w.total;
  const chunks = w.finish();
  // chunks[0] always holds the whole header: the writer starts with it and 256 bytes of room.
  const head = chunks[0]!;
  head.writeUInt32LE(total - 4, 0);
  let crc = crc32c(head, 8);
  for (let i = 1; i < chunks.length; i++) crc = crc32c(chunks[i]!, 0, chunks[i]!.length, crc);
  head.writeUInt32LE(crc, 4);
  return chunks;
}

/**
 * Encodes a request, response or one-way message as a frame: a list of chunks
 * to write in order (large byte fields are the caller's own buffers, not
 * copies). Throws TypeError on a message that breaks the types (a bug in the
 * caller, not bad input from a peer).
 */
export function encodeFrame(kind: 'request' | 'response' | 'oneWay', id: number, msg: PeerMessage): Buffer[] {
  const type = MessageTypeCode[msg.type];
  if (type === undefined) throw new TypeError(`unknown peer message type ${JSON.stringify(msg.type)}`);
  return frame(kindCodes[kind], id, type, (w) => writeMessage(w, msg));
}

/** Encodes one handshake step as a frame (one small buffer). */
export function encodeHandshake(hs: Handshake): Buffer {
  const chunks = frame(FrameKind.Handshake, 0, handshakeCodes[hs.step], (w) => writeHandshake(w, hs));
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** The frame as one buffer (tests, tools). */
export function encodeFrameBuffer(kind: 'request' | 'response' | 'oneWay', id: number, msg: PeerMessage): Buffer {
  return Buffer.concat(encodeFrame(kind, id, msg));
}

// --- Decoding ----------------------------------------------------------------

/** Thrown inside the payload reader only; decode functions turn it into a FrameError. */
class BadPayload extends Error {}

class Reader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    readonly objectLimits: ObjectLimits,
  ) {}

  get left(): number {
    return this.buf.length - this.pos;
  }
  private need(n: number, what: string): void {
    if (this.buf.length - this.pos < n) throw new BadPayload(`truncated payload: ${what} needs ${n} bytes, ${this.left} left`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(what: string): number {
    this.need(8, what);
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
    if (hi > 0x1f_ffff) throw new BadPayload(`${what} is above 2^53`);
    return hi * 0x1_0000_0000 + lo;
  }
  f64(what: string): number {
    this.need(8, what);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) throw new BadPayload(`${what} must be 0 or 1, got ${v}`);
    return v === 1;
  }
  /** Exactly n bytes: a view when large, else a copy (see viewBytesMin). */
  raw(n: number, what: string): Buffer {
    this.need(n, what);
    const start = this.pos;
    this.pos += n;
    if (n >= viewBytesMin) return this.buf.subarray(start, this.pos);
    const copy = Buffer.allocUnsafe(n);
    this.buf.copy(copy, 0, start, this.pos);
    return copy;
  }
  /** A u32 length field of `what` (its name is built only for an error: this runs for every byte field). */
  length(what: string): number {
    if (this.buf.length - this.pos < 4) throw new BadPayload(`truncated payload: ${what} length needs 4 bytes, ${this.left} left`);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  /** Exactly n bytes as a view of the frame, for callers that copy what they keep. */
  view(n: number, what: string): Buffer {
    this.need(n, what);
    this.pos += n;
    return this.buf.subarray(this.pos - n, this.pos);
  }
  bytes(what: string): Buffer {
    return this.raw(this.length(what), what);
  }
  str(what: string): string {
    const n = this.length(what);
    this.need(n, what);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  nodeId(what: string): NodeId {
    this.need(nodeIdBytes, what);
    const s = this.buf.toString('hex', this.pos, this.pos + nodeIdBytes);
    this.pos += nodeIdBytes;
    return s;
  }
  /** A count of items that each take at least `itemBytesMin`: a garbage count fails here, not after a long loop. */
  count(what: string, itemBytesMin: number): number {
    const n = this.u32(what);
    if (n * itemBytesMin > this.left) throw new BadPayload(`${what} ${n} cannot fit in the ${this.left} bytes left`);
    return n;
  }
  end(what: string): void {
    if (this.left !== 0) throw new BadPayload(`${this.left} trailing bytes after ${what}`);
  }
}

const memberBytesMin = nodeIdBytes + 4 + 2 + 2 + 8 + 8 + 1 + 8 + 4 + 4;

function readMember(r: Reader): MemberState {
  const id = r.nodeId('member.id');
  const host = r.str('member.host');
  const port = r.u16('member.port');
  const clusterPort = r.u16('member.clusterPort');
  const incarnation = r.u64('member.incarnation');
  const heartbeat = r.u64('member.heartbeat');
  const state = r.u8('member.state');
  if (state > 1) throw new BadPayload(`member.state must be 0 or 1, got ${state}`);
  const weight = r.f64('member.weight');
  const datacenter = r.str('member.datacenter');
  const rack = r.str('member.rack');
  return { id, host, port, clusterPort, incarnation, heartbeat, state: state === 0 ? 'member' : 'left', weight, datacenter, rack };
}

/** An object field as its encoding, checked (not decoded): a copy, or a view of a large frame (see Reader.raw). */
function readCheckedObject(r: Reader, what: string): Buffer {
  const bytes = r.bytes(what);
  const bad = checkObject(bytes, r.objectLimits);
  if (bad !== null) throw new BadPayload(`${what}: ${bad}`);
  return bytes;
}

/** An object field, decoded (decodeObject copies the values out, so a view of the frame is enough). */
function readObject(r: Reader, what: string): VersionedObject {
  const result = decodeObject(r.view(r.length(what), what), r.objectLimits);
  if (result.kind !== 'ok') throw new BadPayload(`${what}: ${result.reason}`);
  return result.object;
}

/**
 * The item count of a batch or its answer: a request carries 1..BATCH_ITEMS_MAX
 * items, an answer 0..BATCH_ITEMS_MAX results (as many as its request had).
 */
function readBatchCount(r: Reader, what: string, itemBytesMin: number, min: 0 | 1): number {
  const n = r.count(what, itemBytesMin);
  if (n < min || n > BATCH_ITEMS_MAX) throw new BadPayload(`${what} must be ${min}..${BATCH_ITEMS_MAX}, got ${n}`);
  return n;
}

function readMessage(type: PeerMessageType, r: Reader): PeerMessage {
  switch (type) {
    case 'gossip': {
      const from = r.nodeId('gossip.from');
      const n = r.count('gossip.members length', memberBytesMin);
      const members: MemberState[] = [];
      for (let i = 0; i < n; i++) members.push(readMember(r));
      return { type, from, members };
    }
    case 'readBatch': {
      const n = readBatchCount(r, 'readBatch.items length', 4 + 1, 1);
      const items: ReadItem[] = [];
      for (let i = 0; i < n; i++) items.push({ key: r.bytes('readBatch.key'), versionOnly: r.bool('readBatch.versionOnly') });
      return { type, items };
    }
    case 'objects': {
      const n = readBatchCount(r, 'objects.results length', 1, 0);
      const results: ReadResult[] = [];
      for (let i = 0; i < n; i++) {
        const status = r.u8('objects.status');
        if (status === 0) results.push(null);
        else if (status === 1) results.push(readCheckedObject(r, 'objects.object'));
        else if (status === 2) results.push({ error: r.str('objects.error') });
        else if (status === 3) results.push({ again: true });
        else throw new BadPayload(`objects.status must be 0 to 3, got ${status}`);
      }
      return { type, results };
    }
    case 'writeBatch': {
      const n = readBatchCount(r, 'writeBatch.items length', 4 + 4 + 1, 1);
      const items: WriteItem[] = [];
      for (let i = 0; i < n; i++) {
        const key = r.bytes('writeBatch.key');
        // Checked, not decoded: a replica decodes it only to merge.
        items.push({ key, encoded: readCheckedObject(r, 'writeBatch.object'), report: r.bool('writeBatch.report') });
      }
      return { type, items };
    }
    case 'writtenBatch': {
      const n = readBatchCount(r, 'writtenBatch.results length', 1, 0);
      const results: WriteResult[] = [];
      for (let i = 0; i < n; i++) {
        const status = r.u8('writtenBatch.status');
        if (status === 0) results.push(null);
        else if (status === 1) results.push({ seen: readObject(r, 'writtenBatch.seen').vv });
        else if (status === 2) results.push({ error: r.str('writtenBatch.error') });
        else throw new BadPayload(`writtenBatch.status must be 0, 1 or 2, got ${status}`);
      }
      return { type, results };
    }
    case 'forward': {
      const resp3 = r.bool('forward.resp3');
      const rq = r.u32('forward.r');
      const wq = r.u32('forward.w');
      const n = r.count('forward.args length', 4);
      const args: Buffer[] = [];
      for (let i = 0; i < n; i++) args.push(r.bytes('forward.arg'));
      return { type, args, resp3, r: rq, w: wq };
    }
    case 'coordinateBatch': {
      // The smallest item: op, empty key, no value, expiry, r, w.
      const n = readBatchCount(r, 'coordinateBatch.items length', 1 + 4 + 1 + 8 + 4 + 4, 1);
      const items: CoordinateItem[] = [];
      for (let i = 0; i < n; i++) {
        const op = r.bool('coordinateBatch.op') ? 'delete' : 'set';
        const key = r.bytes('coordinateBatch.key');
        const value = r.bool('coordinateBatch.hasValue') ? r.bytes('coordinateBatch.value') : null;
        const expiresAtMs = r.u64('coordinateBatch.expiresAtMs');
        items.push({ op, key, value, expiresAtMs, r: r.u32('coordinateBatch.r'), w: r.u32('coordinateBatch.w') });
      }
      return { type, items };
    }
    case 'coordinated': {
      const n = readBatchCount(r, 'coordinated.results length', 1 + 4, 0);
      const results: CoordinateResult[] = [];
      for (let i = 0; i < n; i++) {
        const status = r.u8('coordinated.status');
        if (status === 0) results.push(r.u64('coordinated.count'));
        else if (status === 1) results.push({ error: r.str('coordinated.error') });
        else throw new BadPayload(`coordinated.status must be 0 or 1, got ${status}`);
      }
      return { type, results };
    }
    case 'reply':
      return { type, resp: r.bytes('reply.resp') };
    case 'scan': {
      const cursor = r.u64('scan.cursor');
      return { type, cursor, count: r.u32('scan.count') };
    }
    case 'scanPage': {
      const cursor = r.u64('scanPage.cursor');
      const n = r.count('scanPage.keys length', 4);
      const keys: Buffer[] = [];
      for (let i = 0; i < n; i++) keys.push(r.bytes('scanPage.key'));
      return { type, cursor, keys };
    }
    case 'count':
      return { type, n: r.u64('count.n') };
    case 'error': {
      const code = r.str('error.code');
      return { type, code, message: r.str('error.message') };
    }
    case 'ack':
    case 'dbsize':
    case 'flushAll':
      return { type };
    default: {
      const never: never = type;
      throw new BadPayload(`unknown message type ${String(never)}`);
    }
  }
}

function readHello(step: 'hello' | 'helloAck', r: Reader): Handshake {
  const magic = r.raw(HANDSHAKE_MAGIC.length, `${step}.magic`);
  if (!magic.equals(HANDSHAKE_MAGIC)) throw new BadPayload(`${step} does not start with "DKVP": not a Distri-KV peer`);
  const version = r.u8(`${step}.version`);
  const authCode = r.u8(`${step}.auth`);
  if (authCode > 1) throw new BadPayload(`${step}.auth ${authCode} is not a known scheme`);
  const auth = authCode === 1;
  const nodeId = r.nodeId(`${step}.nodeId`);
  const nonce = r.raw(HANDSHAKE_NONCE_BYTES, `${step}.nonce`);
  if (step === 'hello') return { step, version, auth, nodeId, nonce };
  const proof = auth ? r.raw(HANDSHAKE_PROOF_BYTES, 'helloAck.proof') : null;
  // No r.end(): a later version may append fields to hello and helloAck.
  return { step, version, auth, nodeId, nonce, proof };
}

function readHandshake(step: HandshakeStep, r: Reader): Handshake {
  switch (step) {
    case 'hello':
    case 'helloAck':
      return readHello(step, r);
    case 'proof': {
      const proof = r.bytes('proof');
      if (proof.length !== 0 && proof.length !== HANDSHAKE_PROOF_BYTES) throw new BadPayload(`proof must be 0 or ${HANDSHAKE_PROOF_BYTES} bytes, got ${proof.length}`);
      r.end('proof');
      return { step, proof: proof.length === 0 ? null : proof };
    }
    case 'welcome':
      r.end('welcome');
      return { step };
    case 'refuse': {
      const reason = r.str('refuse.reason');
      r.end('refuse');
      return { step, reason };
    }
    default: {
      const never: never = step;
      throw new BadPayload(`unknown handshake step ${String(never)}`);
    }
  }
}

/**
 * Decodes one whole frame, `buf` holding exactly its bytes (length field
 * included). Never throws on bad bytes: problems are returned as FrameError.
 */
export function decodeFrame(buf: Buffer, objectLimits: ObjectLimits): Frame | FrameError {
  if (buf.length < FRAME_HEADER_BYTES) {
    return { error: 'FRAME_TOO_SHORT', message: `a frame needs at least ${FRAME_HEADER_BYTES} bytes, got ${buf.length}`, fatal: true };
  }
  const length = buf.readUInt32LE(0);
  if (length + 4 !== buf.length) {
    return { error: 'BAD_PAYLOAD', message: `frame length field says ${length + 4} bytes, buffer has ${buf.length}`, fatal: true };
  }
  return decodeChecked(buf, crc32c(buf, 8), objectLimits);
}

/** The rest of decodeFrame, given the CRC32C of bytes 8..end (computed in one pass or as the bytes arrived). */
function decodeChecked(buf: Buffer, crc: number, objectLimits: ObjectLimits): Frame | FrameError {
  if (crc !== buf.readUInt32LE(4)) {
    return { error: 'BAD_CRC', message: `frame checksum mismatch (crc32c ${crc.toString(16)}, frame says ${buf.readUInt32LE(4).toString(16)})`, fatal: true };
  }
  const kind = kindNames[buf[8]!];
  if (kind === undefined) return { error: 'UNKNOWN_KIND', message: `unknown frame kind ${buf[8]}`, fatal: true };
  const id = buf.readUInt32LE(9);
  const typeCode = buf[13]!;
  const r = new Reader(buf.subarray(FRAME_HEADER_BYTES), objectLimits);
  try {
    if (kind === 'handshake') {
      const step = handshakeNames.get(typeCode);
      if (step === undefined) return { error: 'UNKNOWN_TYPE', message: `unknown handshake step ${typeCode}`, fatal: false, kind, id };
      return { kind, id, handshake: readHandshake(step, r) };
    }
    const type = messageTypeNames.get(typeCode);
    if (type === undefined) return { error: 'UNKNOWN_TYPE', message: `unknown message type ${typeCode}`, fatal: false, kind, id };
    const message = readMessage(type, r);
    r.end(type);
    return { kind, id, message };
  } catch (e) {
    if (e instanceof BadPayload) return { error: 'BAD_PAYLOAD', message: e.message, fatal: false, kind, id };
    // Anything else escaping the reader (e.g. the object codec throwing) is still bad input, not a crash.
    return { error: 'BAD_PAYLOAD', message: `undecodable payload: ${(e as Error).message}`, fatal: false, kind, id };
  }
}

export function isFrameError(x: Frame | FrameError): x is FrameError {
  return 'error' in x;
}

/**
 * Frames at least this large are assembled into their own buffer as their
 * bytes arrive, with the CRC computed on the way: each socket chunk is copied
 * once while it is still in cache, instead of all at the end.
 */
const assembleBytesMin = 256 * 1024;

/**
 * Cuts a byte stream into frames, whatever the chunk boundaries. Holds the
 * bytes of at most one incomplete frame (up to maxFrameBytes); a frame that
 * sits inside one chunk is decoded from a view of it without copying.
 * Errors are values; a fatal one is sticky (the stream is out of sync for good).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: FrameError | null = null;
  /** A large frame being assembled, how much of it has arrived, and the running CRC of its bytes 8.. */
  private big: Buffer | null = null;
  private bigFilled = 0;
  private bigCrc = 0;

  /**
   * @param maxFrameBytes largest whole frame accepted (length field included);
   *   the transport raises it once a connection is authenticated.
   * @param objectLimits what versioned objects inside messages may hold.
   */
  constructor(
    public maxFrameBytes: number,
    private readonly objectLimits: ObjectLimits,
  ) {}

  get bufferedBytes(): number {
    return this.buffered + this.bigFilled;
  }

  push(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return;
    if (this.big !== null) {
      const n = Math.min(this.big.length - this.bigFilled, chunk.length);
      this.fillBig(chunk.subarray(0, n));
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next frame, null when more bytes are needed, or an error. */
  next(): Frame | FrameError | null {
    if (this.failed) return this.failed;
    if (this.big !== null) {
      if (this.bigFilled < this.big.length) return null;
      const buf = this.big;
      this.big = null;
      this.bigFilled = 0;
      return this.result(decodeChecked(buf, this.bigCrc, this.objectLimits));
    }
    if (this.buffered < 4) return null;
    const length = this.peekU32();
    if (length > this.maxFrameBytes - 4) {
      return this.fail({
        error: 'FRAME_TOO_LARGE',
        message: `frame of ${length + 4} bytes is over the limit of ${this.maxFrameBytes} (or the stream is not the Distri-KV peer protocol)`,
        fatal: true,
      });
    }
    if (length < lengthFieldMin) {
      return this.fail({ error: 'FRAME_TOO_SHORT', message: `frame length ${length} is below the ${lengthFieldMin}-byte minimum`, fatal: true });
    }
    if (this.buffered >= length + 4) return this.result(decodeFrame(this.take(length + 4), this.objectLimits));
    if (length + 4 >= assembleBytesMin) {
      // Incomplete and large: move what we have into the frame's own buffer; push() fills the rest.
      this.big = Buffer.allocUnsafe(length + 4);
      this.bigCrc = 0;
      for (const c of this.chunks) this.fillBig(c);
      this.chunks = [];
      this.buffered = 0;
    }
    return null;
  }

  private result(f: Frame | FrameError): Frame | FrameError {
    return isFrameError(f) && f.fatal ? this.fail(f) : f;
  }

  private fillBig(bytes: Buffer): void {
    const big = this.big!;
    const from = this.bigFilled;
    bytes.copy(big, from);
    this.bigFilled += bytes.length;
    // The CRC covers bytes 8..end; the length and crc fields themselves are skipped.
    const crcFrom = Math.max(8, from);
    if (this.bigFilled > crcFrom) this.bigCrc = crc32c(big, crcFrom, this.bigFilled, this.bigCrc);
  }

  private fail(e: FrameError): FrameError {
    this.failed = e;
    this.chunks = [];
    this.buffered = 0;
    this.big = null;
    this.bigFilled = 0;
    return e;
  }

  private peekU32(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32LE(0);
    const head = Buffer.allocUnsafe(4);
    let got = 0;
    for (const c of this.chunks) {
      got += c.copy(head, got, 0, Math.min(c.length, 4 - got));
      if (got === 4) break;
    }
    return head.readUInt32LE(0);
  }

  /** Removes and returns the next n buffered bytes (n <= buffered): a view when they sit in one chunk. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    let i = 0;
    while (got < n) {
      const c = this.chunks[i]!;
      const want = n - got;
      if (c.length <= want) {
        c.copy(out, got);
        got += c.length;
        i++;
      } else {
        c.copy(out, got, 0, want);
        this.chunks[i] = c.subarray(want);
        got = n;
      }
    }
    this.chunks.splice(0, i);
    return out;
  }
}

// --- Handshake proofs ----------------------------------------------------------

/**
 * The proof one side of a handshake sends: HMAC-SHA256 keyed with the cluster
 * secret over a label naming the role (so a dialer's proof can never be replayed
 * as an acceptor's), the negotiated version, both nonces and both node ids.
 * Fresh nonces from both sides make every proof single-use.
 */
export function handshakeProof(
  secret: Buffer,
  role: 'dialer' | 'acceptor',
  version: number,
  dialerNonce: Buffer,
  acceptorNonce: Buffer,
  dialerId: NodeId,
  acceptorId: NodeId,
): Buffer {
  return createHmac('sha256', secret)
    .update(`distri-kv peer handshake ${role}\0`)
    .update(Buffer.from([version]))
    .update(dialerNonce)
    .update(acceptorNonce)
    .update(Buffer.from(dialerId, 'hex'))
    .update(Buffer.from(acceptorId, 'hex'))
    .digest();
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Buffer, received: Buffer | null): boolean {
  return received !== null && received.length === expected.length && timingSafeEqual(expected, received);
}
