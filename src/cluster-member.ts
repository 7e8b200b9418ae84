// The cluster half of a node, wired together: the peer transport on the
// cluster port, membership and gossip over it, the ring rebuilt whenever
// membership changes, the replica store over the segment store, and the quorum
// coordinator the client server uses as its KeyValue. Routing of
// read-modify-write commands to a key's first owner also lives here: it is
// where the server (which runs commands) meets the cluster (which knows owners).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Reply, RawReply, ReplyWriter } from '../protocol/resp.js';
import { Coordinator } from './cluster/coordinator.js';
import { GossipDriver } from './cluster/gossip.js';
import { HybridClock } from './cluster/hlc.js';
import { Membership, type MembershipChange } from './cluster/membership.js';
import { monotonicClock, systemClock, systemRandom, systemTimers } from './cluster/ports.js';
import { Ring } from './cluster/ring.js';
import type { MemberState, NodeId, PeerMessage } from './cluster/types.js';
import { parseSeed, type Config } from './config.js';
import * as C from './constants.js';
import { SegmentReplica } from './kv/replica.js';
import type { Logger } from './log.js';
import { PeerTransport, isPeerError } from './peer/index.js';
import type { CommandSpec } from './server/command.js';
import type { Server } from './server/server.js';
import { Session } from './server/session.js';
import type { SegmentStore } from './storage/store.js';

const loopback = (host: string): boolean => host === '127.0.0.1' || host === '::1' || host === 'localhost';

/** Bumps and returns this node's incarnation, kept in the data directory: every start is a new incarnation. */
function nextIncarnation(dataDir: string): number {
  const file = path.join(dataDir, 'incarnation');
  let n = 0;
  try {
    n = Number(fs.readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    /* first start */
  }
  // Never below the wall clock in seconds, so a lost file cannot reuse an old incarnation.
  n = Math.max(n + 1, Math.floor(Date.now() / 1000));
  fs.writeFileSync(file + '.tmp', `${n}\n`);
  fs.renameSync(file + '.tmp', file);
  return n;
}

export class ClusterMember {
  readonly membership: Membership;
  readonly transport: PeerTransport;
  readonly gossip: GossipDriver;
  readonly coordinator: Coordinator;
  readonly replica: SegmentReplica;
  readonly hlc = new HybridClock(systemClock);
  ring: Ring;
  /** Where the peer port actually listens. */
  clusterHost: string;
  clusterPort = 0;
  #nextSessionId = 1_000_000_000;

  constructor(
    readonly config: Config,
    readonly nodeId: NodeId,
    private readonly server: Server,
    store: SegmentStore,
    clientPort: number,
    private readonly log: Logger,
  ) {
    this.clusterHost = config.host;
    if (config.clusterSecret === undefined && !loopback(config.host)) {
      this.clusterHost = '127.0.0.1';
    }
    const self: MemberState = {
      id: nodeId,
      host: config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host,
      port: clientPort,
      clusterPort: config.clusterPort,
      incarnation: nextIncarnation(config.dataDir),
      heartbeat: 0,
      state: 'member',
      weight: config.weight,
      datacenter: config.datacenter,
      rack: config.rack,
    };
    this.membership = new Membership(self, {
      random: systemRandom,
      seeds: config.seeds.map((s) => {
        const seed = parseSeed(s)!;
        return { host: seed.host, port: seed.clusterPort };
      }),
    });
    this.transport = new PeerTransport({ nodeId, secret: config.clusterSecret ?? null, logger: log.child({ module: 'peer' }) });
    this.gossip = new GossipDriver(
      this.membership,
      { clock: monotonicClock, timers: systemTimers, random: systemRandom, transport: this.transport },
      { intervalMs: config.gossipIntervalMs },
    );
    this.ring = this.#buildRing();
    this.replica = new SegmentReplica(store, log.child({ module: 'replica' }));
    this.coordinator = new Coordinator(
      {
        self: nodeId,
        clock: systemClock,
        hlc: this.hlc,
        random: systemRandom,
        transport: this.transport,
        replica: this.replica,
        ring: () => this.ring,
        isUp: (id) => this.membership.isUp(id),
      },
      {
        quorum: { r: config.readQuorum, w: config.writeQuorum },
        requestTimeoutMs: config.requestTimeoutMs,
        siblingsMax: C.siblingsMax,
        readAnswerBytesMax: C.peerReadAnswerBytesMax,
      },
    );
    this.membership.onChange((change) => this.#onMembershipChange(change));
    this.transport.setHandler((from, msg) => this.#handle(from, msg));
  }

  async start(): Promise<void> {
    if (this.clusterHost !== this.config.host) {
      this.log.warn(
        { host: this.config.host, clusterHost: this.clusterHost },
        'no cluster secret set: the peer port listens on loopback only; set --cluster-secret to accept peers from other machines',
      );
    } else if (this.config.clusterSecret === undefined) {
      this.log.info('no cluster secret set: peers are not authenticated (loopback only)');
    }
    this.clusterPort = await this.transport.listen(this.clusterHost, this.config.clusterPort);
    if (this.config.clusterPort === 0) {
      // Port 0 (tests): gossip the port the OS chose.
      this.membership.merge([{ ...this.membership.self(), clusterPort: this.clusterPort, heartbeat: this.membership.self().heartbeat + 1 }], monotonicClock.now());
    }
    this.gossip.start();
    this.log.info({ clusterPort: this.clusterPort, seeds: this.config.seeds, n: this.config.replicas, r: this.config.readQuorum, w: this.config.writeQuorum }, 'cluster member started');
  }

  async close(): Promise<void> {
    this.gossip.stop();
    await this.transport.close();
  }

  /** CLUSTER MEET: talk to that address; gossip does the rest. */
  meet(host: string, clusterPort: number): Promise<boolean> {
    return this.gossip.meet({ host, port: clusterPort });
  }

  #buildRing(): Ring {
    return new Ring(this.membership.ringMembers(), { replicas: this.config.replicas, vnodesPerWeight: this.config.vnodes });
  }

  #onMembershipChange(change: MembershipChange): void {
    const m = 'member' in change ? (change.member as MemberState) : undefined;
    if (m && m.id !== this.nodeId && m.state === 'member') this.transport.setAddress(m.id, m.host, m.clusterPort);
    switch (change.kind) {
      case 'added':
      case 'left':
      case 'changed':
      case 'restarted': {
        const ring = this.#buildRing();
        if (!ring.equals(this.ring)) {
          this.ring = ring;
          this.log.info({ change: change.kind, node: m?.id, members: ring.nodes.length, fingerprint: ring.fingerprint.slice(0, 12) }, 'ring changed');
        }
        if (change.kind === 'left' && m) this.transport.removePeer(m.id);
        break;
      }
      case 'up':
        this.log.info({ node: m?.id }, 'node up');
        break;
      case 'down':
        this.log.warn({ node: m?.id, phi: 'phi' in change ? change.phi : undefined }, 'node down');
        break;
    }
  }

  #handle(from: NodeId, msg: PeerMessage): Promise<PeerMessage> | PeerMessage {
    if (msg.type === 'gossip') return this.gossip.handle(from, msg);
    if (msg.type === 'forward') return this.#runForwarded(msg);
    const answer = this.coordinator.handle(msg, (e) => this.server.errorReply(e).message);
    if (answer === undefined) return { type: 'error', code: 'ERR', message: `ERR unexpected request ${msg.type}` };
    return Promise.resolve(answer).catch((err: Error) => ({ type: 'error', code: 'ERR', message: this.server.errorReply(err).message }));
  }

  /**
   * Read-modify-write commands run on their key's first live owner, which
   * serialises them per key. Returns undefined when that is this node.
   */
  route(session: Session, spec: CommandSpec, args: Buffer[]): Promise<Reply> | undefined {
    if (session.forwarded) return undefined;
    const key = args[spec.firstKey];
    if (key === undefined) return undefined;
    // Owners in preference order that this node believes up (itself always counts).
    const line = this.coordinator.owners(key).filter((o) => o === this.nodeId || this.membership.isUp(o));
    if (line.length === 0) return Promise.reject(new Error('CLUSTERDOWN no reachable owner for the key'));
    if (line[0] === this.nodeId) return undefined;
    return this.#forward(line, 0, session, spec, args);
  }

  /**
   * Sends the command to line[i]; if that node refuses the connection (it died
   * before the failure detector noticed), the next owner in line takes it,
   * possibly this node.
   */
  #forward(line: NodeId[], i: number, session: Session, spec: CommandSpec, args: Buffer[]): Promise<Reply> {
    const target = line[i]!;
    if (target === this.nodeId) return Promise.resolve(spec.handler(session, args));
    const q = session.quorumLevels(this.coordinator.levels);
    return this.transport.request(target, { type: 'forward', args, resp3: session.resp3, r: q.r, w: q.w }, this.config.requestTimeoutMs * 3).then(
      (m) => {
        if (m.type === 'reply') return new RawReply(m.resp);
        if (m.type === 'error') throw new Error(m.message);
        throw new Error(`ERR unexpected answer ${m.type} to a forwarded command`);
      },
      (err: unknown) => {
        if (isPeerError(err, 'UNREACHABLE') && i + 1 < line.length) return this.#forward(line, i + 1, session, spec, args);
        throw err;
      },
    );
  }

  async #runForwarded(msg: Extract<PeerMessage, { type: 'forward' }>): Promise<PeerMessage> {
    const session = new Session(this.server, this.#nextSessionId++);
    session.forwarded = true;
    session.authenticated = true;
    session.resp3 = msg.resp3;
    session.setQuorum(this.coordinator, { r: msg.r, w: msg.w });
    const spec = this.server.lookup(msg.args[0]!);
    const reply = await this.server.dispatch(session, spec, msg.args);
    const writer = new ReplyWriter(msg.resp3);
    writer.write(reply);
    return { type: 'reply', resp: Buffer.concat(writer.take()) };
  }
}
