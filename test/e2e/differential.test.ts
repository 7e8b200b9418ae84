// Differential test: a real redis-server and a Distri-KV node side by side,
// the same command sequences sent to both over raw TCP, and the raw reply
// bytes compared exactly: first on RESP2, then again after HELLO 3 (RESP3).
//
// Where our behaviour legitimately differs from Redis (version strings,
// client ids, timings, hash-table order, INFO/COMMAND contents...) the
// replies are compared through a normaliser instead, and each such place
// says why. Everything else must match to the byte.
//
// redis-server runs with `--databases 1` because a Distri-KV node has exactly
// one database: that makes SELECT and CONFIG GET databases comparable.
//
// Differences kept on purpose (each compared through a normaliser where it shows):
// - HELLO's version (we present 7.2.4) and every connection id;
// - CONFIG GET appendonly: 'yes' (our store is an append-only log), Redis 'no' here;
// - INFO, CLIENT LIST/INFO, COMMAND INFO tips and key specs, COMMAND DOCS arguments: contents;
// - SCAN cursors and RANDOMKEY / KEYS order (our index, not Redis' hash table);
// - CLUSTER KEYSLOT answers on a single node (Redis refuses CLUSTER without cluster mode);
// - CLIENT SETINFO, CLIENT NO-TOUCH (Redis 7.2) and our CLUSTER OWNERS/RING/MEMBERS,
//   CONSISTENCY: not in Redis 7.0, so not compared;
// - expiry times past 2^53 ms (year 287396) are clamped to it: not compared.

import t, { type Test } from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { seededRandomFn } from '../../src/cluster/ports.js';
import { type NodeProcess, freePort, run, startNode, tempDir } from './harness.js';
import { type Arg, Conn } from './resp-client.js';

// --- Decoding replies, for the comparisons that are not byte-exact --------------

type Value =
  | { t: '+' | '-' | ':' | ',' | '#' | '(' | '_'; v: string }
  | { t: '$' | '=' | '!'; v: Buffer | null }
  | { t: '*' | '~' | '%' | '>'; v: Value[] | null };

function decode(buf: Buffer): Value {
  let pos = 0;
  const one = (): Value => {
    const type = String.fromCharCode(buf[pos]!);
    const cr = buf.indexOf('\r\n', pos);
    const line = buf.toString('latin1', pos + 1, cr);
    pos = cr + 2;
    switch (type) {
      case '$': case '=': case '!': {
        const n = Number(line);
        if (n < 0) return { t: type, v: null };
        const v = buf.subarray(pos, pos + n);
        pos += n + 2;
        return { t: type, v };
      }
      case '*': case '~': case '%': case '>': {
        const n = Number(line);
        if (n < 0) return { t: type, v: null };
        const items: Value[] = [];
        for (let i = 0; i < (type === '%' ? 2 * n : n); i++) items.push(one());
        return { t: type, v: items };
      }
      default:
        return { t: type as '+', v: line };
    }
  };
  return one();
}

const str = (v: Value): string => (Buffer.isBuffer(v.v) ? v.v.toString('latin1') : String(v.v));

function items(v: Value): Value[] {
  if (!Array.isArray(v.v)) throw new Error(`not an aggregate: ${JSON.stringify(v)}`);
  return v.v;
}

/** A map reply (RESP3 %) or its RESP2 flat array, as [key, value] pairs. */
function pairs(v: Value): Array<[string, Value]> {
  const it = items(v);
  const out: Array<[string, Value]> = [];
  for (let i = 0; i < it.length; i += 2) out.push([str(it[i]!), it[i + 1]!]);
  return out;
}

/** The type skeleton of a reply: types and nesting, no contents. */
function shape(v: Value): string {
  if (Array.isArray(v.v)) return `${v.t}[${v.v.map(shape).join(',')}]`;
  return v.v === null ? `${v.t}null` : v.t;
}

const show = (b: Buffer): string => JSON.stringify(b.toString('latin1'));

// --- Sequences ------------------------------------------------------------------

/** How two replies are compared; exact by default. */
type Compare = (redis: Buffer, ours: Buffer) => string | undefined;

interface Step {
  args: Arg[];
  compare?: Compare;
  /** Why this step is not compared byte for byte. */
  why?: string;
}

const exact: Compare = (r, o) => (r.equals(o) ? undefined : `redis ${show(r)} vs ours ${show(o)}`);

function step(args: Arg[], compare?: Compare, why?: string): Step {
  return { args, compare, why };
}

/** Integer replies within `tolerance` of each other (times measured a few ms apart). */
const near = (tolerance: number): Compare => (r, o) => {
  const a = decode(r);
  const b = decode(o);
  if (a.t !== ':' || b.t !== ':') return exact(r, o);
  return Math.abs(Number(a.v) - Number(b.v)) <= tolerance ? undefined : `redis ${a.v} vs ours ${b.v} (tolerance ${tolerance})`;
};

/** Same reply type skeleton, contents free. */
const sameShape: Compare = (r, o) => {
  const a = shape(decode(r));
  const b = shape(decode(o));
  return a === b ? undefined : `shape redis ${a} vs ours ${b}: ${show(r)} vs ${show(o)}`;
};

/** A SCAN reply whose keys are compared as a set (the cursor is ours). */
const unorderedScan: Compare = (r, o) => {
  const a = decode(r);
  const b = decode(o);
  if (a.t === '-' || b.t === '-') return exact(r, o);
  const ka = items(items(a)[1]!).map(str).sort();
  const kb = items(items(b)[1]!).map(str).sort();
  return JSON.stringify(ka) === JSON.stringify(kb) ? undefined : `redis ${JSON.stringify(ka)} vs ours ${JSON.stringify(kb)}`;
};

/** Arrays compared as multisets of their elements (hash-table order is not part of the contract). */
const unordered: Compare = (r, o) => {
  const a = decode(r);
  const b = decode(o);
  if (a.t !== b.t || !Array.isArray(a.v) || !Array.isArray(b.v)) return exact(r, o);
  const ka = a.v.map(str).sort();
  const kb = b.v.map(str).sort();
  return JSON.stringify(ka) === JSON.stringify(kb) ? undefined : `redis ${JSON.stringify(ka)} vs ours ${JSON.stringify(kb)}`;
};

/** One SCAN step: cursors differ by design (ours walk our own index), so only the reply's shape is compared, and an empty final page must be empty on both. */
const scanPage: Compare = (r, o) => {
  const a = decode(r);
  const b = decode(o);
  if (a.t === '-' || b.t === '-') return exact(r, o);
  const [ac, ak] = items(a);
  const [bc, bk] = items(b);
  if (items(a).length !== 2 || items(b).length !== 2 || ac!.t !== '$' || bc!.t !== '$' || !/^\d+$/.test(str(bc!))) return `shape: ${show(r)} vs ${show(o)}`;
  if (ak!.t !== bk!.t) return `key list type: ${show(r)} vs ${show(o)}`;
  if (str(ac!) === '0' && str(bc!) === '0' && items(ak!).length !== items(bk!).length) return `keys: ${show(r)} vs ${show(o)}`;
  return undefined;
};

/** Float arguments of every kind strtold reads: decimals, exponents, signs, hex. */
function randomFloats(seed: number, n: number): string[] {
  const r = seededRandomFn(seed);
  const digits = (k: number) => Array.from({ length: k }, () => Math.floor(r() * 10)).join('');
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const sign = r() < 0.3 ? '-' : r() < 0.1 ? '+' : '';
    switch (Math.floor(r() * 6)) {
      case 0: out.push(`${sign}${digits(1 + Math.floor(r() * 4))}.${digits(1 + Math.floor(r() * 6))}`); break;
      case 1: out.push(`${sign}${digits(1 + Math.floor(r() * 3))}e${Math.floor(r() * 40) - 20}`); break;
      case 2: out.push(`${sign}0.${digits(1 + Math.floor(r() * 25))}`); break;
      case 3: out.push(`${sign}${digits(1 + Math.floor(r() * 20))}`); break;
      case 4: out.push(`${sign}0x${Math.floor(r() * 0xffff).toString(16)}.${Math.floor(r() * 0xff).toString(16)}p${Math.floor(r() * 20) - 10}`); break;
      default: out.push(`${sign}.${digits(1 + Math.floor(r() * 3))}E${Math.floor(r() * 6)}`);
    }
  }
  return out;
}

/** Random glob patterns over the bytes that mean something to stringmatchlen. */
function randomPatterns(seed: number, n: number): string[] {
  const r = seededRandomFn(seed);
  const alphabet = ['a', 'b', 'h', 'l', 'o', 'e', 'u', ':', '1', '*', '*', '?', '[', ']', '^', '-', '\\', 'A', ' '];
  return Array.from({ length: n }, () => Array.from({ length: 1 + Math.floor(r() * 7) }, () => alphabet[Math.floor(r() * alphabet.length)]).join(''));
}

/** INCRBY/DECRBY near the int64 edges and GETRANGE/SETRANGE with random indexes. */
function randomIntegerSteps(seed: number, n: number): Step[] {
  const r = seededRandomFn(seed);
  const edges = [0n, 1n, -1n, 2n ** 53n, -(2n ** 53n), 2n ** 62n, -(2n ** 62n), 2n ** 63n - 1n, -(2n ** 63n), 2n ** 63n - 100n, -(2n ** 63n) + 100n];
  const pick = () => {
    const e = edges[Math.floor(r() * edges.length)]!;
    const jitter = BigInt(Math.floor(r() * 200) - 100);
    return String(e + jitter);
  };
  const steps: Step[] = [step(['SET', 'str', 'The quick brown fox jumps over the lazy dog'])];
  for (let i = 0; i < n; i++) {
    switch (Math.floor(r() * 5)) {
      case 0: steps.push(step(['SET', 'i', pick()])); break;
      case 1: steps.push(step(['INCRBY', 'i', pick()])); break;
      case 2: steps.push(step(['DECRBY', 'i', pick()])); break;
      case 3: steps.push(step(['GETRANGE', 'str', Math.floor(r() * 100) - 50, Math.floor(r() * 100) - 50])); break;
      default: steps.push(step(['SETRANGE', 'str', Math.floor(r() * 60), 'xyz'.slice(0, Math.floor(r() * 4))]));
    }
  }
  steps.push(step(['GET', 'str']), step(['GET', 'i']));
  return steps;
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const INT64_MAX = '9223372036854775807';
const INT64_MIN = '-9223372036854775808';

/** Every group of steps; `now` fixes absolute times so both servers get the same arguments. */
function sequences(nowMs: number): Record<string, Step[]> {
  const nowS = Math.floor(nowMs / 1000);
  const s = (...args: Arg[]) => step(args);
  // TTL-like replies: both servers measured a few ms apart.
  const ttlS = (...args: Arg[]) => step(args, near(1), 'seconds left, measured at slightly different times');
  const ttlMs = (...args: Arg[]) => step(args, near(250), 'milliseconds left, measured at slightly different times');
  return {
    'SET and its options': [
      s('SET', 'k', 'v'),
      s('GET', 'k'),
      s('GET', 'missing'),
      s('SET', 'k', 'v2', 'XX'),
      s('GET', 'k'),
      s('SET', 'nx', 'v', 'XX'),
      s('EXISTS', 'nx'),
      s('SET', 'k', 'v3', 'NX'),
      s('SET', 'nx', 'v', 'NX'),
      s('SET', 'nx', 'v', 'nx'),
      s('SET', 'k', 'v4', 'GET'),
      s('SET', 'new1', 'v', 'GET'),
      s('GET', 'new1'),
      s('SET', 'k', 'v5', 'NX', 'GET'),
      s('SET', 'new2', 'v', 'NX', 'GET'),
      s('SET', 'k', 'v6', 'XX', 'GET'),
      s('SET', 'new3', 'v', 'XX', 'GET'),
      s('EXISTS', 'new3'),
      s('SET', 'k', 'v', 'NX', 'NX'),
      s('SET', 'k', 'v', 'XX', 'XX'),
      s('SET', 'k', 'v7', 'GET', 'GET'),
      s('SET', 'e', 'v', 'EX', 100),
      ttlS('TTL', 'e'),
      s('SET', 'e', 'v', 'PX', 100000),
      ttlS('TTL', 'e'),
      ttlMs('PTTL', 'e'),
      s('SET', 'e', 'v', 'EXAT', nowS + 1000),
      s('EXPIRETIME', 'e'),
      s('SET', 'e', 'v', 'PXAT', nowMs + 1000000),
      s('PEXPIRETIME', 'e'),
      s('EXPIRETIME', 'e'),
      s('SET', 'e', 'v2', 'KEEPTTL'),
      s('PEXPIRETIME', 'e'),
      s('GET', 'e'),
      s('SET', 'e', 'v3', 'KEEPTTL', 'GET'),
      s('PEXPIRETIME', 'e'),
      s('SET', 'e', 'v4', 'XX', 'KEEPTTL'),
      s('PEXPIRETIME', 'e'),
      s('SET', 'e', 'v5'),
      s('TTL', 'e'),
      s('SET', 'nottl', 'v', 'KEEPTTL'),
      s('TTL', 'nottl'),
      s('SET', 'e', 'v', 'EX', 10, 'EX', 20),
      ttlS('TTL', 'e'),
      s('SET', 'e', 'v', 'px', 5000, 'xx', 'get'),
      ttlS('TTL', 'e'),
      // Invalid expiry values.
      s('SET', 'k', 'v', 'EX', 0),
      s('SET', 'k', 'v', 'EX', -1),
      s('SET', 'k', 'v', 'PX', 0),
      s('SET', 'k', 'v', 'PX', -100),
      s('SET', 'k', 'v', 'EXAT', 0),
      s('SET', 'k', 'v', 'PXAT', -5),
      s('SET', 'k', 'v', 'EX', 'abc'),
      s('SET', 'k', 'v', 'EX', '1.5'),
      s('SET', 'k', 'v', 'EX', ' 10'),
      s('SET', 'k', 'v', 'EX', '010'),
      s('SET', 'k', 'v', 'EX', INT64_MAX),
      s('SET', 'k', 'v', 'PX', INT64_MAX),
      s('SET', 'k', 'v', 'EX', '9223372036854775808'),
      s('SET', 'k', 'v', 'EX', '9223372036854776'),
      s('SET', 'k', 'v', 'EX', ''),
      // Invalid combinations.
      s('SET', 'k', 'v', 'EX'),
      s('SET', 'k', 'v', 'PXAT'),
      s('SET', 'k', 'v', 'EX', 10, 'PX', 100),
      s('SET', 'k', 'v', 'EX', 10, 'EXAT', nowS + 100),
      s('SET', 'k', 'v', 'PX', 10, 'PXAT', nowMs + 100),
      s('SET', 'k', 'v', 'EX', 10, 'KEEPTTL'),
      s('SET', 'k', 'v', 'KEEPTTL', 'EX', 10),
      s('SET', 'k', 'v', 'KEEPTTL', 'PXAT', nowMs + 100),
      s('SET', 'k', 'v', 'NX', 'XX'),
      s('SET', 'k', 'v', 'XX', 'NX'),
      s('SET', 'k', 'v', 'FOO'),
      s('SET', 'k', 'v', 'EX', 10, 'FOO'),
      s('SET', 'k', 'v', 'KEEPTTL', 'KEEPTTL'),
      s('SET', 'k', 'v', 'GETT'),
      s('GET', 'k'),
      // An expiry already in the past: the key is gone.
      s('SET', 'past', 'v', 'EXAT', 1),
      s('GET', 'past'),
      s('EXISTS', 'past'),
      s('SET', 'k', 'old'),
      s('SET', 'k', 'new', 'PXAT', 1, 'GET'),
      s('GET', 'k'),
      s('SET', '', ''),
      s('GET', ''),
      s('STRLEN', ''),
    ],
    'SETNX SETEX PSETEX GETSET GETDEL': [
      s('SETNX', 'a', '1'),
      s('SETNX', 'a', '2'),
      s('GET', 'a'),
      s('SETEX', 'b', 100, 'v'),
      ttlS('TTL', 'b'),
      s('GET', 'b'),
      s('SETEX', 'b', 0, 'v'),
      s('SETEX', 'b', -1, 'v'),
      s('SETEX', 'b', 'x', 'v'),
      s('SETEX', 'b', INT64_MAX, 'v'),
      s('PSETEX', 'c', 100000, 'v'),
      ttlS('TTL', 'c'),
      s('PSETEX', 'c', 0, 'v'),
      s('PSETEX', 'c', -5, 'v'),
      s('PSETEX', 'c', '1e3', 'v'),
      s('GETSET', 'a', 'new'),
      s('GETSET', 'fresh', 'x'),
      s('GET', 'fresh'),
      s('GETSET', 'b', 'nottl'),
      s('TTL', 'b'),
      s('GETDEL', 'a'),
      s('GETDEL', 'a'),
      s('EXISTS', 'a'),
      s('SETEX', 'k', 1, 'v', 'extra'),
    ],
    'GETEX': [
      s('SET', 'g', 'val'),
      s('GETEX', 'g'),
      s('TTL', 'g'),
      s('GETEX', 'g', 'EX', 100),
      ttlS('TTL', 'g'),
      s('GETEX', 'g', 'PX', 200000),
      ttlS('TTL', 'g'),
      s('GETEX', 'g', 'EXAT', nowS + 500),
      s('EXPIRETIME', 'g'),
      s('GETEX', 'g', 'PXAT', nowMs + 600000),
      s('PEXPIRETIME', 'g'),
      s('GETEX', 'g', 'PERSIST'),
      s('TTL', 'g'),
      s('GETEX', 'g', 'persist'),
      s('GETEX', 'missing', 'EX', 100),
      s('GETEX', 'missing'),
      s('EXISTS', 'missing'),
      s('GETEX', 'g', 'EX', 0),
      s('GETEX', 'g', 'EX', -1),
      s('GETEX', 'g', 'PX', 0),
      s('GETEX', 'g', 'EX', 'abc'),
      s('GETEX', 'g', 'EX', INT64_MAX),
      s('GETEX', 'missing', 'EX', 0),
      s('GETEX', 'g', 'EX'),
      s('GETEX', 'g', 'EX', 10, 'PX', 10),
      s('GETEX', 'g', 'EX', 10, 'PERSIST'),
      s('GETEX', 'g', 'PERSIST', 'EX', 10),
      s('GETEX', 'g', 'PERSIST', 'PERSIST'),
      s('GETEX', 'g', 'EX', 10, 'EX', 20),
      ttlS('TTL', 'g'),
      s('GETEX', 'g', 'KEEPTTL'),
      s('GETEX', 'g', 'NX'),
      s('GETEX', 'g', 'GET'),
      s('GETEX', 'g', 'FOO'),
      s('GETEX', 'g', 'EXAT', 1),
      s('EXISTS', 'g'),
    ],
    'MGET MSET MSETNX DEL UNLINK EXISTS TOUCH TYPE': [
      s('MSET', 'm1', 'a', 'm2', 'b', 'm3', 'c'),
      s('MGET', 'm1', 'm2', 'nope', 'm3', 'm1'),
      s('MSET', 'm1', 'x', 'm1', 'y'),
      s('GET', 'm1'),
      s('MSET', 'm1'),
      s('MSET', 'm1', 'a', 'm2'),
      s('MSETNX', 'n1', 'a', 'n2', 'b'),
      s('MSETNX', 'n2', 'c', 'n3', 'd'),
      s('EXISTS', 'n3'),
      s('MSETNX', 'n4', 'a', 'n4', 'b'),
      s('GET', 'n4'),
      s('MSETNX', 'n5', 'a', 'n6'),
      s('EXISTS', 'm1', 'm2', 'nope', 'm1'),
      s('TOUCH', 'm1', 'nope', 'm2', 'm2'),
      s('TYPE', 'm1'),
      s('TYPE', 'nope'),
      s('DEL', 'm1', 'm1', 'nope'),
      s('UNLINK', 'm2', 'm3', 'nope'),
      s('DEL', 'nope'),
      s('UNLINK', 'nope'),
      s('EXISTS', 'm1', 'm2', 'm3'),
    ],
    'STRLEN APPEND GETRANGE SETRANGE': [
      s('APPEND', 'ap', 'hello'),
      s('APPEND', 'ap', ' world'),
      s('APPEND', 'ap', ''),
      s('APPEND', 'apnew', ''),
      s('EXISTS', 'apnew'),
      s('STRLEN', 'ap'),
      s('STRLEN', 'nope'),
      s('GETRANGE', 'ap', 0, 4),
      s('GETRANGE', 'ap', -5, -1),
      s('GETRANGE', 'ap', 0, -1),
      s('GETRANGE', 'ap', -1, -5),
      s('GETRANGE', 'ap', -100, 3),
      s('GETRANGE', 'ap', 5, 3),
      s('GETRANGE', 'ap', 3, 100),
      s('GETRANGE', 'ap', 100, 200),
      s('GETRANGE', 'ap', 0, 0),
      s('GETRANGE', 'ap', -1, -1),
      s('GETRANGE', 'ap', 10, 10),
      s('GETRANGE', 'ap', 11, 11),
      s('GETRANGE', 'ap', INT64_MIN, INT64_MAX),
      s('GETRANGE', 'ap', '9007199254740993', '9007199254740999'),
      s('GETRANGE', 'ap', -3, INT64_MAX),
      s('GETRANGE', 'nope', 0, -1),
      s('GETRANGE', 'ap', 'a', 1),
      s('GETRANGE', 'ap', 0, '1.0'),
      s('GETRANGE', 'ap', 0, '9223372036854775808'),
      s('SET', 'empty', ''),
      s('GETRANGE', 'empty', 0, -1),
      s('GETRANGE', 'empty', 0, 0),
      s('SETRANGE', 'sr', 5, 'abc'),
      s('GET', 'sr'),
      s('STRLEN', 'sr'),
      s('SETRANGE', 'sr', 0, 'XY'),
      s('GET', 'sr'),
      s('SETRANGE', 'sr', 7, 'long tail'),
      s('GET', 'sr'),
      s('SETRANGE', 'sr', 3, ''),
      s('SETRANGE', 'sr', 100, ''),
      s('SETRANGE', 'sr', 600000000, ''),
      s('STRLEN', 'sr'),
      s('SETRANGE', 'srnew', 0, ''),
      s('SETRANGE', 'srnew', 600000000, ''),
      s('EXISTS', 'srnew'),
      s('SETRANGE', 'sr', -1, 'x'),
      s('SETRANGE', 'sr', 'x', 'x'),
      s('SETRANGE', 'sr', INT64_MAX, 'x'),
      s('SETRANGE', 'sr', '9223372036854775808', 'x'),
      s('SETRANGE', 'sr', 536870911, 'xy'),
      s('SETRANGE', 'sr', '9007199254740993', 'x'),
      s('SETRANGE', 'sr', '9007199254740993', ''),
      s('APPEND', 'sr', ''),
      s('GET', 'sr'),
    ],
    'INCR DECR INCRBY DECRBY': [
      s('INCR', 'n'),
      s('INCR', 'n'),
      s('DECR', 'n'),
      s('DECR', 'fresh'),
      s('INCRBY', 'n', 100),
      s('INCRBY', 'n', -1000),
      s('DECRBY', 'n', 50),
      s('DECRBY', 'n', -50),
      s('GET', 'n'),
      s('SET', 'n', INT64_MAX),
      s('INCR', 'n'),
      s('INCRBY', 'n', 1),
      s('INCRBY', 'n', 0),
      s('DECRBY', 'n', -1),
      s('GET', 'n'),
      s('SET', 'n', INT64_MIN),
      s('DECR', 'n'),
      s('DECRBY', 'n', 1),
      s('INCRBY', 'n', -1),
      s('INCRBY', 'n', INT64_MAX),
      s('SET', 'n', '0'),
      s('DECRBY', 'n', INT64_MIN),
      s('INCRBY', 'n', INT64_MIN),
      s('DECRBY', 'n', INT64_MAX),
      s('DECR', 'n'),
      s('DECR', 'n'),
      s('SET', 'n', '9007199254740991'),
      s('INCR', 'n'),
      s('INCR', 'n'),
      s('INCRBY', 'n', '9007199254740993'),
      s('SET', 'n', '-9007199254740991'),
      s('DECR', 'n'),
      s('DECRBY', 'n', '9007199254740993'),
      s('INCRBY', 'n', '9223372036854775808'),
      s('INCRBY', 'n', '-9223372036854775809'),
      s('INCRBY', 'n', '1.5'),
      s('INCRBY', 'n', '+1'),
      s('INCRBY', 'n', ' 1'),
      s('INCRBY', 'n', '1 '),
      s('INCRBY', 'n', '01'),
      s('INCRBY', 'n', '-0'),
      s('INCRBY', 'n', '0x10'),
      s('INCRBY', 'n', ''),
      s('INCRBY', 'n', '1e3'),
      s('DECRBY', 'n', 'abc'),
      s('SET', 'n', ' 10'),
      s('INCR', 'n'),
      s('SET', 'n', '10 '),
      s('INCR', 'n'),
      s('SET', 'n', '010'),
      s('INCR', 'n'),
      s('SET', 'n', '+10'),
      s('INCR', 'n'),
      s('SET', 'n', '1.0'),
      s('INCR', 'n'),
      s('SET', 'n', '-0'),
      s('INCR', 'n'),
      s('SET', 'n', 'abc'),
      s('DECR', 'n'),
      s('SET', 'n', '9223372036854775808'),
      s('INCR', 'n'),
      s('SET', 'n', ''),
      s('INCR', 'n'),
      s('SET', 'n', '0'),
      s('INCR', 'n'),
      s('SET', 'ttl', '5', 'EX', 100),
      s('INCR', 'ttl'),
      ttlS('TTL', 'ttl'),
    ],
    'INCRBYFLOAT': [
      s('SET', 'f', '10.5'),
      s('INCRBYFLOAT', 'f', '0.1'),
      s('INCRBYFLOAT', 'f', '-5'),
      s('INCRBYFLOAT', 'f', '1e3'),
      s('INCRBYFLOAT', 'f', '5.0e3'),
      s('INCRBYFLOAT', 'f', '5.0E+3'),
      s('INCRBYFLOAT', 'f', '-11005.6'),
      s('GET', 'f'),
      s('INCRBYFLOAT', 'f2', '0.1'),
      s('INCRBYFLOAT', 'f2', '0.2'),
      s('INCRBYFLOAT', 'f3', '1.1'),
      s('INCRBYFLOAT', 'f3', '2.2'),
      s('INCRBYFLOAT', 'f4', '3'),
      s('INCRBYFLOAT', 'f4', '-3'),
      s('INCRBYFLOAT', 'f5', '-0.0'),
      s('INCRBYFLOAT', 'f6', '.5'),
      s('INCRBYFLOAT', 'f6', '5.'),
      s('INCRBYFLOAT', 'f7', '1e-5'),
      s('INCRBYFLOAT', 'f7', '1e-20'),
      s('INCRBYFLOAT', 'f8', '123456789.123456789'),
      s('INCRBYFLOAT', 'f9', '1e20'),
      s('INCRBYFLOAT', 'f9', '1'),
      s('INCRBYFLOAT', 'f10', '3.0e3'),
      s('INCRBYFLOAT', 'f11', '0x10'),
      s('INCRBYFLOAT', 'f12', '1.7976931348623157e308'),
      s('INCRBYFLOAT', 'f12', '1.7976931348623157e308'),
      s('INCRBYFLOAT', 'f', 'inf'),
      s('INCRBYFLOAT', 'f', '-inf'),
      s('INCRBYFLOAT', 'f', '+inf'),
      s('INCRBYFLOAT', 'f', 'nan'),
      s('INCRBYFLOAT', 'f', 'abc'),
      s('INCRBYFLOAT', 'f', ''),
      s('INCRBYFLOAT', 'f', ' 1'),
      s('INCRBYFLOAT', 'f', '1 '),
      s('INCRBYFLOAT', 'f', '1e'),
      s('INCRBYFLOAT', 'f', '1.2.3'),
      s('INCRBYFLOAT', 'f', '1e99999'),
      s('SET', 'bad', 'abc'),
      s('INCRBYFLOAT', 'bad', '1'),
      s('SET', 'bad', ' 1'),
      s('INCRBYFLOAT', 'bad', '1'),
      s('SET', 'ttl', '1.5', 'EX', 100),
      s('INCRBYFLOAT', 'ttl', '1'),
      ttlS('TTL', 'ttl'),
      s('SET', 'i', '10'),
      s('INCRBYFLOAT', 'i', '0'),
      s('INCR', 'i'),
      s('INCRBYFLOAT', 'i', '0.5'),
      s('INCR', 'i'),
    ],
    'EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST': [
      s('SET', 'x', 'v'),
      s('TTL', 'x'),
      s('PTTL', 'x'),
      s('EXPIRETIME', 'x'),
      s('PEXPIRETIME', 'x'),
      s('TTL', 'nope'),
      s('PTTL', 'nope'),
      s('EXPIRETIME', 'nope'),
      s('PEXPIRETIME', 'nope'),
      s('EXPIRE', 'nope', 100),
      s('PERSIST', 'x'),
      s('PERSIST', 'nope'),
      s('EXPIRE', 'x', 100, 'XX'),
      s('EXPIRE', 'x', 100, 'GT'),
      s('EXPIRE', 'x', 100, 'NX'),
      s('EXPIRE', 'x', 200, 'NX'),
      ttlS('TTL', 'x'),
      s('EXPIRE', 'x', 50, 'GT'),
      s('EXPIRE', 'x', 200, 'GT'),
      ttlS('TTL', 'x'),
      s('EXPIRE', 'x', 300, 'LT'),
      s('EXPIRE', 'x', 150, 'LT'),
      ttlS('TTL', 'x'),
      s('EXPIRE', 'x', 120, 'XX', 'LT'),
      s('EXPIRE', 'x', 500, 'XX', 'GT'),
      ttlS('TTL', 'x'),
      s('EXPIRE', 'x', 100, 'nx', 'xx'),
      s('EXPIRE', 'x', 100, 'NX', 'GT'),
      s('EXPIRE', 'x', 100, 'NX', 'LT'),
      s('EXPIRE', 'x', 100, 'GT', 'LT'),
      s('EXPIRE', 'x', 100, 'FOO'),
      s('EXPIRE', 'x', 'abc', 'FOO'),
      s('EXPIRE', 'x', 'abc', 'NX', 'XX'),
      s('EXPIRE', 'x', 'abc'),
      s('EXPIRE', 'x', '1.5'),
      s('EXPIRE', 'x', INT64_MAX),
      s('EXPIRE', 'x', INT64_MIN),
      s('EXPIRE', 'x', '9223372036854776'),
      s('PEXPIRE', 'x', INT64_MAX),
      s('PEXPIREAT', 'x', INT64_MAX),
      s('EXPIREAT', 'x', INT64_MAX),
      s('EXPIRE', 'x', '9223372036854775808'),
      s('PERSIST', 'x'),
      s('TTL', 'x'),
      s('EXPIRE', 'x', 100, 'LT'),
      ttlS('TTL', 'x'),
      s('PERSIST', 'x'),
      s('EXPIRE', 'x', 100, 'GT'),
      s('TTL', 'x'),
      s('PEXPIRE', 'x', 100000),
      ttlMs('PTTL', 'x'),
      s('PEXPIRE', 'x', 200000, 'GT'),
      ttlS('TTL', 'x'),
      s('EXPIREAT', 'x', nowS + 1000),
      s('EXPIRETIME', 'x'),
      s('PEXPIRETIME', 'x'),
      s('EXPIREAT', 'x', nowS + 2000, 'LT'),
      s('EXPIREAT', 'x', nowS + 500, 'LT'),
      s('EXPIRETIME', 'x'),
      s('PEXPIREAT', 'x', nowMs + 700000),
      s('PEXPIRETIME', 'x'),
      s('PEXPIREAT', 'x', nowMs + 800000, 'NX'),
      s('PEXPIREAT', 'x', nowMs + 800000, 'XX'),
      s('PEXPIRETIME', 'x'),
      // Negative and past times delete the key.
      s('SET', 'neg', 'v'),
      s('EXPIRE', 'neg', -1),
      s('EXISTS', 'neg'),
      s('SET', 'neg', 'v'),
      s('PEXPIRE', 'neg', 0),
      s('EXISTS', 'neg'),
      s('SET', 'neg', 'v'),
      s('EXPIREAT', 'neg', 1),
      s('GET', 'neg'),
      s('SET', 'neg', 'v'),
      s('PEXPIREAT', 'neg', -100),
      s('GET', 'neg'),
      s('SET', 'neg', 'v', 'EX', 100),
      s('EXPIRE', 'neg', -5, 'GT'),
      s('EXISTS', 'neg'),
      s('EXPIRE', 'neg', -5, 'LT'),
      s('EXISTS', 'neg'),
      s('SET', 'neg', 'v'),
      s('EXPIRE', 'neg', -5, 'XX'),
      s('EXISTS', 'neg'),
      s('EXPIRE', 'neg', -5, 'NX'),
      s('EXISTS', 'neg'),
    ],
    'KEYS SCAN RANDOMKEY DBSIZE FLUSHALL': [
      s('FLUSHALL'),
      s('RANDOMKEY'),
      s('DBSIZE'),
      s('KEYS', '*'),
      s('SCAN', 0),
      s('MSET', 'user:1', 'a', 'user:2', 'b', 'user:10', 'c', 'admin', 'd', 'h?llo', 'e', 'hello', 'f', 'hallo', 'g', 'hxllo', 'h', 'a*b', 'i', 'a[b', 'j', 'UPPER', 'k', '', 'empty key', 'a]b', 'l', 'a\\b', 'm', ']', 'n', '^x', 'o'),
      s('DBSIZE'),
      step(['KEYS', '*'], unordered, 'hash-table order'),
      step(['KEYS', 'user:*'], unordered, 'hash-table order'),
      step(['KEYS', 'user:?'], unordered, 'hash-table order'),
      step(['KEYS', 'h[ae]llo'], unordered, 'hash-table order'),
      step(['KEYS', 'h[^e]llo'], unordered, 'hash-table order'),
      step(['KEYS', 'h[a-f]llo'], unordered, 'hash-table order'),
      step(['KEYS', 'h[f-a]llo'], unordered, 'hash-table order'),
      step(['KEYS', 'h\\?llo'], unordered, 'hash-table order'),
      step(['KEYS', 'a\\*b'], unordered, 'hash-table order'),
      step(['KEYS', 'a[[]b'], unordered, 'hash-table order'),
      step(['KEYS', 'a[b'], unordered, 'hash-table order'),
      step(['KEYS', 'upper'], unordered, 'hash-table order'),
      step(['KEYS', '**'], unordered, 'hash-table order'),
      step(['KEYS', '*1*'], unordered, 'hash-table order'),
      step(['KEYS', ''], unordered, 'hash-table order'),
      s('KEYS', 'nomatch*'),
      // Glob corners of Redis' stringmatchlen: unterminated classes, escapes at the end, odd ranges.
      ...['h[', '[', '\\', 'h\\', 'hello\\', '[a-]*', '[-a]*', '[]]*', '[^]*', '*[', 'a[b-', 'a[\\]]*', 'h[^a-f]llo', 'h[z-a]llo', '?', '??????', '*?*', 'a[*]b', 'a[\\*]b', 'user:1?', 'user:[0-9]', 'user:[0-9][0-9]', '[A-Z]*', '[a-z]*', 'h*l*o', '*l*l*o*', '**', '*', '***', '[]', '[]]', '[\\]]', '[]a]', ']', '\\]', 'a\\\\b', 'a\\b', '[^', '[\\', 'a[]]b', 'a[^]]b', '*]', '[\\^]x', '[!a]*', 'A*', 'a?b', 'a??', '*b']
        .map((p) => step(['KEYS', p], unordered, 'hash-table order')),
      ...randomPatterns(0x61ab, 400).map((p) => step(['KEYS', p], unordered, 'hash-table order; random glob')),
      s('SCAN', 'abc'),
      s('SCAN', '-'),
      s('SCAN', 0, 'COUNT', 0),
      s('SCAN', 0, 'COUNT', -1),
      s('SCAN', 0, 'COUNT', 'x'),
      s('SCAN', 0, 'MATCH'),
      s('SCAN', 0, 'FOO', 'bar'),
      step(['SCAN', 0, 'TYPE', 'list'], scanPage, 'cursors differ by design'),
      step(['SCAN', 0, 'TYPE', 'hash', 'COUNT', 100], scanPage, 'cursors differ by design'),
      step(['SCAN', ''], scanPage, 'cursors differ by design'),
      step(['SCAN', '00', 'COUNT', INT64_MAX], scanPage, 'cursors differ by design'),
      step(['SCAN', '+0', 'MATCH', 'user:*', 'COUNT', 1000], unorderedScan, 'cursors differ by design; one step covers the whole small keyspace'),
      step(['SCAN', '0', 'COUNT', '1000', 'TYPE', 'string', 'MATCH', 'h*'], unorderedScan, 'one step covers the whole small keyspace'),
      s('SCAN', '18446744073709551616'),
      s('SCAN', ' 0'),
      s('SCAN', '0 '),
      s('SCAN', '+'),
      s('SCAN', '-'),
      s('SCAN', '0x10'),
      s('SCAN', 0, 'COUNT', '9223372036854775808'),
      s('SCAN', 0, 'COUNT', '1.5'),
      s('SCAN', 0, 'MATCH', '*', 'MATCH'),
      step(['RANDOMKEY'], sameShape, 'a random key'),
      s('FLUSHALL'),
      s('SET', 'only', '1'),
      s('RANDOMKEY'),
      s('FLUSHALL', 'ASYNC'),
      s('FLUSHALL', 'SYNC'),
      s('FLUSHALL', 'sync'),
      s('FLUSHALL', 'FOO'),
      s('FLUSHALL', 'SYNC', 'ASYNC'),
      s('DBSIZE'),
      s('RANDOMKEY'),
      s('FLUSHDB'),
    ],
    'connection commands': [
      s('PING'),
      s('PING', 'hello'),
      s('PING', ''),
      s('PING', ALL_BYTES),
      s('PING', 'a', 'b'),
      s('ECHO', 'hi'),
      s('ECHO', ''),
      s('ECHO', ALL_BYTES),
      s('ECHO'),
      s('ECHO', 'a', 'b'),
      s('SELECT', 0),
      s('SELECT', 1),
      s('SELECT', -1),
      s('SELECT', 'x'),
      s('SELECT', '1.0'),
      s('SELECT', '00'),
      s('SELECT', '99999999999'),
      s('SELECT', INT64_MAX),
      s('SELECT', '2147483648'),
      s('CLIENT', 'GETNAME'),
      s('CLIENT', 'SETNAME', 'my-name'),
      s('CLIENT', 'GETNAME'),
      s('CLIENT', 'SETNAME', 'with space'),
      s('CLIENT', 'SETNAME', 'new\nline'),
      s('CLIENT', 'SETNAME', Buffer.from([0x7f])),
      s('CLIENT', 'SETNAME', Buffer.from([0xc3, 0xa9])),
      s('CLIENT', 'GETNAME'),
      s('CLIENT', 'SETNAME', ''),
      s('CLIENT', 'GETNAME'),
      s('CLIENT', 'setname', 'x', 'y'),
      s('CLIENT', 'GETNAME', 'x'),
      s('CLIENT', 'SETNAME'),
      step(['CLIENT', 'ID'], sameShape, 'connection ids are per-server counters'),
      s('CLIENT', 'ID', 'x'),
      s('CLIENT'),
      s('CLIENT', 'NOSUCH'),
      s('CLIENT', 'NOSUCH', 'a', 'b'),
      s('CLIENT', 'KILL', 'ID', '999999'),
      s('CLIENT', 'KILL', 'ID', '0'),
      s('CLIENT', 'KILL', 'ID', '-1'),
      s('CLIENT', 'KILL', 'ID', 'abc'),
      s('CLIENT', 'KILL', 'ID', '999999', 'SKIPME', 'yes'),
      s('CLIENT', 'KILL', 'ID', '999999', 'SKIPME', 'maybe'),
      s('CLIENT', 'KILL', 'ID', '999999', 'SKIPME'),
      s('CLIENT', 'KILL', 'ADDR', '10.0.0.1:1'),
      s('CLIENT', 'KILL', 'LADDR', '10.0.0.1:1'),
      s('CLIENT', 'KILL', '10.0.0.1:1'),
      s('CLIENT', 'KILL', 'NOSUCHFILTER', 'x'),
      s('CLIENT', Buffer.from('new\r\nline\x00hidden')),
      s('CONFIG', Buffer.from('a\nb')),
      s('CLIENT', 'NO-EVICT', 'maybe'),
      s('CLIENT', 'NO-EVICT', 'on'),
      s('CLIENT', 'NO-EVICT', 'off'),
      s('CONFIG'),
      s('CONFIG', 'NOSUCH'),
      s('CONFIG', 'GET'),
      s('CONFIG', 'GET', 'nosuchparam'),
      s('CONFIG', 'GET', 'databases'),
      s('CONFIG', 'GET', 'save'),
      step(['CONFIG', 'GET', 'appendonly'], sameShape, "our store is always an append-only log: 'yes' where Redis says 'no'"),
      s('CONFIG', 'GET', 'maxmemory'),
      s('CONFIG', 'GET', 'maxmemory-policy'),
      step(['CONFIG', 'GET', 'save', 'maxmemory', 'databases', 'save', 'nosuch'], (r, o) => {
        const norm = (b: Buffer) => JSON.stringify(pairs(decode(b)).map(([k, v]) => `${k}=${str(v)}`).sort());
        return norm(r) === norm(o) ? undefined : `redis ${norm(r)} vs ours ${norm(o)}`;
      }, 'several parameters: the order follows each server\'s table'),
      s('CONFIG', 'SET', 'nosuchparam', 'x'),
      s('CONFIG', 'SET', 'maxclients'),
      s('COMMAND', 'NOSUCH'),
      s('COMMAND', 'LIST', 'FILTERBY', 'PATTERN', 'getex'),
      s('COMMAND', 'LIST', 'FILTERBY', 'PATTERN', 'nosuchcommand*'),
      s('COMMAND', 'LIST', 'FILTERBY', 'FOO', 'x'),
      s('COMMAND', 'LIST', 'FOO'),
      s('COMMAND', 'INFO', 'nosuchcommand'),
      step(['COMMAND', 'INFO', 'get', 'nosuchcommand', 'set'], (r, o) => {
        // The first 7 fields (name, arity, flags, first/last/step, ACL categories) as Redis; we give no tips or key specs.
        const head = (b: Buffer) => items(decode(b)).map((e) => (e.v === null || e.t === '_' ? 'null' : items(e).slice(0, 7).map((x, i) => (i === 2 || i === 6 ? x.t : i < 2 ? `${x.t}${str(x)}` : x.t)).join(' ')));
        const a = JSON.stringify(head(r));
        const b = JSON.stringify(head(o));
        return a === b ? undefined : `redis ${a} vs ours ${b}`;
      }, 'we give no command tips or key specs: the first 7 fields are compared'),
      s('COMMAND', 'DOCS', 'nosuchcommand'),
      step(['COMMAND', 'COUNT'], sameShape, 'we implement a subset of the commands'),
      step(['TIME'], (r, o) => {
        const d = sameShape(r, o);
        if (d) return d;
        const [rs] = items(decode(r)).map(str);
        const [os, ous] = items(decode(o)).map(str);
        if (!/^\d+$/.test(os!) || !/^\d{1,6}$/.test(ous!)) return `TIME not digits: ${os} ${ous}`;
        return Math.abs(Number(rs) - Number(os)) <= 2 ? undefined : `TIME seconds ${rs} vs ${os}`;
      }, 'the clock moves; same shape, both near now'),
      s('TIME', 'x'),
      s('DBSIZE', 'x'),
      s('AUTH', 'secret'),
      s('AUTH', 'default', 'anything'),
      s('AUTH', 'bob', 'x'),
      s('AUTH'),
      s('AUTH', 'a', 'b', 'c'),
      s('HELLO', 'x'),
      s('HELLO', 4),
      s('HELLO', 1),
      s('HELLO', 0),
      s('HELLO', -1),
      s('HELLO', '3.0'),
      s('HELLO', INT64_MAX),
      s('HELLO', '9223372036854775808'),
      s('HELLO', '2', 'FOO'),
      s('HELLO', '2', 'AUTH', 'default'),
      s('HELLO', '2', 'AUTH', 'bob', 'pw'),
      s('HELLO', '2', 'SETNAME', 'bad name'),
      s('CLIENT', 'GETNAME'),
      s('HELLO', '2', 'SETNAME'),
      s('RESET', 'x'),
      // Without cluster mode, Redis refuses every CLUSTER subcommand.
      s('CLUSTER', 'INFO'),
      s('CLUSTER', 'SLOTS'),
      s('CLUSTER', 'NODES'),
      s('CLUSTER', 'SHARDS'),
      s('CLUSTER', 'MYID'),
      step(['CLUSTER', 'KEYSLOT', 'foo'], (r, o) => (o.toString() === ':12182\r\n' && r.toString().startsWith('-ERR This instance has cluster support disabled') ? undefined : `${show(r)} vs ${show(o)}`),
        'deliberate: we answer KEYSLOT (CRC16 of the key) even on a single node, where Redis 7.0 refuses every CLUSTER subcommand'),
      s('CLUSTER', 'NOSUCH'),
    ],
    'unknown commands and wrong arity': [
      s('NOSUCHCMD'),
      s('NOSUCHCMD', 'a', 'b'),
      s('nosuchcmd', 'with space'),
      s('X'.repeat(200), 'a'),
      s('FOO', 'a'.repeat(200)),
      s('FOO', 'a'.repeat(100), 'b'.repeat(100), 'c'),
      s('FOO', ...Array.from({ length: 60 }, (_, i) => `arg${i}`)),
      s('FOO', 'new\r\nline'),
      s('FOO', 'cr\rlf\n'),
      s('FOO', Buffer.from('caf\xc3\xa9', 'latin1')),
      s(Buffer.from('c\xc3\xa9md', 'latin1')),
      s(''),
      s('', 'x'),
      // Not "GET\0": Redis 7.0 looks a name up by a hash of all its bytes but compares with strcasecmp,
      // which stops at the NUL, so whether it runs as GET depends on the process's random hash seed
      // (a fresh-clone CI run saw Redis run it as GET). Ours always answers unknown command.
      s('get'),
      s('GeT'),
      s('GET', 'a', 'b'),
      s('SET'),
      s('SET', 'k'),
      s('SETNX', 'k'),
      s('SETEX', 'k', 10),
      s('PSETEX', 'k', 10),
      s('GETSET', 'k'),
      s('GETDEL'),
      s('GETDEL', 'a', 'b'),
      s('GETEX'),
      s('MGET'),
      s('MSET'),
      s('MSET', 'k'),
      s('MSETNX'),
      s('MSETNX', 'k'),
      s('STRLEN'),
      s('APPEND', 'k'),
      s('GETRANGE', 'k', 0),
      s('SETRANGE', 'k', 0),
      s('INCR'),
      s('INCR', 'a', 'b'),
      s('DECR'),
      s('INCRBY', 'k'),
      s('DECRBY', 'k'),
      s('INCRBYFLOAT', 'k'),
      s('DEL'),
      s('UNLINK'),
      s('EXISTS'),
      s('TOUCH'),
      s('TYPE'),
      s('TYPE', 'a', 'b'),
      s('EXPIRE', 'k'),
      s('PEXPIRE', 'k'),
      s('EXPIREAT', 'k'),
      s('PEXPIREAT', 'k'),
      s('TTL'),
      s('PTTL', 'a', 'b'),
      s('EXPIRETIME'),
      s('PEXPIRETIME'),
      s('PERSIST'),
      s('KEYS'),
      s('KEYS', 'a', 'b'),
      s('SCAN'),
      s('RANDOMKEY', 'x'),
      s('SELECT'),
      s('PING', 'a', 'b', 'c'),
      s('FLUSHALL', 'a', 'b', 'c'),
      s('CONFIG', 'GET'),
      s('CONFIG', 'SET', 'x'),
      s('CONFIG', 'RESETSTAT', 'x'),
      s('COMMAND', 'COUNT', 'x'),
      s('CLIENT', 'KILL'),
      s('CLIENT', 'LIST', 'FOO'),
      s('CLIENT', 'LIST', 'TYPE', 'bogus'),
      s('CLIENT', 'INFO', 'x'),
    ],
    'INCRBYFLOAT range and precision (x87 long double)': [
      s('SET', 'big', '1.7976931348623157e308'),
      s('INCRBYFLOAT', 'big', '1e308'),
      s('SET', 'huge', '1e4932'),
      s('INCRBYFLOAT', 'huge', '1e4931'),
      s('INCRBYFLOAT', 'huge', '1e4932'),
      s('INCRBYFLOAT', 'huge2', '1.1897314953572317650e4932'),
      s('INCRBYFLOAT', 'huge3', '1.2e4932'),
      s('INCRBYFLOAT', 'tiny', '1e-4950'),
      s('INCRBYFLOAT', 'tiny', '1e-4960'),
      s('INCRBYFLOAT', 'tiny2', '3.6e-4951'),
      s('INCRBYFLOAT', 'tiny3', '1e-400'),
      s('INCRBYFLOAT', 'zero', '0e99999'),
      s('INCRBYFLOAT', 'hex', '0x1p-3'),
      s('INCRBYFLOAT', 'hex', '0X.8P1'),
      s('INCRBYFLOAT', 'hex', '-0x1.8p+2'),
      s('INCRBYFLOAT', 'hex', '0x'),
      s('INCRBYFLOAT', 'hex', '0x1p'),
      s('INCRBYFLOAT', 'hex', '0xg'),
      s('INCRBYFLOAT', 'inf', 'Infinity'),
      s('INCRBYFLOAT', 'inf', '-INF'),
      s('INCRBYFLOAT', 'inf', 'infinit'),
      s('INCRBYFLOAT', 'inf', 'NaN'),
      s('INCRBYFLOAT', 'neg', '-1e-30'),
      s('INCRBYFLOAT', 'neg', '-0.5'),
      s('INCRBYFLOAT', 'neg', '0.5'),
      s('INCRBYFLOAT', 'tie', '0.000003814697265625'),
      s('INCRBYFLOAT', 'tie', '0.000003814697265625'),
      s('INCRBYFLOAT', 'long', `0.${'3'.repeat(200)}`),
      s('INCRBYFLOAT', 'long', `${'9'.repeat(60)}`),
      s('INCRBYFLOAT', 'toolong', '1'.repeat(5119)),
      s('INCRBYFLOAT', 'toolong2', '1'.repeat(5120)),
      ...randomFloats(0xf10a7, 120).map((v) => s('INCRBYFLOAT', 'acc', v)),
      s('GET', 'acc'),
      ...randomFloats(0xbeef, 60).flatMap((v, i) => [s('SET', `r${i}`, v), s('INCRBYFLOAT', `r${i}`, randomFloats(i, 1)[0]!)]),
    ],
    'integer and range arithmetic, seeded random': randomIntegerSteps(0x5eed, 150),
    'binary keys and values': [
      s('SET', ALL_BYTES, ALL_BYTES),
      s('GET', ALL_BYTES),
      s('STRLEN', ALL_BYTES),
      s('EXISTS', ALL_BYTES),
      s('TYPE', ALL_BYTES),
      s('KEYS', '*'),
      s('SCAN', 0),
      s('RANDOMKEY'),
      s('APPEND', ALL_BYTES, ALL_BYTES),
      s('GETRANGE', ALL_BYTES, 250, 260),
      s('SETRANGE', ALL_BYTES, 10, Buffer.from([0, 13, 10, 255])),
      s('GET', ALL_BYTES),
      s('MSET', Buffer.from([0]), Buffer.from([255]), Buffer.from([255]), Buffer.from([0])),
      s('MGET', Buffer.from([0]), Buffer.from([255]), ALL_BYTES.subarray(0, 3)),
      s('GETSET', Buffer.from('\r\n'), Buffer.from('\r\n$3\r\n')),
      s('GET', Buffer.from('\r\n')),
      s('GETDEL', Buffer.from('\r\n')),
      s('SET', 'big', Buffer.alloc(100_000, 0xa5)),
      s('GET', 'big'),
      s('GETRANGE', 'big', 99_990, -1),
      s('DEL', ALL_BYTES, Buffer.from([0]), Buffer.from([255]), 'big'),
      s('DBSIZE'),
    ],
  };
}

// --- Servers ------------------------------------------------------------------------

let redis: ChildProcess | undefined;
let redisPort = 0;
let redisDir = '';
let redisVersion = '';
let node: NodeProcess;

async function startRedis(): Promise<void> {
  redisDir = tempDir('dkv-redis-');
  redisPort = await freePort();
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--save', '', '--appendonly', 'no', '--databases', '1', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      const c = await Conn.connect(redisPort);
      const pong = await c.callBytes('PING');
      c.close();
      if (pong.toString() === '+PONG\r\n') return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.before(async () => {
  const v = await run('redis-server', ['--version']);
  redisVersion = /v=(\S+)/.exec(v.stdout)?.[1] ?? v.stdout.trim();
  t.comment(v.stdout.trim());
  await startRedis();
  node = await startNode();
});

t.teardown(async () => {
  redis?.kill('SIGTERM');
  await node?.stop('SIGTERM');
  if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true });
  if (node) fs.rmSync(node.dataDir, { recursive: true, force: true });
});

// --- The comparison ---------------------------------------------------------------------

const summary = { sequences: 0, steps: 0, exact: 0, normalised: 0, commands: new Set<string>() };

/** Sends every step to both servers, one at a time, and compares the replies. */
async function compareSteps(t: Test, name: string, r: Conn, o: Conn, steps: Step[]): Promise<void> {
  summary.sequences++;
  for (const st of steps) {
    const [rr, or] = await Promise.all([r.callBytes(...st.args), o.callBytes(...st.args)]);
    const label = st.args.map((a) => (Buffer.isBuffer(a) ? `<${a.length} bytes>` : String(a).slice(0, 40))).join(' ');
    let diff: string | undefined;
    try {
      diff = (st.compare ?? exact)(rr, or);
    } catch (err) {
      diff = `comparison failed (${(err as Error).message}): ${show(rr)} vs ${show(or)}`;
    }
    summary.steps++;
    if (st.compare) summary.normalised++;
    else summary.exact++;
    const cmd = String(st.args[0]).toUpperCase();
    summary.commands.add(cmd);
    if (st.args.length > 1 && !Buffer.isBuffer(st.args[1])) summary.commands.add(`${cmd} ${String(st.args[1]).toUpperCase()}`);
    t.notOk(diff, `${name}: ${label}${st.why ? ` (${st.why})` : ''}${diff ? ` >>> ${diff}` : ''}`);
  }
}

async function pair(resp3: boolean): Promise<[Conn, Conn]> {
  const r = await Conn.connect(redisPort);
  const o = await Conn.connect(node.port);
  if (resp3) {
    for (const c of [r, o]) {
      const hello = decode(await c.callBytes('HELLO', 3));
      if (hello.t !== '%') throw new Error(`HELLO 3 did not answer a map: ${JSON.stringify(hello)}`);
    }
  }
  return [r, o];
}

for (const resp3 of [false, true]) {
  const proto = resp3 ? 'RESP3' : 'RESP2';
  t.test(`${proto}: command sequences`, async (t) => {
    const [r, o] = await pair(resp3);
    const groups = sequences(Date.now());
    for (const [name, steps] of Object.entries(groups)) {
      await t.test(name, async (t) => {
        await compareSteps(t, `${proto} ${name}`, r, o, [step(['FLUSHALL'])]);
        await compareSteps(t, `${proto} ${name}`, r, o, steps);
      });
    }
    r.close();
    o.close();
  });

  t.test(`${proto}: SCAN walks the same key set`, async (t) => {
    const [r, o] = await pair(resp3);
    await compareSteps(t, `${proto} scan setup`, r, o, [step(['FLUSHALL'])]);
    const keys: Arg[] = [];
    for (let i = 0; i < 500; i++) keys.push(i % 3 === 0 ? `scan:a:${i}` : `scan:b:${i}`, String(i));
    keys.push(ALL_BYTES, 'bin');
    await compareSteps(t, `${proto} scan setup`, r, o, [step(['MSET', ...keys]), step(['DBSIZE'])]);
    const walk = async (c: Conn, opts: Arg[]): Promise<string[]> => {
      const seen = new Set<string>();
      let cursor = '0';
      let rounds = 0;
      do {
        const page = items(decode(await c.callBytes('SCAN', cursor, ...opts)));
        cursor = str(page[0]!);
        for (const k of items(page[1]!)) seen.add(str(k));
        if (++rounds > 10000) throw new Error('SCAN never ended');
      } while (cursor !== '0');
      return [...seen].sort();
    };
    for (const opts of [[], ['COUNT', 7], ['COUNT', 1000], ['MATCH', 'scan:a:*'], ['MATCH', 'scan:?:1*', 'COUNT', 3], ['TYPE', 'string'], ['TYPE', 'STRING', 'MATCH', '*9'], ['TYPE', 'list'], ['MATCH', 'nothing*']] as Arg[][]) {
      const [a, b] = await Promise.all([walk(r, opts), walk(o, opts)]);
      summary.steps++;
      summary.normalised++;
      t.same(b, a, `${proto} full SCAN ${opts.join(' ') || '(no options)'}: ${a.length} keys, compared as sets (cursors differ)`);
    }
    r.close();
    o.close();
  });

  t.test(`${proto}: HELLO, CLIENT and handshake replies`, async (t) => {
    const [r, o] = await pair(resp3);
    // HELLO's version and id differ by design (we present 7.2.4 and count our own ids):
    // compare every field name, type and value but those two.
    const helloCompare: Compare = (rr, or) => {
      const norm = (b: Buffer) => {
        const v = decode(b);
        if (v.t === '-') return str(v);
        return JSON.stringify(
          pairs(v).map(([k, val]) => [k, val.t, k === 'version' ? 'V' : k === 'id' ? 'ID' : Array.isArray(val.v) ? shape(val) : str(val)]),
        ) + v.t;
      };
      const a = norm(rr);
      const b = norm(or);
      return a === b ? undefined : `redis ${a} vs ours ${b}`;
    };
    await compareSteps(t, `${proto} HELLO`, r, o, [
      step(['HELLO'], helloCompare, 'version and id differ by design'),
      step(['HELLO', resp3 ? 3 : 2], helloCompare, 'version and id differ by design'),
      step(['HELLO', resp3 ? 3 : 2, 'SETNAME', 'helloname'], helloCompare, 'version and id differ by design'),
      step(['CLIENT', 'GETNAME']),
      step(['HELLO', resp3 ? 3 : 2, 'AUTH', 'default', 'whatever'], helloCompare, 'version and id differ by design'),
      step(['HELLO', resp3 ? 3 : 2, 'AUTH', 'default', 'pw', 'SETNAME', 'n2'], helloCompare, 'version and id differ by design'),
      step(['CLIENT', 'GETNAME']),
      step(['HELLO', 4]),
      step(['PING']),
      step(['GET', 'nope']),
      // CLIENT INFO / LIST: our lines carry Redis' field names with our own values.
      step(['CLIENT', 'INFO'], sameShape, 'field values (ids, fds, memory) are per-server'),
      step(['CLIENT', 'LIST'], sameShape, 'field values (ids, fds, memory) are per-server'),
      step(['CLIENT', 'LIST', 'TYPE', 'normal'], sameShape, 'field values are per-server'),
      step(['CONFIG', 'GET', 'save'], undefined),
      step(['CONFIG', 'GET', 'maxmemory'], undefined),
      step(['CONFIG', 'GET', 'appendonly'], sameShape, "our store is always an append-only log: 'yes' where Redis says 'no'"),
      step(['INFO'], sameShape, 'INFO contents are per-server; both a (verbatim) string'),
      step(['INFO', 'server'], sameShape, 'INFO contents are per-server'),
      step(['COMMAND', 'DOCS', 'get'], (rr, or) => {
        // Redis documents arguments (and more) we do not: compare the keys we both give.
        const a = pairs(decode(rr));
        const b = pairs(decode(or));
        if (a.length !== 1 || b.length !== 1 || a[0]![0] !== 'get' || b[0]![0] !== 'get') return `COMMAND DOCS get: ${show(rr)} vs ${show(or)}`;
        const ra = new Map(pairs(a[0]![1]).map(([k, v]) => [k, v]));
        for (const [k, v] of pairs(b[0]![1])) {
          const other = ra.get(k);
          if (!other) return `our COMMAND DOCS has '${k}' which Redis lacks`;
          if (k !== 'summary' && str(other) !== str(v)) return `COMMAND DOCS get ${k}: redis ${str(other)} vs ours ${str(v)}`;
        }
        return undefined;
      }, 'Redis documents arguments we do not'),
    ]);
    r.close();
    o.close();
  });
}

t.test('COMMAND INFO: arity and key positions match Redis for every command we have', async (t) => {
  const [r, o] = await pair(false);
  const ours = items(decode(await o.callBytes('COMMAND')));
  t.ok(ours.length >= 40, `we declare ${ours.length} commands`);
  for (const entry of ours) {
    const e = items(entry);
    const name = str(e[0]!);
    const theirs = items(decode(await r.callBytes('COMMAND', 'INFO', name)))[0]!;
    if (theirs.v === null) {
      t.comment(`${name}: not a Redis 7.0 command`);
      continue;
    }
    const te = items(theirs);
    summary.steps++;
    summary.normalised++;
    summary.commands.add('COMMAND INFO');
    t.same(
      [Number(e[1]!.v), Number(e[3]!.v), Number(e[4]!.v), Number(e[5]!.v)],
      [Number(te[1]!.v), Number(te[3]!.v), Number(te[4]!.v), Number(te[5]!.v)],
      `${name}: arity, first key, last key, step`,
    );
    t.ok(e.length >= 4 && te.length >= 4, `${name}: entries of >= 4 elements`);
    // Subcommands: each of ours with Redis' arity.
    const subs = items(e[9]!);
    const theirSubs = new Map(items(te[9]!).map((x) => [str(items(x)[0]!), items(x)]));
    for (const sub of subs) {
      const se = items(sub);
      const sname = str(se[0]!);
      const rs = theirSubs.get(sname);
      if (!rs) {
        t.comment(`${sname}: not a Redis 7.0 subcommand`);
        continue;
      }
      summary.steps++;
      summary.normalised++;
      t.equal(Number(se[1]!.v), Number(rs[1]!.v), `${sname}: arity`);
    }
  }
  r.close();
  o.close();
});

t.test('wrong arity for every command, from the arity Redis declares', async (t) => {
  const [r, o] = await pair(false);
  const ours = items(decode(await o.callBytes('COMMAND'))).map((e) => items(e));
  const steps: Array<Step & { info: string }> = [];
  for (const e of ours) {
    const name = str(e[0]!);
    const arity = Number(e[1]!.v);
    const too = (n: number) => ({ ...step([name.toUpperCase(), ...Array.from({ length: n - 1 }, (_, i) => `a${i}`)]), info: name });
    if (arity > 0) {
      steps.push(too(arity + 1));
      if (arity > 1) steps.push(too(arity - 1));
    } else if (-arity > 1) {
      steps.push(too(-arity - 1));
    }
    for (const sub of items(e[9]!).map((x) => items(x))) {
      const sname = str(sub[0]!);
      const sar = Number(sub[1]!.v);
      const [parent, child] = sname.split('|') as [string, string];
      const base = [parent.toUpperCase(), child.toUpperCase()];
      const subStep = (n: number) => ({ ...step([...base, ...Array.from({ length: n }, (_, i) => `a${i}`)]), info: sname });
      if (sar > 0) {
        steps.push(subStep(sar - 1));
        if (sar > 2) steps.push(subStep(sar - 3));
      } else if (-sar > 2) {
        steps.push(subStep(-sar - 3));
      }
    }
  }
  // Only the commands Redis 7.0 also has (CLIENT SETINFO / NO-TOUCH came in 7.2; CLUSTER OWNERS etc. are ours).
  const known: Step[] = [];
  for (const st of steps) {
    const info = items(decode(await r.callBytes('COMMAND', 'INFO', st.info)))[0]!;
    if (info.v !== null) known.push(st);
    else t.comment(`skipped (not a Redis 7.0 command): ${st.info}`);
  }
  t.ok(known.length > 50, `${known.length} wrong-arity requests`);
  await compareSteps(t, 'arity', r, o, known);
  r.close();
  o.close();
});

t.test('raw protocol: inline commands and protocol errors, byte for byte', async (t) => {
  // Each case: raw bytes written at once, then every reply until the server closes (or 300 ms of quiet).
  const cases: Array<[string, string | Buffer]> = [
    ['inline PING', 'PING\r\n'],
    ['inline PING without CR', 'PING\n'],
    ['inline with quotes', 'SET "inline key" \'inline value\'\r\nGET "inline key"\r\n'],
    ['inline with escapes', 'SET ik "a\\x41\\n\\t\\"q"\r\nGET ik\r\nSTRLEN ik\r\n'],
    ['inline single-quote escape', "ECHO 'it\\'s'\r\n"],
    ['inline extra spaces and empty lines', '\r\n\r\n   PING    hi   \r\n\n'],
    ['inline unbalanced quotes', 'SET "abc def\r\n'],
    ['inline closing quote not followed by space', 'ECHO "abc"def\r\nPING\r\n'],
    ['inline unknown command', 'FOO bar baz\r\n'],
    ['pipelined mix', '*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n'],
    ['*0 and *-1 are ignored', '*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n'],
    ['invalid multibulk length', '*abc\r\n'],
    ['multibulk length too large', '*2147483648\r\n'],
    ['negative bulk length', '*1\r\n$-5\r\n'],
    ['invalid bulk length', '*1\r\n$abc\r\n'],
    ['bulk length too large', '*1\r\n$600000000\r\n'],
    ["expected '$'", '*1\r\n+x\r\n'],
    ["expected '$' after a good arg", '*2\r\n$3\r\nGET\r\n:1\r\n'],
    ['replies before the protocol error still arrive', 'PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n'],
    ['leading zero in multibulk', '*01\r\n$4\r\nPING\r\n'],
    ['plus sign in multibulk', '*+1\r\n$4\r\nPING\r\n'],
    ['leading zero in bulk length', '*1\r\n$04\r\nPING\r\n'],
    ['bulk without CRLF terminator is still taken by length', '*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n'],
  ];
  for (const [name, bytes] of cases) {
    const collect = async (port: number) => {
      const c = await Conn.connect(port);
      c.write(bytes);
      const replies: string[] = [];
      for (;;) {
        try {
          replies.push((await c.replyBytes(300)).toString('latin1'));
        } catch {
          break;
        }
      }
      const closed = await c.waitClosed(300);
      c.close();
      return { replies, closed };
    };
    const [a, b] = await Promise.all([collect(redisPort), collect(node.port)]);
    summary.steps++;
    summary.exact++;
    t.same(b, a, `raw: ${name}`);
  }
  summary.commands.add('(inline and protocol errors)');
});

t.test('RESET and QUIT', async (t) => {
  for (const resp3 of [false, true]) {
    const [r, o] = await pair(resp3);
    await compareSteps(t, `RESET from ${resp3 ? 'RESP3' : 'RESP2'}`, r, o, [
      step(['CLIENT', 'SETNAME', 'before-reset']),
      step(['RESET']),
      step(['CLIENT', 'GETNAME']),
      step(['GET', 'nope']),
      step(['CONFIG', 'GET', 'save']),
    ]);
    const [a, b] = await Promise.all([r.callBytes('QUIT'), o.callBytes('QUIT')]);
    t.equal(b.toString(), a.toString(), 'QUIT answers as Redis');
    summary.commands.add('QUIT');
    summary.steps++;
    summary.exact++;
    t.ok(await r.waitClosed(), 'redis closed after QUIT');
    t.ok(await o.waitClosed(), 'we closed after QUIT');
    r.close();
    o.close();
  }
});

t.test('summary', async (t) => {
  // Which of our commands were exercised (unknown names sent on purpose are not counted).
  const o = await Conn.connect(node.port);
  const table = new Set<string>();
  for (const e of items(decode(await o.callBytes('COMMAND'))).map(items)) {
    const name = str(e[0]!).toUpperCase();
    table.add(name);
    for (const sub of items(e[9]!).map(items)) table.add(str(sub[0]!).toUpperCase().replace('|', ' '));
  }
  o.close();
  const covered = [...summary.commands].filter((c) => table.has(c));
  const parents = new Set(covered.map((c) => c.split(' ')[0]));
  const missing = [...table].filter((c) => !covered.includes(c) && !(c.includes(' ') ? false : parents.has(c)));
  t.comment(`our commands never compared against Redis: ${missing.join(', ') || 'none'}`);
  t.comment(`${covered.length} of our ${table.size} commands/subcommands compared with Redis ${redisVersion}`);
  t.comment(
    `compared ${summary.steps} requests in ${summary.sequences} sequences (${summary.exact} byte-exact, ` +
      `${summary.normalised} through a normaliser), on RESP2 and RESP3`,
  );
  t.ok(summary.steps > 1000, 'enough comparisons ran');
});
