// CLUSTER commands, in the shapes cluster-aware clients parse (ioredis
// Cluster reads CLUSTER SLOTS and waits for cluster_state:ok in CLUSTER INFO;
// redis-cli --cluster reads CLUSTER NODES), plus our own views of the ring,
// a key's owners and each node's failure-detector state, and CONSISTENCY,
// which sets a connection's read and write quorums.
//
// Any node serves any key, so nobody is ever redirected (no -MOVED): CLUSTER
// SLOTS reports each slot's first owner as its master and the other owners
// as replicas, which lets clients spread load the way the ring does.

import { BulkText, ErrorReply, MapReply, OK, type Reply, VerbatimReply } from '../../../protocol/resp.js';
import { slotOf } from '../../cluster/ring.js';
import type { NodeId } from '../../cluster/types.js';
import type { ClusterMember } from '../../cluster-member.js';
import { isKeyword, parseSafeInteger } from '../args.js';
import { type CommandSpec, command } from '../command.js';
import { Err } from '../errors.js';
import type { Session } from '../session.js';

const disabled = new ErrorReply('ERR This instance has cluster support disabled');

function member(c: Session): ClusterMember | ErrorReply {
  return c.server.cluster ?? disabled;
}

interface NodeInfo {
  id: NodeId;
  host: string;
  port: number;
  clusterPort: number;
  up: boolean;
  self: boolean;
  phi: number;
}

function nodes(m: ClusterMember): NodeInfo[] {
  return m.membership.view(performance.now()).map((v) => ({
    id: v.member.id,
    host: v.member.host,
    port: v.member.port,
    clusterPort: v.member.clusterPort,
    up: v.up,
    self: v.self,
    phi: v.phi,
  }));
}

/** Healthy when every slot has at least one owner that is up. */
function clusterOk(m: ClusterMember): boolean {
  const up = new Set(nodes(m).filter((n) => n.up || n.self).map((n) => n.id));
  if (m.ring.nodes.length === 0) return false;
  return m.ring.slotRanges().every((r) => r.owners.some((o) => up.has(o)));
}

function infoText(m: ClusterMember): string {
  const all = nodes(m);
  const ok = clusterOk(m);
  const { r, w } = m.coordinator.levels;
  const rows: Array<[string, string | number]> = [
    ['cluster_state', ok ? 'ok' : 'fail'],
    ['cluster_slots_assigned', m.ring.nodes.length > 0 ? 16384 : 0],
    ['cluster_slots_ok', ok ? 16384 : 0],
    ['cluster_slots_pfail', 0],
    ['cluster_slots_fail', ok ? 0 : 16384],
    ['cluster_known_nodes', all.length],
    ['cluster_size', m.ring.nodes.length],
    ['cluster_nodes_up', all.filter((n) => n.up || n.self).length],
    ['cluster_current_epoch', 1],
    ['cluster_my_epoch', 1],
    ['cluster_replicas', m.ring.replicas],
    ['cluster_read_quorum', r],
    ['cluster_write_quorum', w],
    ['cluster_ring_fingerprint', m.ring.fingerprint],
    ['cluster_read_repairs', m.coordinator.stats.readRepairs],
    ['cluster_quorum_failures', m.coordinator.stats.quorumFailures],
    ['cluster_write_retries', m.coordinator.stats.writeRetries],
    ['cluster_writes_combined', m.coordinator.stats.writesCombined],
    ['cluster_forwards_combined', m.coordinator.stats.forwardsCombined],
    ['cluster_reads_combined', m.coordinator.stats.readsCombined],
    ['cluster_contended_forwards', m.coordinator.stats.contendedForwards],
  ];
  return rows.map(([k, v]) => `${k}:${v}\r\n`).join('');
}

const addrOf = (n: NodeInfo): string => `${n.host}:${n.port}@${n.clusterPort}`;

function nodesText(m: ClusterMember): string {
  const ranges = m.ring.primarySlotRanges();
  const now = Date.now();
  return (
    nodes(m)
      .map((n) => {
        const flags = [n.self ? 'myself' : undefined, 'master', n.up || n.self ? undefined : 'fail'].filter(Boolean).join(',');
        const slots = ranges
          .filter((r) => r.owners[0] === n.id)
          .map((r) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`))
          .join(' ');
        const link = n.up || n.self ? 'connected' : 'disconnected';
        return `${n.id} ${addrOf(n)} ${flags} - 0 ${n.up ? now : 0} 1 ${link}${slots ? ' ' + slots : ''}`;
      })
      .join('\n') + '\n'
  );
}

function slots(m: ClusterMember): Reply {
  const byId = new Map(nodes(m).map((n) => [n.id, n]));
  const entry = (id: NodeId): Reply => {
    const n = byId.get(id);
    return [new BulkText(n?.host ?? '?'), n?.port ?? 0, new BulkText(id), new MapReply([])];
  };
  return m.ring.primarySlotRanges().map((r) => [r.start, r.end, ...r.owners.map(entry)]);
}

function shards(m: ClusterMember): Reply {
  const ranges = m.ring.primarySlotRanges();
  return nodes(m).map((n) => {
    const own = ranges.filter((r) => r.owners[0] === n.id).flatMap((r) => [r.start, r.end]);
    return new MapReply([
      [new BulkText('slots'), own],
      [
        new BulkText('nodes'),
        [
          new MapReply([
            [new BulkText('id'), new BulkText(n.id)],
            [new BulkText('port'), n.port],
            [new BulkText('ip'), new BulkText(n.host)],
            [new BulkText('endpoint'), new BulkText(n.host)],
            [new BulkText('role'), new BulkText('master')],
            [new BulkText('replication-offset'), 0],
            [new BulkText('health'), new BulkText(n.up || n.self ? 'online' : 'failed')],
          ]),
        ],
      ],
    ]);
  });
}

/** CLUSTER OWNERS key: the preference list, in order, with each owner's address and state. */
function owners(m: ClusterMember, key: Buffer): Reply {
  const byId = new Map(nodes(m).map((n) => [n.id, n]));
  return m.coordinator.owners(key).map((id) => {
    const n = byId.get(id);
    return [new BulkText(id), new BulkText(n ? `${n.host}:${n.port}` : '?'), new BulkText(n && (n.up || n.self) ? 'up' : 'down')];
  });
}

/** CLUSTER MEMBERS: every known node with its failure-detector view. */
function members(m: ClusterMember): Reply {
  const ringSet = new Set(m.ring.nodes);
  return m.membership.view(performance.now()).map((v) =>
    new MapReply([
      [new BulkText('id'), new BulkText(v.member.id)],
      [new BulkText('addr'), new BulkText(`${v.member.host}:${v.member.port}@${v.member.clusterPort}`)],
      [new BulkText('state'), new BulkText(v.self ? 'self' : v.up ? 'up' : 'down')],
      [new BulkText('phi'), new BulkText(v.phi.toFixed(3))],
      [new BulkText('incarnation'), v.member.incarnation],
      [new BulkText('heartbeat'), v.member.heartbeat],
      [new BulkText('weight'), v.member.weight],
      [new BulkText('datacenter'), new BulkText(v.member.datacenter)],
      [new BulkText('rack'), new BulkText(v.member.rack)],
      [new BulkText('in_ring'), ringSet.has(v.member.id) ? 1 : 0],
      [new BulkText('primary_slots'), m.ring.primarySlotCounts().get(v.member.id) ?? 0],
    ]),
  );
}

const K = { group: 'cluster' as const };
const withMember = (f: (m: ClusterMember, c: Session, a: Buffer[]) => Reply | Promise<Reply>) => (c: Session, a: Buffer[]) => {
  const m = member(c);
  return m instanceof ErrorReply ? m : f(m, c, a);
};

const clusterSubcommands: CommandSpec[] = [
  command('cluster|info', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns information about the state of a node.', since: '3.0.0' }, withMember((m) => new VerbatimReply(infoText(m)))),
  command('cluster|myid', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the ID of a node.', since: '3.0.0' }, withMember((m) => new BulkText(m.nodeId))),
  command('cluster|keyslot', 3, ['stale'], [0, 0, 0], { ...K, summary: 'Returns the hash slot for a key.', since: '3.0.0', complexity: 'O(N) where N is the number of bytes in the key' }, (_c, a) => slotOf(a[2]!)),
  command('cluster|nodes', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the cluster configuration for a node.', since: '3.0.0', complexity: 'O(N) where N is the total number of Cluster nodes' }, withMember((m) => new VerbatimReply(nodesText(m)))),
  command('cluster|slots', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the mapping of cluster slots to nodes.', since: '3.0.0', complexity: 'O(N) where N is the total number of Cluster nodes' }, withMember(slots)),
  command('cluster|shards', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the mapping of cluster slots to shards.', since: '7.0.0', complexity: 'O(N) where N is the total number of cluster nodes' }, withMember(shards)),
  command('cluster|meet', -4, ['admin', 'stale'], [0, 0, 0], { ...K, summary: 'Forces a node to handshake with another node.', since: '3.0.0' }, withMember((m, _c, a) => {
    const port = parseSafeInteger(a[3]!);
    const cport = a.length > 4 ? parseSafeInteger(a[4]!) : port === undefined ? undefined : port + 10000;
    if (port === undefined || port < 1 || port > 65535 || cport === undefined || cport < 1 || cport > 65535) {
      return new ErrorReply(`ERR Invalid base port specified: ${a[3]!.toString()}`);
    }
    return m.meet(a[2]!.toString(), cport).then((ok) =>
      ok ? OK : new ErrorReply(`ERR could not reach a Distri-KV node at ${a[2]!.toString()}:${cport}`),
    );
  })),
  command('cluster|forget', 3, ['admin', 'stale'], [0, 0, 0], { ...K, summary: 'Removes a node from the nodes table.', since: '3.0.0' }, withMember((m, _c, a) => {
    const id = a[2]!.toString();
    if (id === m.nodeId) return new ErrorReply("ERR I tried hard but I can't forget myself...");
    if (m.membership.get(id) === undefined) return new ErrorReply(`ERR Unknown node ${id}`);
    m.membership.forget(id);
    return OK;
  })),
  command('cluster|owners', 3, ['stale'], [0, 0, 0], { ...K, summary: 'Returns the preference list of a key: its N owners in order, with address and state.', since: '0.1.0' }, withMember((m, _c, a) => owners(m, a[2]!))),
  command('cluster|ring', 2, ['stale'], [0, 0, 0], { ...K, summary: 'Returns the ring: every virtual node token in order with its node.', since: '0.1.0', complexity: 'O(T) where T is the number of tokens' }, withMember((m) =>
    m.ring.tokens().map((t) => [t.token, new BulkText(t.node)]),
  )),
  command('cluster|members', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns every known node with its state, failure-detector phi, incarnation and placement.', since: '0.1.0' }, withMember(members)),
  command('cluster|help', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns helpful text about the different subcommands.', since: '5.0.0' }, () => [
    'CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
    'INFO', '    Return information about the cluster.',
    'MYID', '    Return the node id.',
    'KEYSLOT <key>', '    Return the hash slot for <key>.',
    'NODES', '    Return cluster configuration seen by node.',
    'SLOTS', '    Return information about slots range mappings.',
    'SHARDS', '    Return information about slot range mappings and the nodes that own them.',
    'MEET <ip> <port> [<cport>]', '    Connect to another node (cport defaults to port + 10000).',
    'FORGET <node-id>', '    Remove a node from the cluster for good.',
    'OWNERS <key>', '    Return the N owners of <key> in preference order.',
    'RING', '    Return the ring tokens and their nodes.',
    'MEMBERS', '    Return every node with its state and phi.',
  ]),
];

/** CONSISTENCY level: ONE, QUORUM, ALL or a number of replicas. */
function level(arg: Buffer, n: number): number | undefined {
  if (isKeyword(arg, 'ONE')) return 1;
  if (isKeyword(arg, 'QUORUM')) return Math.floor(n / 2) + 1;
  if (isKeyword(arg, 'ALL')) return n;
  const v = parseSafeInteger(arg);
  return v !== undefined && v >= 1 && v <= n ? v : undefined;
}

function consistency(c: Session, a: Buffer[]): Reply {
  const m = c.server.cluster;
  const n = m ? m.ring.replicas : 1;
  const defaults = m ? m.coordinator.levels : { r: 1, w: 1 };
  if (a.length > 1) {
    if (!m) return disabled;
    const q = { ...c.quorum };
    if (a.length === 2 && isKeyword(a[1]!, 'DEFAULT')) {
      q.r = undefined;
      q.w = undefined;
    } else if (a.length === 2) {
      const v = level(a[1]!, n);
      if (v === undefined) return new ErrorReply(`ERR consistency level must be ONE, QUORUM, ALL, DEFAULT or 1..${n}`);
      q.r = v;
      q.w = v;
    } else {
      for (let i = 1; i < a.length; i += 2) {
        const v = i + 1 < a.length ? level(a[i + 1]!, n) : undefined;
        if (v === undefined) return new ErrorReply(`ERR consistency level must be ONE, QUORUM, ALL or 1..${n}`);
        if (isKeyword(a[i]!, 'READ')) q.r = v;
        else if (isKeyword(a[i]!, 'WRITE')) q.w = v;
        else return Err.syntax;
      }
    }
    c.setQuorum(m.coordinator, q);
  }
  const now = c.quorumLevels(defaults);
  return new MapReply([
    [new BulkText('n'), n],
    [new BulkText('r'), now.r],
    [new BulkText('w'), now.w],
  ]);
}

export const clusterCommands: CommandSpec[] = [
  command('cluster', -2, ['stale'], [0, 0, 0], { ...K, summary: 'A container for Redis Cluster commands.', since: '3.0.0', complexity: 'Depends on subcommand.' }, (_c, a) =>
    new ErrorReply(`ERR unknown subcommand '${a[1]?.toString('latin1')}'. Try CLUSTER HELP.`),
    clusterSubcommands,
  ),
  command('consistency', -1, ['fast', 'stale'], [0, 0, 0], { ...K, summary: 'Shows or sets this connection\'s read and write quorums: CONSISTENCY [ONE|QUORUM|ALL|DEFAULT|n] or CONSISTENCY READ <level> WRITE <level>.', since: '0.1.0' }, consistency),
];
