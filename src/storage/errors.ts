// Every error the storage engine hands to its callers, in one place. Each is a
// value at the boundary: the server maps it to a reply or a log line and keeps
// running. Messages say what happened, where, and what to do about it.

export class StorageError extends Error {
  override name = 'StorageError';
}

/** A key or value over the store's limits (constants.keyBytesMax / valueBytesMax), or a new key beyond indexKeysMax. */
export class StorageLimitError extends StorageError {
  override name = 'StorageLimitError';
  constructor(
    readonly what: 'key' | 'value' | 'keys',
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      what === 'keys'
        ? `the store holds ${limit} keys, its limit (indexKeysMax); delete keys before adding new ones`
        : `${what} of ${bytes} bytes is over the limit of ${limit} bytes`,
    );
  }
}

/** Bytes on disk failed their checksum (or did not decode) when read. */
export class StorageCorruptError extends StorageError {
  override name = 'StorageCorruptError';
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `corrupt record in ${file} at offset ${offset}: ${reason}; ` +
        'the value cannot be served from this node (restore it from a replica)',
    );
  }
}

/**
 * A write or fsync failed (ENOSPC, EIO, ...). While the store is in this state
 * it accepts no new writes; it retries the failed batch in the background and
 * accepts writes again once that succeeds. Reads keep working.
 */
export class StorageWriteError extends StorageError {
  override name = 'StorageWriteError';
  constructor(
    message: string,
    override readonly cause: unknown,
  ) {
    super(message);
  }
}

/** Another process (or another store in this process) holds the data directory. */
export class StorageLockedError extends StorageError {
  override name = 'StorageLockedError';
  constructor(
    readonly dir: string,
    holder: string,
  ) {
    super(
      `data directory ${dir} is in use by ${holder}; ` +
        'stop that node or start this one with a different data directory',
    );
  }
}

/** The store was used after close(). */
export class StorageClosedError extends StorageError {
  override name = 'StorageClosedError';
  constructor() {
    super('the store is closed');
  }
}
