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
  // replica reads: the keys one coordinator asks one replica for in one turn of its event loop, as one
  // request; answered with one result per item in the same order (see ReadResult)
  | { type: 'readBatch'; items: ReadItem[] }
  | { type: 'objects'; results: ReadResult[] }
  | { type: 'ack' }
  // replica writes: the versions one coordinator has for one replica in one turn of its event loop, as one
  // request; the replica merges each into its copy, in order, and answers once all are durable, with one
  // result per item in the same order (see WriteResult)
  | { type: 'writeBatch'; items: WriteItem[] }
  | { type: 'writtenBatch'; results: WriteResult[] }
  // blind writes (SET) and deletes one node asks an owner to coordinate in one turn of its event loop (it
  // does not own the keys, or found them contended), as one request; answered once all are done, with
  // one result per item in the same order (see CoordinateResult)
  | { type: 'coordinateBatch'; items: CoordinateItem[] }
  | { type: 'coordinated'; results: CoordinateResult[] }
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

/** One read of a readBatch. */
export interface ReadItem {
  key: Buffer;
  /** Only the version (causal context and existence): the values come back empty. */
  versionOnly: boolean;
  /**
   * Set by readBatching.message once the item is in a request (to any
   * owner). Until then a GET of the same key may share the read (see
   * Coordinator, "GETs of one key share a read").
   */
  sent?: boolean;
}

/**
 * The replica's copy of one readBatch item: its encoding (protocol/object.ts,
 * as stored, or without values for a version-only item), null when it has
 * none, an error message for this item alone, or `again` when the answer had
 * no room left for it (ask for it alone).
 */
export type ReadResult = Buffer | null | { error: string } | { again: true };

/** One write of a writeBatch. */
export interface WriteItem {
  key: Buffer;
  /**
   * The version, encoded (protocol/object.ts): made once by the coordinator
   * for its own store and every owner, carried as is on the wire, and stored
   * as is by a replica whose copy it supersedes; decoded only for a merge.
   */
  encoded: Buffer;
  /**
   * Say whether the version accounted for the replica's copy (its context
   * covered it), for a coordinator's SET (see Coordinator.coordinate).
   */
  report: boolean;
  /**
   * Set by writeBatching.message once the item is in a request. Until then it
   * is only queued, and the coordinator may still replace its version with a
   * later SET's of the same key (see Coordinator, "riding along").
   */
  sent?: boolean;
}

/**
 * What a replica says of one item of a writeBatch: null when applied (and, if
 * reported, accounted for its copy), the replica's prior version vector when
 * the version did not account for it, or an error message for this item alone.
 */
export type WriteResult = null | { seen: VersionVector } | { error: string };

/** One write of a coordinateBatch: a SET (value) or DEL (value null) for the receiver to coordinate with levels r and w. */
export interface CoordinateItem {
  op: 'set' | 'delete';
  key: Buffer;
  value: Buffer | null;
  expiresAtMs: number;
  r: number;
  w: number;
  /**
   * Set by coordinateBatching.message once the item is in a request. Until
   * then a later SET of the same key may take its value (see Coordinator,
   * "riding along a forward").
   */
  sent?: boolean;
}

/** What the coordinating owner says of one item: its count (1 for a SET; for a DEL, whether the key existed), or an error message (the client's reply). */
export type CoordinateResult = number | { error: string };
