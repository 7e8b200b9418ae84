// The floor under the cluster benchmark: the least three Node processes can do
// for a replicated SET on this machine, to tell what the machine costs from
// what our code costs (`node dist/bench/run.js --floor`).
//
// A coordinator process accepts RESP SETs (the request bytes are the whole
// "value": no parsing beyond framing, no versions, no index, no checksums),
// appends each turn's requests to a local file with one write, sends them to
// two replica processes as one length-prefixed frame per replica per turn over
// persistent TCP connections, and answers "+OK" when the first replica has
// acknowledged (W=2 counting itself, N=3). Each replica appends a frame with
// one write and acknowledges it. The same processes, sockets, wakeups and
// syscalls per operation as our cluster's SET at pipeline 1; none of the work.
//
// It is a measuring instrument, not a store: nothing is read back, and it only
// understands SET (plus PING) from redis-benchmark.
//
//   node dist/bench/floor.js replica <port>
//   node dist/bench/floor.js coordinator <port> <replicaPort> <replicaPort>

import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir } from '../test/e2e/harness.js';
import type { Target } from './run.js';

const CRLF = 0x0d;

/** Length of the first complete RESP multibulk request in buf from `at`, or 0 if it is not all there. */
function requestLength(buf: Buffer, at: number): number {
  let p = at;
  const line = (): number => {
    const end = buf.indexOf(CRLF, p);
    if (end < 0 || end + 1 >= buf.length) return -1;
    const n = Number(buf.toString('latin1', p + 1, end));
    p = end + 2;
    return n;
  };
  const argc = line();
  if (argc < 0) return 0;
  for (let i = 0; i < argc; i++) {
    const len = line();
    if (len < 0 || p + len + 2 > buf.length) return 0;
    p += len + 2;
  }
  return p - at;
}

/** The first argument of a whole request, upper-cased. */
function commandName(request: Buffer): string {
  const header = request.indexOf(CRLF) + 2; // past "*<argc>\r\n"
  const start = request.indexOf(CRLF, header) + 2; // past "$<len>\r\n"
  const len = Number(request.toString('latin1', header + 1, start - 2));
  return request.toString('latin1', start, start + len).toUpperCase();
}

function replica(port: number, dir: string): void {
  const log = fs.openSync(path.join(dir, `replica-${port}.log`), 'w');
  net
    .createServer((socket) => {
      socket.setNoDelay(true);
      let pending: Buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
        let acks = 0;
        const frames: Buffer[] = [];
        // frame: u32 body length, u32 request count, body
        while (pending.length >= 8 && pending.length >= 8 + pending.readUInt32LE(0)) {
          const len = pending.readUInt32LE(0);
          acks += pending.readUInt32LE(4);
          frames.push(pending.subarray(8, 8 + len));
          pending = pending.subarray(8 + len);
        }
        if (acks === 0) return;
        fs.writeSync(log, Buffer.concat(frames));
        const ack = Buffer.allocUnsafe(4);
        ack.writeUInt32LE(acks);
        socket.write(ack);
      });
    })
    .listen(port, '127.0.0.1');
}

function coordinator(port: number, replicaPorts: number[], dir: string): void {
  const log = fs.openSync(path.join(dir, `coordinator-${port}.log`), 'w');
  interface Peer {
    socket: net.Socket;
    out: Buffer[];
    count: number;
    /** Ids and clients of the requests sent to this replica, in order: its acks come in that order. */
    waiting: Array<{ id: number; client: net.Socket }>;
  }
  const firstAcked = new Set<number>();
  const peers: Peer[] = replicaPorts.map((p) => {
    const socket = net.connect(p, '127.0.0.1');
    socket.setNoDelay(true);
    const peer: Peer = { socket, out: [], count: 0, waiting: [] };
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      for (; pending.length >= 4; pending = pending.subarray(4)) {
        for (let n = pending.readUInt32LE(0); n > 0; n--) {
          const { id, client } = peer.waiting.shift()!;
          // The first replica's ack answers (with the local write: 2 of 3); the second's is noted.
          // Each replica acks in send order, so first acks, and the replies, keep each client's order.
          if (firstAcked.delete(id)) continue;
          firstAcked.add(id);
          if (!client.destroyed) client.write('+OK\r\n');
        }
      }
    });
    return peer;
  });
  const local: Buffer[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (local.length > 0) fs.writeSync(log, Buffer.concat(local.splice(0)));
    for (const peer of peers) {
      if (peer.count === 0) continue;
      const body = Buffer.concat(peer.out);
      const head = Buffer.allocUnsafe(8);
      head.writeUInt32LE(body.length, 0);
      head.writeUInt32LE(peer.count, 4);
      peer.socket.write(Buffer.concat([head, body]));
      peer.out = [];
      peer.count = 0;
    }
  };
  let nextId = 0;
  net
    .createServer((client) => {
      client.setNoDelay(true);
      client.on('error', () => {});
      let pending: Buffer = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => {
        pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
        let at = 0;
        for (let n = requestLength(pending, at); n > 0; n = requestLength(pending, at)) {
          const request = pending.subarray(at, at + n);
          at += n;
          // redis-benchmark asks CONFIG at start (a "-" reply is fine) and may PING.
          const name = commandName(request);
          if (name === 'PING') {
            client.write('+PONG\r\n');
            continue;
          }
          if (name !== 'SET') {
            client.write('-ERR the floor only does SET\r\n');
            continue;
          }
          const id = ++nextId;
          local.push(request);
          for (const peer of peers) {
            peer.out.push(request);
            peer.count++;
            peer.waiting.push({ id, client });
          }
        }
        pending = pending.subarray(at);
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    })
    .listen(port, '127.0.0.1');
}

/** Starts the three floor processes; the target is the coordinator. */
export async function startFloor(): Promise<Target> {
  const dir = tempDir('dkv-floor-');
  const self = fileURLToPath(import.meta.url);
  const [port, r1, r2] = [await freePort(), await freePort(), await freePort()];
  const procs: ChildProcess[] = [
    spawn(process.execPath, [self, 'replica', String(r1), dir], { stdio: 'inherit' }),
    spawn(process.execPath, [self, 'replica', String(r2), dir], { stdio: 'inherit' }),
  ];
  await listening(r1);
  await listening(r2);
  procs.push(spawn(process.execPath, [self, 'coordinator', String(port), String(r1), String(r2), dir], { stdio: 'inherit' }));
  await listening(port);
  return {
    name: 'floor',
    port,
    stop: async () => {
      await Promise.all(procs.map((p) => new Promise((resolve) => (p.exitCode !== null ? resolve(null) : (p.once('exit', resolve), p.kill())))));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function listening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`floor process on port ${port} did not start`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [role, port, ...rest] = process.argv.slice(2);
  if (role === 'replica') replica(Number(port), rest[0]!);
  else if (role === 'coordinator') coordinator(Number(port), [Number(rest[0]), Number(rest[1])], rest[2]!);
  else {
    console.error('usage: floor.js replica <port> <dir> | coordinator <port> <replicaPort> <replicaPort> <dir>');
    process.exit(2);
  }
}
