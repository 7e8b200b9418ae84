// Generic key commands: existence, deletion, expiry, and walking the keyspace.
// Every key holds a string, so TYPE answers "string" or "none" and WRONGTYPE
// cannot happen.

import { BulkText, ErrorReply, type Reply } from '../../../protocol/resp.js';
import * as C from '../../constants.js';
import { type Maybe, type Update, then } from '../../kv/keyvalue.js';
import { globMatch, isKeyword, parseInteger } from '../args.js';
import type { Session } from '../session.js';
import { type CommandSpec, command } from '../command.js';
import { Err } from '../errors.js';
import { expiryFromArg } from './strings.js';

type Unit = 'EX' | 'PX' | 'EXAT' | 'PXAT';

/** EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with Redis 7's NX / XX / GT / LT conditions. */
function expire(unit: Unit, name: string) {
  return (c: Session, args: Buffer[]): Maybe<Reply> => {
    const now = Date.now();
    let nx = false;
    let xx = false;
    let gt = false;
    let lt = false;
    for (let i = 3; i < args.length; i++) {
      const a = args[i]!;
      if (isKeyword(a, 'NX')) nx = true;
      else if (isKeyword(a, 'XX')) xx = true;
      else if (isKeyword(a, 'GT')) gt = true;
      else if (isKeyword(a, 'LT')) lt = true;
      else return new ErrorReply(`ERR Unsupported option ${a.toString('latin1')}`);
    }
    if (nx && (xx || gt || lt)) return new ErrorReply('ERR NX and XX, GT or LT options at the same time are not compatible');
    if (gt && lt) return new ErrorReply('ERR GT and LT options at the same time are not compatible');
    // As Redis: the options are checked before the time.
    const at = expiryFromArg(args[2]!, unit, name, now, true);
    if (at instanceof ErrorReply) return at;
    return c.kv.update([args[1]!], ([cur]): Update<Reply> => {
      if (cur === undefined) return { result: 0 };
      const has = cur.expiresAtMs !== 0;
      // No expiry counts as an infinite one for GT / LT.
      const current = has ? cur.expiresAtMs : Infinity;
      if ((nx && has) || (xx && !has) || (gt && !(at > current)) || (lt && !(at < current))) return { result: 0 };
      if (at <= now) return { writes: [null], result: 1 };
      return { writes: [{ value: cur.value, expiresAtMs: at }], result: 1 };
    });
  };
}

/** TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for a missing key, -1 for one without expiry. */
function ttl(kind: 'ttl' | 'pttl' | 'expiretime' | 'pexpiretime') {
  return (c: Session, args: Buffer[]): Maybe<Reply> =>
    then(c.kv.get(args[1]!), (e) => {
      if (e === undefined) return -2;
      if (e.expiresAtMs === 0) return -1;
      const left = Math.max(0, e.expiresAtMs - Date.now());
      switch (kind) {
        case 'ttl':
          return Math.floor((left + 500) / 1000);
        case 'pttl':
          return left;
        case 'expiretime':
          return Math.floor((e.expiresAtMs + 500) / 1000); // rounded, as Redis does
        case 'pexpiretime':
          return e.expiresAtMs;
      }
    });
}

function persist(c: Session, args: Buffer[]): Maybe<Reply> {
  return c.kv.update([args[1]!], ([cur]): Update<Reply> => {
    if (cur === undefined || cur.expiresAtMs === 0) return { result: 0 };
    return { writes: [{ value: cur.value, expiresAtMs: 0 }], result: 1 };
  });
}

/** Walks the whole keyspace with SCAN steps, so KEYS works the same on a node and on a cluster. */
async function keys(c: Session, args: Buffer[]): Promise<Reply> {
  const pattern = args[1]!;
  const all = pattern.length === 1 && pattern[0] === 42;
  const out: Buffer[] = [];
  let cursor = '0';
  do {
    const page = await c.kv.scan(cursor, 1000);
    for (const k of page.keys) if (all || globMatch(pattern, k)) out.push(k);
    cursor = page.cursor;
  } while (cursor !== '0');
  return out;
}

/**
 * The cursor as Redis reads it (strtoul, base 10): leading zeros, a sign and
 * even an empty string are accepted, spaces, other characters and values past
 * 2^64-1 are not. Returns the cursor in canonical decimal.
 */
function parseCursor(b: Buffer): string | undefined {
  const m = /^([+-]?)(\d*)$/.exec(b.toString('latin1'));
  if (m === null) return undefined;
  if (m[2] === '') return m[1] === '' ? '0' : undefined;
  let v = BigInt(m[2]!);
  if (v > 0xffffffffffffffffn) return undefined;
  if (m[1] === '-' && v !== 0n) v = (1n << 64n) - v;
  return v.toString();
}

function scan(c: Session, args: Buffer[]): Maybe<Reply> {
  const cursor = parseCursor(args[1]!);
  if (cursor === undefined) return Err.invalidCursor;
  let pattern: Buffer | undefined;
  let count = C.scanCountDefault;
  let type: string | undefined;
  for (let i = 2; i < args.length; i++) {
    const a = args[i]!;
    if (i + 1 >= args.length) return Err.syntax;
    if (isKeyword(a, 'MATCH')) {
      pattern = args[++i]!;
      if (pattern.length === 1 && pattern[0] === 42) pattern = undefined;
    } else if (isKeyword(a, 'COUNT')) {
      const n = parseInteger(args[++i]!);
      if (n === undefined) return Err.notInteger;
      if (n < 1) return Err.syntax;
      count = Math.min(Number(n), 100_000);
    } else if (isKeyword(a, 'TYPE')) {
      type = args[++i]!.toString('latin1').toLowerCase();
    } else {
      return Err.syntax;
    }
  }
  return then(c.kv.scan(cursor, count), (page) => {
    let ks = page.keys;
    if (type !== undefined && type !== 'string') ks = [];
    if (pattern !== undefined) ks = ks.filter((k) => globMatch(pattern!, k));
    return [new BulkText(page.cursor), ks];
  });
}

const G = { group: 'generic' as const };

export const keyCommands: CommandSpec[] = [
  command('del', -2, ['write'], [1, -1, 1], { ...G, summary: 'Deletes one or more keys.', since: '1.0.0', complexity: 'O(N) where N is the number of keys that will be removed.' }, (c, a) =>
    c.kv.delete(a.slice(1)),
  ),
  command('unlink', -2, ['write', 'fast'], [1, -1, 1], { ...G, summary: 'Asynchronously deletes one or more keys.', since: '4.0.0', complexity: 'O(1) for each key removed regardless of its size.' }, (c, a) =>
    c.kv.delete(a.slice(1)),
  ),
  command('exists', -2, ['readonly', 'fast'], [1, -1, 1], { ...G, summary: 'Determines whether one or more keys exist.', since: '1.0.0', complexity: 'O(N) where N is the number of keys to check.' }, (c, a) =>
    c.kv.exists(a.slice(1)),
  ),
  command('touch', -2, ['readonly', 'fast'], [1, -1, 1], { ...G, summary: 'Returns the number of existing keys out of those specified after updating the time they were last accessed.', since: '3.2.1', complexity: 'O(N) where N is the number of keys that will be touched.' }, (c, a) =>
    c.kv.exists(a.slice(1)),
  ),
  command('type', 2, ['readonly', 'fast'], [1, 1, 1], { ...G, summary: 'Determines the type of value stored at a key.', since: '1.0.0' }, (c, a) =>
    then(c.kv.exists([a[1]!]), (n) => (n > 0 ? 'string' : 'none')),
  ),
  command('expire', -3, ['rmw', 'write', 'fast'], [1, 1, 1], { ...G, summary: 'Sets the expiration time of a key in seconds.', since: '1.0.0' }, expire('EX', 'expire')),
  command('pexpire', -3, ['rmw', 'write', 'fast'], [1, 1, 1], { ...G, summary: 'Sets the expiration time of a key in milliseconds.', since: '2.6.0' }, expire('PX', 'pexpire')),
  command('expireat', -3, ['rmw', 'write', 'fast'], [1, 1, 1], { ...G, summary: 'Sets the expiration time of a key to a Unix timestamp.', since: '1.2.0' }, expire('EXAT', 'expireat')),
  command('pexpireat', -3, ['rmw', 'write', 'fast'], [1, 1, 1], { ...G, summary: 'Sets the expiration time of a key to a Unix milliseconds timestamp.', since: '2.6.0' }, expire('PXAT', 'pexpireat')),
  command('ttl', 2, ['readonly', 'fast'], [1, 1, 1], { ...G, summary: 'Returns the expiration time in seconds of a key.', since: '1.0.0' }, ttl('ttl')),
  command('pttl', 2, ['readonly', 'fast'], [1, 1, 1], { ...G, summary: 'Returns the expiration time in milliseconds of a key.', since: '2.6.0' }, ttl('pttl')),
  command('expiretime', 2, ['readonly', 'fast'], [1, 1, 1], { ...G, summary: 'Returns the expiration time of a key as a Unix timestamp.', since: '7.0.0' }, ttl('expiretime')),
  command('pexpiretime', 2, ['readonly', 'fast'], [1, 1, 1], { ...G, summary: 'Returns the expiration time of a key as a Unix milliseconds timestamp.', since: '7.0.0' }, ttl('pexpiretime')),
  command('persist', 2, ['rmw', 'write', 'fast'], [1, 1, 1], { ...G, summary: 'Removes the expiration time of a key.', since: '2.2.0' }, persist),
  command('keys', 2, ['readonly'], [0, 0, 0], { ...G, summary: 'Returns all key names that match a pattern.', since: '1.0.0', complexity: 'O(N) with N being the number of keys in the database' }, keys),
  command('scan', -2, ['readonly'], [0, 0, 0], { ...G, summary: 'Iterates over the key names in the database.', since: '2.8.0', complexity: 'O(1) for every call. O(N) for a complete iteration.' }, scan),
  command('randomkey', 1, ['readonly'], [0, 0, 0], { ...G, summary: 'Returns a random key name from the database.', since: '1.0.0' }, (c) =>
    then(c.kv.randomKey(), (k) => k ?? null),
  ),
];
