// The vocabulary the cluster core and the peer transport share: node ids,
// gossiped member state, version vectors and versioned objects, and the
// messages nodes exchange. protocol/peer.ts encodes these messages and
// protocol/object.ts encodes versioned objects; this file only names them.

/** 40 hex characters, like a Redis Cluster node id. */
export type NodeId = string;

/** What every node gossips about a member. Liveness (up/down) is NOT gossiped: each node's detector decides. */
export interface MemberState {
  id: NodeId;
  host: string;
  /** Client (RESP) port. */
  port: number;
  /** Peer port (default port + 10000). */
  clusterPort: number;
  /** Bumped by the node itself at every start; the higher incarnation's state wins. */
  incarnation: number;
  /** Bumped by the node itself every gossip interval; drives failure detection. */
  heartbeat: number;
  /** 'member' while in the ring; 'left' once forgotten (kept as a tombstone so it is not re-learned). */
  state: 'member' | 'left';
  /** Relative capacity: vnodes = vnodesPerWeight * weight. */
  weight: number;
  datacenter: string;
  rack: string;
}

/** A version vector / causal context: node id → highest counter seen. */
export type VersionVector = Map<NodeId, number>;

/** One concurrent value of a key (a sibling), identified by its dot. */
export interface Sibling {
  /** The dot: the write's coordinator and its counter for this key. */
  node: NodeId;
  counter: number;
  /** Hybrid logical clock of the write: orders concurrent siblings deterministically for plain GET. */
  hlc: number;
  /** null for a tombstone (a versioned delete). */
  value: Buffer | null;
  /** Absolute unix ms; 0 = never. */
  expiresAtMs: number;
}

/** A key's replicated state: live siblings plus the causal context that summarises what was seen. */
export interface VersionedObject {
  vv: VersionVector;
  siblings: Sibling[];
}

/** Messages between nodes. Requests get exactly one response message (or `error`). */
export type PeerMessage =
  // membership (push-pull gossip: the response is the receiver's view)
  | { type: 'gossip'; from: NodeId; members: MemberState[] }
  // replica reads
  | { type: 'getObject'; key: Buffer; versionOnly: boolean }
  | { type: 'object'; object: VersionedObject | null }
  // replica writes: the receiver merges `object` into its copy and answers once durable
  | { type: 'putObject'; key: Buffer; object: VersionedObject }
  | { type: 'ack' }
  // a coordinator's new version of a key: merged as putObject, answered once durable with `written`, which
  // carries the replica's prior version vector when the new version did not account for its copy (the
  // coordinator then versions again over it; see Coordinator.coordinate)
  | { type: 'writeObject'; key: Buffer; object: VersionedObject }
  | { type: 'written'; seen: VersionVector | null }
  // a blind write (SET) or delete coordinated by an owner on behalf of a node that does not own the key;
  // answered with `count` (1 for a set; for a delete, whether the key existed)
  | { type: 'coordinate'; op: 'set' | 'delete'; key: Buffer; value: Buffer | null; expiresAtMs: number; r: number; w: number }
  // a whole client command run on another node (RMW commands on the key's first owner), with the
  // client's protocol and consistency levels; answered with `reply` (RESP bytes for that client)
  | { type: 'forward'; args: Buffer[]; resp3: boolean; r: number; w: number }
  | { type: 'reply'; resp: Buffer }
  // cluster-wide keyspace operations, answered from the receiver's local store
  | { type: 'scan'; cursor: number; count: number }
  | { type: 'scanPage'; cursor: number; keys: Buffer[] }
  | { type: 'dbsize' }
  | { type: 'count'; n: number }
  | { type: 'flushAll' }
  | { type: 'error'; code: string; message: string };

export type PeerMessageType = PeerMessage['type'];
