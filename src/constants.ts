// Every limit and default of a node, named once, with its unit in its name.
// Values a user may change are defaults for config keys (src/config.ts); the
// rest are fixed limits that protect the node from its clients and its disk.

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

// --- Client protocol (protocol/resp.ts enforces these) ---------------------

/** Largest bulk string a client may send (Redis' proto-max-bulk-len). */
export const bulkBytesMaxDefault = 512 * MiB;
/** Most arguments in one multibulk request (Redis: 1024*1024*1024 is allowed; we bound it). */
export const multibulkArgsMax = 1024 * 1024;
/** Longest inline command line without a newline (Redis: PROTO_INLINE_MAX_SIZE). */
export const inlineBytesMax = 64 * KiB;
/** Most bytes of one unparsed request a client may have buffered (Redis: client-query-buffer-limit 1gb). */
export const queryBufferBytesMaxDefault = 1024 * MiB;
/** An unauthenticated client on a password-protected node: at most this many arguments... */
export const unauthArgsMax = 10;
/** ...and bulks of at most this many bytes (Redis does the same). */
export const unauthBulkBytesMax = 16 * KiB;
/** A client whose unsent replies exceed this stops being read until its socket drains. */
export const replyBufferBytesHigh = 4 * MiB;
/**
 * Most commands of one connection started and not yet answered while one of
 * them is in flight (a pipeline whose commands go async overlaps them, see
 * src/server/client.ts): past it no more are started and the socket is not
 * read until the one in front finishes.
 */
export const pipelinedMax = 256;
/** Most client connections at once (Redis' maxclients default). */
export const clientsMaxDefault = 10000;

// --- Storage (src/storage) ---------------------------------------------------

/** Rotate the active segment when it reaches this size. */
export const segmentBytesMaxDefault = 256 * MiB;
/** Values larger than this are zstd-compressed if that saves space. */
export const compressBytesMinDefault = 1 * KiB;
/** zstd level for values (3 is zstd's default: fast, good ratio). */
export const compressLevelDefault = 3;
/** Sealed segments with at least this share of dead bytes get compacted. */
export const compactionMinDeadRatioDefault = 0.3;
/** Compaction's I/O budget (read plus written), MB/s; 0 = unthrottled. */
export const compactionRateMBDefault = 64;
/** Tombstones stay at least this long (Cassandra's gc_grace_seconds default is 10 days). */
export const tombstoneGraceSecondsDefault = 10 * 24 * 3600;
/** Budget of the hot value cache. */
export const cacheBytesDefault = 256 * MiB;
/** Largest key the store accepts (Redis allows 512 MB; a key is held in RAM in the index). */
export const keyBytesMax = 64 * KiB;
/** Largest value the store accepts, as Redis' string limit. */
export const valueBytesMax = 512 * MiB;
/** Period of the fsync for `--fsync everysec`. */
export const fsyncEverysecIntervalMs = 1000;
/** Period of the background sweep of expired keys, and how many keys it may look at per run. */
export const expireSweepIntervalMs = 100;
export const expireSweepKeysPerRun = 200;

// --- Server ------------------------------------------------------------------

export const portDefault = 6379;
export const hostDefault = '127.0.0.1';
export const adminPortDefault = 8080;
export const dataDirDefault = './data';
/** How long SIGTERM may take to close, flush and fsync before the process exits anyway. */
export const shutdownGraceMs = 10000;
/** How long clients get to read their last replies at shutdown before their sockets are destroyed. */
export const clientsCloseGraceMs = 2000;
/** How long a coordinator waits for a replica's answer before counting it as failed. */
export const peerRequestTimeoutMsDefault = 1000;
/** Default COUNT of a SCAN step, as Redis. */
export const scanCountDefault = 10;

// --- Storage engine internals (src/storage) ----------------------------------

/** While the store cannot write (ENOSPC, EIO), retry the failed batch this often. */
export const writeRetryIntervalMs = 250;
/**
 * Write batches are carved from slabs of this size (src/storage/writer.ts): a
 * buffer per batch (64 KiB for a turn's 2 KiB) made V8 run a full GC every few
 * thousand writes for the external memory alone. A larger record gets a
 * buffer of its own size.
 */
export const writeSlabBytes = 1 * MiB;
/** Recovery reads segments in windows of this size (records larger than it are read whole). */
export const recoveryReadBytes = 4 * MiB;
/**
 * Bytes charged to the hot cache per entry on top of key and value (the Buffer
 * object, its pool slice and lru-cache's bookkeeping). Measured: a 16-byte key
 * with a 100-byte value costs about 345 bytes of RSS, so 224 on top of the 120
 * stored; the old figure of 64 let the cache use about twice its budget.
 */
export const cacheEntryOverheadBytes = 224;
/** The compact index (src/storage/index.ts). Entry ids are 28 bits (the table
 *  keeps 4 hash bits beside each id), so this is the most keys a node holds. */
export const indexKeysMax = 2 ** 28 - 1;
/** Index entries are allocated in chunks of this many (20 bytes each): growth never copies entries. */
export const indexChunkEntries = 2 ** 16;
/** The hash table (4 bytes a slot) doubles when keys exceed this share of its slots. */
export const indexLoadFactorMax = 0.75;
/** Slots of an empty index's table (a power of two). */
export const indexSlotsMin = 1024;
/** Slots of an empty expiry map (entry id -> expiresAtMs, 12 bytes a slot; same load factor). */
export const expirySlotsMin = 64;
/** Largest segment: record offsets are kept as u32 in the index and in hint files. */
export const segmentBytesLimit = 2 ** 32 - 1;
/** SCAN/KEYS read a record whole (and verify both checksums) up to this size, else its header and key. */
export const keyReadWholeBytesMax = 4 * KiB;
/** The data directory's hash seed for the index (src/storage/hash.ts). */
export const hashSeedFileName = 'hash-seed';
/** Compaction and hint jobs read and write in chunks of this size, yielding to the event loop between them. */
export const compactionChunkBytes = 1 * MiB;
/** A compaction's index switch yields to the event loop after this many keys. */
export const compactionRelocateBatch = 10_000;
/** How often the background compactor looks for work. */
export const compactionCheckIntervalMs = 1000;
/** Most input bytes one compaction takes (it keeps ~40 B per copied key in memory until its commit). */
export const compactionInputBytesMax = 512 * MiB;
/**
 * A clean shutdown writes the hint files still queued for up to this many
 * segment bytes (read once at disk speed); beyond it, the next start scans.
 */
export const shutdownHintBytesMax = 1 * GiB;
/** Name of the lock file that keeps a second process out of a data directory. */
export const lockFileName = 'LOCK';

// --- Cluster (src/cluster) ---------------------------------------------------

/** Redis Cluster's key space: a key's slot is CRC16(key or {tag}) mod this. */
export const ringSlots = 16384;
/** Replicas per key (N) when config does not say. */
export const replicasDefault = 3;
/**
 * Ring tokens per unit of member weight. 512 rather than 256: with 256, about
 * 1 in 40 random 5-node clusters had a node over 1.15x the average load; with
 * 512 none of 300 did (docs/cluster.md). Costs ~2,000 CLUSTER SLOTS ranges.
 */
export const vnodesPerWeightDefault = 512;
/** Largest weight a member may claim: bounds the tokens one gossiped entry can make us build. */
export const memberWeightMax = 64;
/**
 * Most siblings a write leaves behind. Beyond it, `update` keeps the newest by
 * HLC (Riak warns at 25 and caps at 100 siblings).
 */
export const siblingsMax = 64;
/**
 * The replica keeps the decoded form of this many recently stored or decoded
 * objects (with their stored bytes, compared on every read), so a hot key is
 * not decoded on every read and write. Objects encoded larger than decodedObjectBytesMax are
 * not kept: at most 1024 x 8 KiB = 8 MiB of copies. It must stay below the
 * peer decoder's viewBytesMin (16 KiB), so the bytes kept are never a view
 * pinning a whole peer frame (src/kv/replica.ts asserts it).
 */
export const decodedObjectsMax = 1024;
export const decodedObjectBytesMax = 8 * 1024;
/** Most siblings / version-vector entries a decoded object may carry (merges may exceed siblingsMax). */
export const objectSiblingsDecodeMax = 4096;
export const objectVVEntriesMax = 4096;
/** Low bits of a hybrid logical clock timestamp that hold the logical counter (ts = ms * 2^bits + counter). */
export const hlcLogicalBits = 10;
/** A remote HLC further ahead of our wall clock than this is not adopted (a peer with a broken clock). */
export const hlcMaxDriftMs = 60_000;
/** Gossip round period; also the heartbeat interval the failure detector expects. */
export const gossipIntervalMsDefault = 200;
/** Live peers contacted per gossip round (push-pull). */
export const gossipFanoutDefault = 2;
/** A gossip exchange not answered within this is abandoned (the detector, not the timeout, decides liveness). */
export const gossipRequestTimeoutMs = 1000;
/** Phi above which a member is considered down (Cassandra's and Akka's default). */
export const phiThresholdDefault = 8;
/** Heartbeat intervals the phi detector remembers per member. */
export const phiSampleWindowSize = 1000;
/** Floor of the interval standard deviation, so very regular heartbeats do not make phi hair-triggered. */
export const phiMinStdDeviationMs = 100;
/** Silence tolerated on top of the mean interval before phi starts to climb (GC pauses, gossip hops). */
export const phiAcceptablePauseMs = 1500;
/** Intervals longer than this (a partition, a restart) are not recorded, so one outage does not blunt detection afterwards. */
export const phiMaxSampleIntervalMs = 5000;
/** Most members (including forgotten ones) a node tracks: bounds what gossip from a bad peer can make it hold. */
export const clusterMembersMax = 1000;

// --- Peer transport (protocol/peer.ts, src/peer) ---------------------------

/** Largest peer frame, header included: a 512 MB value plus its key and object header fit. */
export const peerFrameBytesMax = 600 * MiB;
/** Largest frame accepted before a connection has finished its handshake (handshake frames are ~100 bytes). */
export const peerHandshakeFrameBytesMax = 4 * KiB;
/**
 * Requests to one peer awaiting an answer (those waiting for the connection
 * included); beyond it request() fails at once with OVERLOADED. The receiving
 * side answers OVERLOADED beyond the same number of requests in progress.
 */
export const peerInflightMax = 4096;
/** A TCP connect to a peer that has not completed within this fails. */
export const peerConnectTimeoutMs = 3000;
/** The whole handshake (hello to welcome) must finish within this, on both sides. */
export const peerHandshakeTimeoutMs = 5000;
/** Reconnect backoff with full jitter: the n-th retry waits random(0, min(cap, base * 2^n)). */
export const peerReconnectBaseMs = 50;
export const peerReconnectCapMs = 2000;
/** An inbound peer connection whose unsent answers exceed this stops being read until they drain. */
export const peerWriteBufferBytesHigh = 16 * MiB;
/** Frames are coalesced until the end of the event-loop turn, or sent at once when this many bytes are queued. */
export const peerFlushBytes = 1 * MiB;
/**
 * Most bytes of objects in one readBatch answer: the keys of a batch are
 * small but their values need not be; objects past it are asked for alone
 * (far below peerFrameBytesMax, so one large answer never holds the others).
 */
export const peerReadAnswerBytesMax = 16 * MiB;
/** Inbound connections still in their handshake at once; more are closed on arrival. */
export const peerHandshakesPendingMax = 128;
/** TCP keepalive on peer sockets, so a silently vanished peer is noticed. */
export const peerKeepAliveMs = 10_000;
