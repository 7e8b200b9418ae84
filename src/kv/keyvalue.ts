// The seam between the command handlers and where data lives. Handlers speak
// only to a KeyValue; a single node implements it over its local segment store
// (N=R=W=1, src/kv/local.ts), and the cluster's quorum coordinator implements
// it over the ring of replicas. Methods return a value synchronously when they
// can (a hot read of a local key) and a Promise otherwise, so the hot path of
// a single node costs no Promise; `then()` below composes either.

export interface Entry {
  value: Buffer;
  /** Absolute expiry in unix ms; 0 = never. */
  expiresAtMs: number;
}

export type Maybe<T> = T | Promise<T>;

/** What a read-modify-write decides for each of its keys. */
export interface Update<T> {
  /** Per key, in order: an Entry to store, null to delete, undefined to leave as is. */
  writes?: Array<Entry | null | undefined>;
  /** The command's reply value. */
  result: T;
}

export interface ScanPage {
  cursor: string;
  keys: Buffer[];
}

export interface KeyValue {
  get(key: Buffer): Maybe<Entry | undefined>;
  /** Stores key → value; resolved once the write is acknowledged (see whenDurable). */
  set(key: Buffer, value: Buffer, expiresAtMs: number): Maybe<void>;
  /** Deletes keys; the number that existed. */
  delete(keys: Buffer[]): Maybe<number>;
  /** Counts keys that exist (a key named twice counts twice, as Redis). */
  exists(keys: Buffer[]): Maybe<number>;
  /**
   * Runs `fn` on the current entries of `keys` and applies what it returns, with
   * no other update of those keys in between (INCR, APPEND, SET NX, MSETNX...).
   */
  update<T>(keys: Buffer[], fn: (current: Array<Entry | undefined>) => Update<T>): Maybe<T>;
  /** One step of a cursor walk over all keys; cursor "0" starts and ends. */
  scan(cursor: string, count: number): Maybe<ScanPage>;
  size(): Maybe<number>;
  randomKey(): Maybe<Buffer | undefined>;
  flushAll(): Promise<void>;
  /**
   * Calls back once every write issued so far is durable under the fsync
   * policy; the server sends write replies only after it (group commit).
   */
  whenDurable(cb: (err: Error | null) => void): void;
  /**
   * True when a write resolves only once it is durable (a cluster's W
   * acknowledgements), so its reply needs no whenDurable wait of its own.
   */
  readonly writesResolveDurable?: boolean;
}

export function isPromise<T>(x: Maybe<T>): x is Promise<T> {
  return x instanceof Promise;
}

/** Applies f to a value that may or may not be a Promise, staying synchronous when it is not. */
export function then<T, U>(x: Maybe<T>, f: (v: T) => Maybe<U>): Maybe<U> {
  return x instanceof Promise ? x.then(f) : f(x);
}
