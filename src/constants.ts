// Every limit and default of a node, named once, with its unit in its name.
// Values a user may change are defaults for config keys (src/config.ts); the
// rest are fixed limits that protect the node from its clients and its disk.

export const KiB = 1024;
export const MiB = 1024 * KiB;

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
/** Most client connections at once (Redis' maxclients default). */
export const clientsMaxDefault = 10000;

// --- Storage (src/storage) ---------------------------------------------------

/** Rotate the active segment when it reaches this size. */
export const segmentBytesMaxDefault = 256 * MiB;
/** Values larger than this are zstd-compressed if that saves space. */
export const compressBytesMinDefault = 1 * KiB;
/** zstd level for values (3 is zstd's default: fast, good ratio). */
export const compressLevelDefault = 3;
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
/** Default COUNT of a SCAN step, as Redis. */
export const scanCountDefault = 10;

// --- Storage engine internals (src/storage) ----------------------------------

/** While the store cannot write (ENOSPC, EIO), retry the failed batch this often. */
export const writeRetryIntervalMs = 250;
/** First size of an in-memory write batch; it doubles as records arrive. */
export const writeBatchBytesInitial = 64 * KiB;
/** Recovery reads segments in windows of this size (records larger than it are read whole). */
export const recoveryReadBytes = 4 * MiB;
/** Bytes charged to the hot cache per entry on top of key and value (object and list overhead). */
export const cacheEntryOverheadBytes = 64;
/** Name of the lock file that keeps a second process out of a data directory. */
export const lockFileName = 'LOCK';
