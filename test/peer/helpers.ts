// Shared helpers for the peer tests: node ids, sample messages of every type,
// a pino logger whose lines the test can read, raw frames with a valid CRC,
// transports on 127.0.0.1 that are closed at teardown, and small waits.

import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { crc32c } from '@node-rs/crc32';
import { pino, type Logger } from 'pino';
import { encodeHandshake, FrameDecoder, isFrameError, PEER_FORMAT_VERSION, type Frame, type FrameError } from '../../protocol/peer.js';
import { encodeObject } from '../../protocol/object.js';
import type { MemberState, NodeId, PeerMessage, VersionedObject } from '../../src/cluster/types.js';
import { seededRandom } from '../../src/cluster/ports.js';
import { objectLimits } from '../../src/cluster/version.js';
import { peerFrameBytesMax } from '../../src/constants.js';
import { PeerTransport, type PeerLimits } from '../../src/peer/index.js';

export { objectLimits };

/** A valid 40-hex node id derived from a small number. */
export function nodeId(n: number): NodeId {
  return n.toString(16).padStart(8, '0').repeat(5);
}

/** The cluster's seeded PRNG as a plain function. */
export function mulberry32(seed: number): () => number {
  const r = seededRandom(seed);
  return () => r.next();
}

const member: MemberState = {
  id: nodeId(7),
  host: '10.0.0.7',
  port: 6379,
  clusterPort: 16379,
  incarnation: 1_700_000_000_123,
  heartbeat: 42,
  state: 'member',
  weight: 1.5,
  datacenter: 'eu-west-1',
  rack: 'r1',
};

export const sampleObject: VersionedObject = {
  vv: new Map([
    [nodeId(1), 3],
    [nodeId(2), 1],
  ]),
  siblings: [
    { node: nodeId(1), counter: 3, hlc: 1_700_000_000_000 * 1024 + 5, value: Buffer.from('first'), expiresAtMs: 0 },
    { node: nodeId(2), counter: 1, hlc: 17, value: null, expiresAtMs: 1_700_000_060_000 },
  ],
};

/** At least one message of every PeerMessage type, with edge values. */
export function sampleMessages(): PeerMessage[] {
  const bin = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a]);
  return [
    { type: 'gossip', from: nodeId(1), members: [member, { ...member, id: nodeId(8), state: 'left', host: 'höst-ünicode', weight: 0 }] },
    { type: 'gossip', from: nodeId(2), members: [] },
    { type: 'readBatch', items: [{ key: Buffer.from('user:1000'), versionOnly: false }] },
    { type: 'readBatch', items: [{ key: Buffer.alloc(0), versionOnly: true }, { key: bin, versionOnly: false }] },
    { type: 'objects', results: [encodeObject(sampleObject)] },
    { type: 'objects', results: [null, encodeObject({ vv: new Map(), siblings: [] }), { error: 'ERR bad record' }, { again: true }] },
    { type: 'objects', results: [] },
    { type: 'ack' },
    { type: 'writeBatch', items: [{ key: bin, encoded: encodeObject(sampleObject), report: true }] },
    {
      type: 'writeBatch',
      items: [
        { key: Buffer.from('user:1'), encoded: encodeObject(sampleObject), report: false },
        { key: Buffer.alloc(0), encoded: encodeObject({ vv: new Map(), siblings: [] }), report: true },
      ],
    },
    { type: 'writtenBatch', results: [] },
    { type: 'writtenBatch', results: [null, { seen: sampleObject.vv }, { error: 'ERR disk full' }, { seen: new Map() }] },
    { type: 'forward', args: [Buffer.from('SET'), Buffer.from('k'), bin, Buffer.alloc(0)], resp3: true, r: 2, w: 3 },
    { type: 'forward', args: [], resp3: false, r: 0, w: 0xffff_ffff },
    { type: 'coordinateBatch', items: [{ op: 'set', key: Buffer.from('user:1'), value: bin, expiresAtMs: 1_700_000_060_000, r: 2, w: 2 }] },
    {
      type: 'coordinateBatch',
      items: [
        { op: 'delete', key: bin, value: null, expiresAtMs: 0, r: 1, w: 3 },
        { op: 'set', key: Buffer.alloc(0), value: Buffer.alloc(0), expiresAtMs: 0, r: 0, w: 0 },
      ],
    },
    { type: 'coordinated', results: [] },
    { type: 'coordinated', results: [1, 0, { error: 'TRYAGAIN write quorum not reached: 1 of 2 needed' }, 2 ** 40] },
    { type: 'reply', resp: Buffer.from('+OK\r\n') },
    { type: 'scan', cursor: Number.MAX_SAFE_INTEGER, count: 0xffff_ffff },
    { type: 'scanPage', cursor: 0, keys: [Buffer.from('a'), bin, Buffer.alloc(0)] },
    { type: 'scanPage', cursor: 12345678901, keys: [] },
    { type: 'dbsize' },
    { type: 'count', n: 2 ** 40 },
    { type: 'flushAll' },
    { type: 'error', code: 'OVERLOADED', message: 'too busy — retry' },
  ];
}

/** A frame with a valid CRC around an arbitrary payload (for malformed-payload tests). */
export function rawFrame(kind: number, id: number, type: number, payload: Buffer): Buffer {
  const buf = Buffer.alloc(14 + payload.length);
  buf.writeUInt32LE(10 + payload.length, 0);
  buf[8] = kind;
  buf.writeUInt32LE(id, 9);
  buf[13] = type;
  payload.copy(buf, 14);
  buf.writeUInt32LE(crc32c(buf.subarray(8)), 4);
  return buf;
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface CapturedLog {
  logger: Logger;
  lines: LogLine[];
  /** Lines at warn (40) or above. */
  warnings(): LogLine[];
}

export function captureLog(): CapturedLog {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines, warnings: () => lines.filter((l) => l.level >= 40) };
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface Node {
  transport: PeerTransport;
  id: NodeId;
  port: number;
  log: CapturedLog;
}

/** A listening transport on 127.0.0.1 (a free port unless given), closed when the test ends. */
export async function startNode(
  t: Teardown,
  n: number,
  opts: { secret?: string | null; limits?: Partial<PeerLimits>; port?: number; echo?: boolean } = {},
): Promise<Node> {
  const log = captureLog();
  const id = nodeId(n);
  const transport = new PeerTransport({ nodeId: id, secret: opts.secret ?? null, logger: log.logger, limits: opts.limits, random: mulberry32(n) });
  if (opts.echo !== false) transport.setHandler((_from, msg) => msg);
  const port = await transport.listen('127.0.0.1', opts.port ?? 0);
  t.teardown(() => transport.close());
  return { transport, id, port, log };
}

/** Tells each transport where the others listen. */
export function introduce(...nodes: Node[]): void {
  for (const a of nodes) for (const b of nodes) if (a !== b) a.transport.setAddress(b.id, '127.0.0.1', b.port);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every few ms until it holds or `ms` pass; returns whether it held. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return true;
    await sleep(5);
  }
  return cond();
}

/** Settles a promise into a value so tests can inspect rejections without try/catch. */
export async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: Error & { code?: string } }> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    return { ok: false, error: e as Error & { code?: string } };
  }
}

/**
 * A hand-driven peer over a raw socket, speaking the wire format with the
 * codec directly: for tests that need to misbehave (garbage, no handshake,
 * bad CRC, never reading) where a PeerTransport would not.
 */
export class RawPeer {
  readonly decoder = new FrameDecoder(peerFrameBytesMax, objectLimits);
  private readonly frames: Array<Frame | FrameError> = [];
  private wake: (() => void) | null = null;
  closed = false;
  readonly closedPromise: Promise<void>;
  /** Our port, kept (a closed socket forgets it): the node's log names us by it. */
  readonly localPort: number;

  private constructor(readonly socket: net.Socket) {
    this.localPort = socket.localPort!;
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let f = this.decoder.next(); f !== null; f = this.decoder.next()) {
        this.frames.push(f);
        if (isFrameError(f) && f.fatal) break;
      }
      this.wake?.();
    });
    socket.on('error', () => {});
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        this.wake?.();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawPeer(s)));
      s.once('error', reject);
    });
  }

  write(buf: Buffer | string): void {
    this.socket.write(buf);
  }

  /** The next frame, or 'closed' / 'timeout'. */
  async next(timeoutMs = 2000): Promise<Frame | FrameError | 'closed' | 'timeout'> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f) return f;
      if (this.closed) return 'closed';
      const left = until - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  /** Does the dialer side of a handshake without a secret; resolves with the acceptor's id. */
  async handshake(selfId: NodeId): Promise<NodeId> {
    this.write(encodeHandshake({ step: 'hello', version: PEER_FORMAT_VERSION, auth: false, nodeId: selfId, nonce: randomBytes(32) }));
    const ack = await this.next();
    if (typeof ack === 'string' || isFrameError(ack) || ack.kind !== 'handshake' || ack.handshake.step !== 'helloAck') {
      throw new Error(`expected helloAck, got ${JSON.stringify(ack)}`);
    }
    this.write(encodeHandshake({ step: 'proof', proof: null }));
    const welcome = await this.next();
    if (typeof welcome === 'string' || isFrameError(welcome) || welcome.kind !== 'handshake' || welcome.handshake.step !== 'welcome') {
      throw new Error(`expected welcome, got ${JSON.stringify(welcome)}`);
    }
    return ack.handshake.nodeId;
  }

  close(): void {
    this.socket.destroy();
  }
}
