// String commands: GET/SET and friends, counters, ranges. Blind writes (SET,
// MSET) go straight to the KeyValue; anything that reads before it writes
// (INCR, APPEND, SET NX/XX/GET/KEEPTTL, GETDEL...) is one kv.update() so no
// other write of the key can slip in between its read and its write.

import { BulkText, ErrorReply, OK, type Reply } from '../../../protocol/resp.js';
import { type Entry, type Maybe, type Update, then } from '../../kv/keyvalue.js';
import { keyBytesMax } from '../../constants.js';
import { isKeyword, parseInteger } from '../args.js';
import { type LongDouble, addLongDouble, formatLongDoubleHuman, isInfinite, parseLongDouble } from '../longdouble.js';
import type { Session } from '../session.js';
import { type CommandSpec, command } from '../command.js';
import { Err, invalidExpire, wrongArity } from '../errors.js';

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** Counts a read for INFO's keyspace_hits / keyspace_misses. */
export function countRead(c: Session, e: Entry | undefined): Entry | undefined {
  if (e === undefined) c.server.stats.keyspaceMisses++;
  else c.server.stats.keyspaceHits++;
  return e;
}

const valueOf = (e: Entry | undefined): Buffer | null => (e === undefined ? null : e.value);

type ExpiryUnit = 'EX' | 'PX' | 'EXAT' | 'PXAT';

/** Latest expiry a record can hold (53-bit ms, year 287396): later ones, valid for Redis, are clamped to it. */
const expiresAtMsMax = Number.MAX_SAFE_INTEGER;

/**
 * Turns an expiry argument into absolute unix ms, or an error reply, with
 * Redis' int64 rules: a non-integer is "not an integer"; a time that overflows
 * int64 once converted to ms (or added to now) is "invalid expire time"; so is
 * a non-positive one for SET/GETEX/SETEX (EXPIRE allows them: allowNonPositive).
 * `unit` is how the argument counts: seconds or ms from now (EX/PX), or absolute (EXAT/PXAT).
 */
export function expiryFromArg(arg: Buffer, unit: ExpiryUnit, cmd: string, nowMs: number, allowNonPositive = false): number | ErrorReply {
  const v = parseInteger(arg);
  if (v === undefined) return Err.notInteger;
  const seconds = unit === 'EX' || unit === 'EXAT';
  const relative = unit === 'EX' || unit === 'PX';
  if (typeof v === 'number' && v > -1e12 && v < 1e12) {
    // Common case: no overflow is possible.
    if (v <= 0 && !allowNonPositive) return invalidExpire(cmd);
    const ms = seconds ? v * 1000 : v;
    return relative ? nowMs + ms : ms;
  }
  let when = BigInt(v);
  if (when <= 0n && !allowNonPositive) return invalidExpire(cmd);
  if (seconds) {
    if (when > INT64_MAX / 1000n || when < INT64_MIN / 1000n) return invalidExpire(cmd);
    when *= 1000n;
  }
  if (relative) {
    if (when > INT64_MAX - BigInt(nowMs)) return invalidExpire(cmd);
    when += BigInt(nowMs);
  }
  if (when > BigInt(expiresAtMsMax)) return expiresAtMsMax;
  if (when < -BigInt(expiresAtMsMax)) return -expiresAtMsMax;
  return Number(when);
}

const expiryUnits: ExpiryUnit[] = ['EX', 'PX', 'EXAT', 'PXAT'];
const expiryUnitOf = (a: Buffer): ExpiryUnit | undefined => expiryUnits.find((u) => isKeyword(a, u));

/** Applies an absolute expiry: a time already past means the key is gone (Redis deletes it). */
function written(value: Buffer, expiresAtMs: number, nowMs: number): Entry | null {
  if (expiresAtMs !== 0 && expiresAtMs <= nowMs) return null;
  return { value, expiresAtMs };
}

interface SetOptions {
  condition: 'NX' | 'XX' | undefined;
  get: boolean;
  keepTtl: boolean;
  expiresAtMs: number;
}

/**
 * Redis' parseExtendedStringArgumentsOrReply: every option is checked first
 * (an option may repeat, and a repeated expiry of the same unit replaces the
 * earlier one; NX with XX, KEEPTTL or PERSIST with an expiry, or two expiry
 * units are a syntax error); only then is the last expiry value validated.
 */
function parseExpiryOptions(
  args: Buffer[],
  from: number,
  command: 'set' | 'getex',
): { condition: 'NX' | 'XX' | undefined; get: boolean; keepTtl: boolean; persist: boolean; unit?: ExpiryUnit; expiry?: Buffer } | ErrorReply {
  const o = { condition: undefined as 'NX' | 'XX' | undefined, get: false, keepTtl: false, persist: false, unit: undefined as ExpiryUnit | undefined, expiry: undefined as Buffer | undefined };
  const isSet = command === 'set';
  for (let i = from; i < args.length; i++) {
    const a = args[i]!;
    const unit = expiryUnitOf(a);
    if (isSet && isKeyword(a, 'NX') && o.condition !== 'XX') o.condition = 'NX';
    else if (isSet && isKeyword(a, 'XX') && o.condition !== 'NX') o.condition = 'XX';
    else if (isSet && isKeyword(a, 'GET')) o.get = true;
    else if (isSet && isKeyword(a, 'KEEPTTL') && o.unit === undefined) o.keepTtl = true;
    else if (!isSet && isKeyword(a, 'PERSIST') && o.unit === undefined) o.persist = true;
    else if (unit !== undefined && !o.keepTtl && !o.persist && (o.unit === undefined || o.unit === unit) && i + 1 < args.length) {
      o.unit = unit;
      o.expiry = args[++i]!;
    } else return Err.syntax;
  }
  return o;
}

function parseSetOptions(args: Buffer[], from: number, nowMs: number): SetOptions | ErrorReply {
  const p = parseExpiryOptions(args, from, 'set');
  if (p instanceof ErrorReply) return p;
  const o: SetOptions = { condition: p.condition, get: p.get, keepTtl: p.keepTtl, expiresAtMs: 0 };
  if (p.expiry !== undefined) {
    const at = expiryFromArg(p.expiry, p.unit!, 'set', nowMs);
    if (at instanceof ErrorReply) return at;
    o.expiresAtMs = at;
  }
  return o;
}

function set(c: Session, args: Buffer[]): Maybe<Reply> {
  const kv = c.kv;
  const key = args[1]!;
  const value = args[2]!;
  if (args.length === 3) return then(kv.set(key, value, 0), () => OK);
  const now = Date.now();
  const o = parseSetOptions(args, 3, now);
  if (o instanceof ErrorReply) return o;
  if (o.condition === undefined && !o.get && !o.keepTtl) {
    const e = written(value, o.expiresAtMs, now);
    return e === null ? then(kv.delete([key]), () => OK) : then(kv.set(key, value, e.expiresAtMs), () => OK);
  }
  return kv.update([key], ([cur]): Update<Reply> => {
    const ok = o.condition === undefined || (o.condition === 'NX' ? cur === undefined : cur !== undefined);
    const result = o.get ? valueOf(cur) : ok ? OK : null;
    if (!ok) return { result };
    const expiresAtMs = o.keepTtl && cur !== undefined ? cur.expiresAtMs : o.expiresAtMs;
    return { writes: [written(value, expiresAtMs, now)], result };
  });
}

function setWithExpiry(unit: 'EX' | 'PX', name: string) {
  return (c: Session, args: Buffer[]): Maybe<Reply> => {
    const at = expiryFromArg(args[2]!, unit, name, Date.now());
    if (typeof at !== 'number') return at;
    return then(c.kv.set(args[1]!, args[3]!, at), () => OK);
  };
}

/** INCR, DECR, INCRBY, DECRBY: integer arithmetic on a decimal string, int64 bounded. */
function incrBy(c: Session, key: Buffer, delta: number | bigint): Maybe<Reply> {
  return c.kv.update([key], ([cur]): Update<Reply> => {
    let n: number | bigint = 0;
    if (cur !== undefined) {
      const parsed = parseInteger(cur.value);
      if (parsed === undefined) return { result: Err.notInteger };
      n = parsed;
    }
    let next: number | bigint;
    if (typeof n === 'number' && typeof delta === 'number' && Number.isSafeInteger(n + delta)) {
      next = n + delta;
    } else {
      const big = BigInt(n) + BigInt(delta);
      if (big > INT64_MAX || big < INT64_MIN) return { result: Err.overflow };
      next = big;
    }
    const expiresAtMs = cur === undefined ? 0 : cur.expiresAtMs;
    return { writes: [{ value: Buffer.from(String(next)), expiresAtMs }], result: next };
  });
}

function deltaArg(arg: Buffer, negate: boolean): number | bigint | ErrorReply {
  const d = parseInteger(arg);
  if (d === undefined) return Err.notInteger;
  if (!negate) return d;
  if (typeof d === 'bigint') {
    if (d === INT64_MIN) return decrementOverflow; // Redis' DECRBY text for -LLONG_MIN
    return -d;
  }
  return -d;
}

const decrementOverflow = new ErrorReply('ERR decrement would overflow');

/** INCRBYFLOAT in x87 long double arithmetic, printed as Redis prints it (see longdouble.ts). */
function incrByFloat(c: Session, args: Buffer[]): Maybe<Reply> {
  const delta = parseLongDouble(args[2]!);
  if (delta === undefined) return Err.notFloat;
  return c.kv.update([args[1]!], ([cur]): Update<Reply> => {
    let value: LongDouble = { neg: false, m: 0n, e: 0 };
    if (cur !== undefined) {
      const parsed = parseLongDouble(cur.value);
      if (parsed === undefined) return { result: Err.notFloat };
      value = parsed;
    }
    const n = addLongDouble(value, delta);
    if (isInfinite(n)) return { result: Err.nanOrInfinity };
    const text = formatLongDoubleHuman(n);
    const expiresAtMs = cur === undefined ? 0 : cur.expiresAtMs;
    return { writes: [{ value: Buffer.from(text), expiresAtMs }], result: new BulkText(text) };
  });
}

function append(c: Session, args: Buffer[]): Maybe<Reply> {
  const add = args[2]!;
  const max = c.server.config.bulkBytesMax;
  return c.kv.update([args[1]!], ([cur]): Update<Reply> => {
    const before = cur === undefined ? 0 : cur.value.length;
    if (before + add.length > max) return { result: Err.stringTooLong };
    const value = cur === undefined ? Buffer.from(add) : Buffer.concat([cur.value, add]);
    return { writes: [{ value, expiresAtMs: cur?.expiresAtMs ?? 0 }], result: value.length };
  });
}

/** Redis' range clamping for GETRANGE: negative indexes count from the end. */
export function clampRange(start: number, end: number, len: number): [number, number] | undefined {
  if (start < 0 && end < 0 && start > end) return undefined;
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (start > end || len === 0) return undefined;
  return [start, end];
}

function getRange(c: Session, args: Buffer[]): Maybe<Reply> {
  // Any int64 is a valid index (far beyond the string is clamped), so precision past 2^53 does not matter.
  const s = parseInteger(args[2]!);
  const x = parseInteger(args[3]!);
  if (s === undefined || x === undefined) return Err.notInteger;
  const start = Number(s);
  const end = Number(x);
  return then(c.kv.get(args[1]!), (e) => {
    countRead(c, e);
    if (e === undefined) return Buffer.alloc(0);
    const r = clampRange(start, end, e.value.length);
    return r === undefined ? Buffer.alloc(0) : e.value.subarray(r[0], r[1] + 1);
  });
}

function setRange(c: Session, args: Buffer[]): Maybe<Reply> {
  const off = parseInteger(args[2]!);
  if (off === undefined) return Err.notInteger;
  const offset = Number(off);
  if (offset < 0) return Err.offsetOutOfRange;
  const patch = args[3]!;
  // As Redis: an empty patch changes nothing and answers the current length, whatever the offset.
  if (patch.length === 0) return then(c.kv.get(args[1]!), (e) => (e === undefined ? 0 : e.value.length));
  if (offset + patch.length > c.server.config.bulkBytesMax) return Err.stringTooLong;
  return c.kv.update([args[1]!], ([cur]): Update<Reply> => {
    const old = cur === undefined ? Buffer.alloc(0) : cur.value;
    const value = Buffer.alloc(Math.max(old.length, offset + patch.length));
    old.copy(value, 0);
    patch.copy(value, offset);
    return { writes: [{ value, expiresAtMs: cur?.expiresAtMs ?? 0 }], result: value.length };
  });
}

function getEx(c: Session, args: Buffer[]): Maybe<Reply> {
  const now = Date.now();
  const o = parseExpiryOptions(args, 2, 'getex');
  if (o instanceof ErrorReply) return o;
  if (o.expiry === undefined && !o.persist) return then(c.kv.get(args[1]!), (e) => valueOf(countRead(c, e)));
  // As Redis: a missing key answers null before the expiry value is validated.
  const expiry = o.expiry === undefined ? 0 : expiryFromArg(o.expiry, o.unit!, 'getex', now);
  return c.kv.update([args[1]!], ([cur]): Update<Reply> => {
    countRead(c, cur);
    if (cur === undefined) return { result: null };
    if (expiry instanceof ErrorReply) return { result: expiry };
    return { writes: [written(cur.value, expiry, now)], result: cur.value };
  });
}

function mget(c: Session, args: Buffer[]): Maybe<Reply> {
  const kv = c.kv;
  const got: Array<Maybe<Entry | undefined>> = [];
  let async = false;
  for (let i = 1; i < args.length; i++) {
    const e = kv.get(args[i]!);
    if (e instanceof Promise) async = true;
    got.push(e);
  }
  const finish = (entries: Array<Entry | undefined>): Reply => entries.map((e) => valueOf(countRead(c, e)));
  return async ? Promise.all(got).then(finish) : finish(got as Array<Entry | undefined>);
}

/**
 * The store refuses keys over keyBytesMax one put at a time; a multi-key write
 * checks them all first so it stores all of its keys or none (MSET is atomic).
 */
function keyTooLong(args: Buffer[]): ErrorReply | undefined {
  for (let i = 1; i < args.length; i += 2) {
    const n = args[i]!.length;
    if (n > keyBytesMax) return new ErrorReply(`ERR key of ${n} bytes is over the limit of ${keyBytesMax} bytes`);
  }
  return undefined;
}

function mset(c: Session, args: Buffer[]): Maybe<Reply> {
  if ((args.length - 1) % 2 !== 0) return wrongArity('mset');
  const tooLong = keyTooLong(args);
  if (tooLong) return tooLong;
  const kv = c.kv;
  const pending: Promise<void>[] = [];
  for (let i = 1; i < args.length; i += 2) {
    const r = kv.set(args[i]!, args[i + 1]!, 0);
    if (r instanceof Promise) pending.push(r);
  }
  return pending.length === 0 ? OK : Promise.all(pending).then(() => OK);
}

function msetnx(c: Session, args: Buffer[]): Maybe<Reply> {
  if ((args.length - 1) % 2 !== 0) return wrongArity('msetnx');
  const tooLong = keyTooLong(args);
  if (tooLong) return tooLong;
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  for (let i = 1; i < args.length; i += 2) {
    keys.push(args[i]!);
    values.push(args[i + 1]!);
  }
  return c.kv.update(keys, (cur): Update<Reply> => {
    if (cur.some((e) => e !== undefined)) return { result: 0 };
    return { writes: values.map((value) => ({ value, expiresAtMs: 0 })), result: 1 };
  });
}

const S = { group: 'string' as const };

/** SET with NX, XX, GET or KEEPTTL reads before it writes; any option sends it to the key's first owner. */
const setSpec = (spec: CommandSpec): CommandSpec => ({ ...spec, routed: (args) => args.length > 3 });

export const stringCommands: CommandSpec[] = [
  command('get', 2, ['readonly', 'fast'], [1, 1, 1], { ...S, summary: 'Returns the string value of a key.', since: '1.0.0' }, (c, a) =>
    then(c.kv.get(a[1]!), (e) => valueOf(countRead(c, e))),
  ),
  setSpec(command('set', -3, ['write', 'denyoom'], [1, 1, 1], { ...S, summary: 'Sets the string value of a key, ignoring its type. The key is created if it doesn\'t exist.', since: '1.0.0' }, set)),
  command('setnx', 3, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Set the string value of a key only when the key doesn\'t exist.', since: '1.0.0' }, (c, a) =>
    c.kv.update([a[1]!], ([cur]): Update<Reply> =>
      cur === undefined ? { writes: [{ value: a[2]!, expiresAtMs: 0 }], result: 1 } : { result: 0 },
    ),
  ),
  command('setex', 4, ['write', 'denyoom'], [1, 1, 1], { ...S, summary: 'Sets the string value and expiration time of a key. Creates the key if it doesn\'t exist.', since: '2.0.0' }, setWithExpiry('EX', 'setex')),
  command('psetex', 4, ['write', 'denyoom'], [1, 1, 1], { ...S, summary: 'Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn\'t exist.', since: '2.6.0' }, setWithExpiry('PX', 'psetex')),
  command('getset', 3, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Returns the previous string value of a key after setting it to a new value.', since: '1.0.0' }, (c, a) =>
    c.kv.update([a[1]!], ([cur]): Update<Reply> => ({ writes: [{ value: a[2]!, expiresAtMs: 0 }], result: valueOf(cur) })),
  ),
  command('getdel', 2, ['rmw', 'write', 'fast'], [1, 1, 1], { ...S, summary: 'Returns the string value of a key after deleting the key.', since: '6.2.0' }, (c, a) =>
    c.kv.update([a[1]!], ([cur]): Update<Reply> => (cur === undefined ? { result: null } : { writes: [null], result: cur.value })),
  ),
  command('getex', -2, ['rmw', 'write', 'fast'], [1, 1, 1], { ...S, summary: 'Returns the string value of a key after setting its expiration time.', since: '6.2.0' }, getEx),
  command('mget', -2, ['readonly', 'fast'], [1, -1, 1], { ...S, summary: 'Atomically returns the string values of one or more keys.', since: '1.0.0', complexity: 'O(N) where N is the number of keys to retrieve.' }, mget),
  command('mset', -3, ['write', 'denyoom'], [1, -1, 2], { ...S, summary: 'Atomically creates or modifies the string values of one or more keys.', since: '1.0.1', complexity: 'O(N) where N is the number of keys to set.' }, mset),
  command('msetnx', -3, ['rmw', 'write', 'denyoom'], [1, -1, 2], { ...S, summary: 'Atomically modifies the string values of one or more keys only when all keys don\'t exist.', since: '1.0.1', complexity: 'O(N) where N is the number of keys to set.' }, msetnx),
  command('strlen', 2, ['readonly', 'fast'], [1, 1, 1], { ...S, summary: 'Returns the length of a string value.', since: '2.2.0' }, (c, a) =>
    then(c.kv.get(a[1]!), (e) => (e === undefined ? 0 : e.value.length)),
  ),
  command('append', 3, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Appends a string to the value of a key. Creates the key if it doesn\'t exist.', since: '2.0.0' }, append),
  command('getrange', 4, ['readonly'], [1, 1, 1], { ...S, summary: 'Returns a substring of the string stored at a key.', since: '2.4.0', complexity: 'O(N) where N is the length of the returned string.' }, getRange),
  command('setrange', 4, ['rmw', 'write', 'denyoom'], [1, 1, 1], { ...S, summary: 'Overwrites a part of a string value with another by an offset. Creates the key if it doesn\'t exist.', since: '2.2.0' }, setRange),
  command('incr', 2, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Increments the integer value of a key by one. Uses 0 as initial value if the key doesn\'t exist.', since: '1.0.0' }, (c, a) => incrBy(c, a[1]!, 1)),
  command('decr', 2, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn\'t exist.', since: '1.0.0' }, (c, a) => incrBy(c, a[1]!, -1)),
  command('incrby', 3, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn\'t exist.', since: '1.0.0' }, (c, a) => {
    const d = deltaArg(a[2]!, false);
    return d instanceof ErrorReply ? d : incrBy(c, a[1]!, d);
  }),
  command('decrby', 3, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn\'t exist.', since: '1.0.0' }, (c, a) => {
    const d = deltaArg(a[2]!, true);
    return d instanceof ErrorReply ? d : incrBy(c, a[1]!, d);
  }),
  command('incrbyfloat', 3, ['rmw', 'write', 'denyoom', 'fast'], [1, 1, 1], { ...S, summary: 'Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn\'t exist.', since: '2.6.0' }, incrByFloat),
];
