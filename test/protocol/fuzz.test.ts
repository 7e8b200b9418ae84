// Fuzz test of the request parser (protocol/resp.ts).
//
// A million inputs: random byte strings, and valid pipelined streams that are
// either left intact or mutated (bit flips, inserted/deleted bytes, truncation,
// duplicated spans, digits changed in "*<n>"/"$<n>" headers), each fed as one chunk
// and again cut at random points. Properties:
//   - next() never throws and is called a bounded number of times per input;
//   - no command has more than argsMax arguments or an argument over bulkBytesMax
//     (nor the unauthenticated limits while the parser is unauthenticated);
//   - bufferedBytes never exceeds queryBufferBytesMax by more than one chunk;
//   - errors carry a known text and are sticky;
//   - an intact valid stream gives exactly its commands, whatever the split;
//   - any input gives the same commands and error whatever the split, except that
//     "query buffer limit exceeded" depends on how much arrives at once (then the
//     commands before it must agree).
// The loop runs in a worker thread watched by the main thread, so an endless loop
// inside the parser is reported with the case that caused it instead of hanging.
//
// Reproduce a failure: FUZZ_SEED=<seed> FUZZ_CASE=<case> npx tap dist/test/protocol/fuzz.test.js
// Other knobs: FUZZ_INPUTS (default 1,000,000).

import { readFileSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ProtocolError, RequestParser, type ParserLimits } from '../../protocol/resp.js';
import { seededRandomFn } from '../../src/cluster/ports.js';

type Rng = () => number;

/** Seed of one case, from the run's seed and the case number. */
function caseSeed(seed: number, n: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(n + 0x632be59b, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

const int = (r: Rng, n: number): number => (r() * n) | 0;

const KNOWN_ERRORS = new Set([
  'invalid multibulk length',
  'invalid bulk length',
  'too big inline request',
  'unbalanced quotes in request',
  'unauthenticated multibulk length',
  'unauthenticated bulk length',
  'query buffer limit exceeded',
  'too big mbulk count string',
  'too big bulk count string',
]);
const isKnownError = (m: string): boolean => KNOWN_ERRORS.has(m) || /^expected '\$', got '[\s\S]'$/.test(m);

// --- Generators ----------------------------------------------------------------

const ALNUM = Buffer.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:{}.');
/** Bytes that matter to the grammar; after the first four, none is CR or LF. */
const INTERESTING = Buffer.from('*$\r\n-0123456789 "\'\\x\t\v\0aAf');
const CRLF = Buffer.from('\r\n');

function randBytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

function alnum(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = ALNUM[int(r, ALNUM.length)]!;
  return b;
}

interface Stream {
  bytes: Buffer;
  /** Expected commands, encoded as by encodeCmd. */
  cmds: string[];
  /** Holds a request over queryBufferBytesMax: whether it is refused depends on the chunking. */
  oversized: boolean;
  /** The error the stream ends with (a request just over bulkBytesMax or argsMax), or null. */
  error: string | null;
}

/** One command as a string, for comparisons. */
function encodeCmd(args: Buffer[]): string {
  let s = '';
  for (const a of args) s += a.length + ':' + a.toString('latin1') + ';';
  return s;
}

function genArg(r: Rng, maxLen: number): Buffer {
  const k = int(r, 100);
  let b: Buffer;
  if (k < 10) b = Buffer.alloc(0);
  else if (k < 50) b = alnum(r, 1 + int(r, 10));
  else if (k < 93) b = randBytes(r, int(r, 30));
  else if (k < 98) b = randBytes(r, 30 + int(r, 270));
  else b = randBytes(r, 300 + int(r, 701));
  if (b.length > 2 && int(r, 4) === 0) b.write('\r\n', int(r, b.length - 1), 'latin1');
  return b.length <= maxLen ? b : b.subarray(0, maxLen);
}

function genMultibulk(r: Rng, big: boolean, parts: Buffer[], cmds: string[], oversized = false): void {
  const argc = oversized ? 6 + int(r, 7) : int(r, 20) === 0 ? 1 + int(r, 50) : 1 + int(r, 5);
  // Keep the request well inside the query buffer limit so intact streams never hit it.
  let budget = big ? 250_000 : oversized ? 1e9 : 4000;
  const args: Buffer[] = [];
  for (let i = 0; i < argc; i++) {
    let a: Buffer;
    if (big && int(r, 3) === 0) a = randBytes(r, 20_000 + int(r, 60_000));
    else if (oversized) a = alnum(r, 500 + int(r, 501));
    else a = genArg(r, 1000);
    if (a.length + 18 > budget) a = Buffer.alloc(0);
    budget -= a.length + 18;
    args.push(a);
  }
  parts.push(Buffer.from(`*${argc}\r\n`));
  for (const a of args) parts.push(Buffer.from(`$${a.length}\r\n`), a, CRLF);
  cmds.push(encodeCmd(args));
}

const ESCAPES: Record<number, string> = { 10: '\\n', 13: '\\r', 9: '\\t', 8: '\\b', 7: '\\a', 34: '\\"', 92: '\\\\' };

function genInline(r: Rng, parts: Buffer[], cmds: string[]): void {
  const ntok = 1 + int(r, 6);
  const args: Buffer[] = [];
  let line = '';
  for (let i = 0; i < ntok; i++) {
    if (i > 0) line += [' ', '\t', '  ', ' \t '][int(r, 4)];
    const kind = i === 0 ? 0 : int(r, 3);
    if (kind === 0) {
      const a = alnum(r, 1 + int(r, 12));
      args.push(a);
      line += a.toString('latin1');
    } else if (kind === 1) {
      // Double quotes with escapes.
      const a = int(r, 2) === 0 ? randBytes(r, int(r, 10)) : alnum(r, int(r, 10));
      args.push(a);
      line += '"';
      for (const c of a) {
        const isAlnum = ALNUM.includes(c) && c !== 92;
        if (isAlnum && int(r, 4) !== 0) line += String.fromCharCode(c);
        else if (ESCAPES[c] !== undefined && int(r, 2) === 0) line += ESCAPES[c];
        else {
          const hex = c.toString(16).padStart(2, '0');
          line += '\\x' + (int(r, 2) === 0 ? hex : hex.toUpperCase());
        }
      }
      line += '"';
    } else {
      // Single quotes: no escapes but \'.
      let content = '';
      let text = '';
      const n = int(r, 10);
      for (let j = 0; j < n; j++) {
        const k = int(r, 8);
        if (k === 0) {
          content += "'";
          text += "\\'";
        } else if (k === 1) {
          content += ' ';
          text += ' ';
        } else if (k === 2) {
          content += '"';
          text += '"';
        } else {
          const ch = String.fromCharCode(ALNUM[int(r, ALNUM.length)]!);
          content += ch;
          text += ch;
        }
      }
      args.push(Buffer.from(content, 'latin1'));
      line += "'" + text + "'";
    }
  }
  if (int(r, 3) === 0) line = ' '.repeat(1 + int(r, 3)) + line; // leading blanks
  line += int(r, 2) === 0 ? '\r\n' : '\n';
  parts.push(Buffer.from(line, 'latin1'));
  cmds.push(encodeCmd(args));
}

function genStream(r: Rng, big = false): Stream {
  const parts: Buffer[] = [];
  const cmds: string[] = [];
  const n = 1 + int(r, big ? 3 : 4);
  // Some streams hold a request bigger than the query buffer limit (small limits only).
  const oversizedAt = !big && int(r, 80) === 0 ? int(r, n) : -1;
  // Some hold a request at, or one over, bulkBytesMax or argsMax (small limits only).
  const edgeAt = !big && int(r, 20) === 0 ? int(r, n) : -1;
  for (let i = 0; i < n; i++) {
    const k = int(r, 100);
    if (i === edgeAt) {
      const over = int(r, 2);
      const args =
        int(r, 2) === 0
          ? [alnum(r, 3), randBytes(r, smallLimits.bulkBytesMax + over)]
          : Array.from({ length: smallLimits.argsMax + over }, () => alnum(r, int(r, 4)));
      parts.push(Buffer.from(`*${args.length}\r\n`));
      for (const a of args) parts.push(Buffer.from(`$${a.length}\r\n`), a, CRLF);
      if (over) {
        const error = args.length > smallLimits.argsMax ? 'invalid multibulk length' : 'invalid bulk length';
        parts.push(Buffer.from('*1\r\n$4\r\nPING\r\nPING\r\n')); // never returned
        return { bytes: Buffer.concat(parts), cmds, oversized: false, error };
      }
      cmds.push(encodeCmd(args));
    } else if (i === oversizedAt) genMultibulk(r, big, parts, cmds, true);
    else if (k < 55 || big) genMultibulk(r, big, parts, cmds);
    else if (k < 85) genInline(r, parts, cmds);
    else if (k < 90) parts.push(Buffer.from(['\r\n', '\n', '  \t\r\n', ' \n'][int(r, 4)]!, 'latin1'));
    else if (k < 95) parts.push(Buffer.from('*0\r\n'));
    else parts.push(Buffer.from('*-1\r\n'));
  }
  return { bytes: Buffer.concat(parts), cmds, oversized: oversizedAt >= 0, error: null };
}

function randomInput(r: Rng): Buffer {
  const k = int(r, 100);
  const n = k < 2 ? int(r, 8000) : int(r, 64);
  const b = Buffer.allocUnsafe(n);
  // Uniform bytes, "interesting" bytes, or interesting bytes without CR/LF (long unfinished lines and headers).
  const alphabet = int(r, 3);
  const m = INTERESTING.length;
  for (let i = 0; i < n; i++) {
    b[i] = alphabet === 0 ? int(r, 256) : alphabet === 1 ? INTERESTING[int(r, m)]! : INTERESTING[4 + int(r, m - 4)]!;
  }
  if (n > 0 && int(r, 2) === 0) b[0] = int(r, 2) === 0 ? 42 : 36; // start like a header
  return b;
}

/** Offsets of "*" or "$" headers followed by a digit or '-'. */
function headerDigits(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < b.length; i++) {
    const c = b[i];
    if (c === 42 || c === 36) {
      const d = b[i + 1]!;
      if ((d >= 48 && d <= 57) || d === 45) out.push(i + 1);
    }
  }
  return out;
}

function mutate(r: Rng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = 1 + int(r, 4);
  for (let m = 0; m < n; m++) {
    const len = b.length;
    const pos = int(r, len + 1);
    switch (int(r, 7)) {
      case 0: // bit flip
        if (len > 0) b[int(r, len)] ^= 1 << int(r, 8);
        break;
      case 1: {
        // byte insertion
        const byte = int(r, 2) === 0 ? int(r, 256) : INTERESTING[int(r, INTERESTING.length)]!;
        b = Buffer.concat([b.subarray(0, pos), Buffer.from([byte]), b.subarray(pos)]);
        break;
      }
      case 2: // deletion
        b = Buffer.concat([b.subarray(0, pos), b.subarray(Math.min(len, pos + 1 + int(r, 4)))]);
        break;
      case 3: // truncation
        b = b.subarray(0, pos);
        break;
      case 4: {
        // duplicated span
        const start = int(r, len + 1);
        const span = b.subarray(start, Math.min(len, start + 1 + int(r, 64)));
        b = Buffer.concat([b.subarray(0, pos), span, b.subarray(pos)]);
        break;
      }
      case 5: {
        // digits of a length header
        const hs = headerDigits(b);
        if (hs.length === 0) break;
        const at = hs[int(r, hs.length)]!;
        const digit = Buffer.from([48 + int(r, 10)]);
        switch (int(r, 5)) {
          case 0:
            b[at] = digit[0]!;
            break;
          case 1:
            b = Buffer.concat([b.subarray(0, at), digit, b.subarray(at)]);
            break;
          case 2:
            b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
            break;
          case 3:
            b = Buffer.concat([b.subarray(0, at), Buffer.from('-'), b.subarray(at)]);
            break;
          default:
            b = Buffer.concat([b.subarray(0, at), Buffer.from(String(int(r, 100000))), b.subarray(at)]);
        }
        break;
      }
      default: // replaced by an interesting byte
        if (len > 0) b[int(r, len)] = INTERESTING[int(r, INTERESTING.length)]!;
    }
  }
  return b;
}

/** Cuts b at 1-4 random points, or into random sizes up to 1..maxChunk, or byte by byte if short. */
function split(r: Rng, b: Buffer, maxChunk: number): Buffer[] {
  const k = int(r, 100);
  const cuts: number[] = [];
  if (k < 60) {
    const n = 1 + int(r, 4);
    for (let i = 0; i < n; i++) cuts.push(int(r, b.length + 1));
    cuts.sort((x, y) => x - y);
  } else if (k < 90 || b.length > 128) {
    const max = 1 + int(r, maxChunk);
    for (let at = 1 + int(r, max); at < b.length; at += 1 + int(r, max)) cuts.push(at);
  } else {
    for (let at = 1; at < b.length; at++) cuts.push(at);
  }
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(b.subarray(prev, c));
    prev = c;
  }
  out.push(b.subarray(prev));
  return out;
}

const PING = Buffer.from('*1\r\n$4\r\nPING\r\n');

// --- One parse ------------------------------------------------------------------

interface Outcome {
  cmds: string[];
  error: string | null;
  /** A broken property, or null. */
  problem: string | null;
}

/**
 * Feeds the chunks, draining next() after each. With unauthenticated limits the
 * parser starts unauthenticated and is authenticated after `authAfter` commands.
 */
function parse(chunks: Buffer[], limits: ParserLimits, authAfter: number): Outcome {
  const p = new RequestParser(limits);
  const cmds: string[] = [];
  let total = 0;
  for (const c of chunks) total += c.length;
  // Every command consumes at least 2 bytes ("a\n"); one null per chunk; one error.
  const maxCalls = total + chunks.length + 2;
  let calls = 0;
  const fail = (problem: string): Outcome => ({ cmds, error: null, problem });
  try {
    for (const c of chunks) {
      p.feed(c);
      for (;;) {
        if (++calls > maxCalls) return fail(`next() called more than ${maxCalls} times without finishing`);
        const res = p.next();
        if (res === null) break;
        if (res instanceof ProtocolError) {
          if (!isKnownError(res.message)) return fail(`unknown error text ${JSON.stringify(res.message)}`);
          if (p.next() !== res) return fail('error not sticky');
          p.feed(PING);
          if (p.next() !== res) return fail('error not sticky after more input');
          return { cmds, error: res.message, problem: null };
        }
        if (!Array.isArray(res)) return fail(`next() returned ${String(res)}`);
        const argsMax = p.authenticated ? limits.argsMax : limits.unauthenticated!.argsMax;
        const bulkMax = p.authenticated ? limits.bulkBytesMax : limits.unauthenticated!.bulkBytesMax;
        if (res.length === 0) return fail('empty command returned');
        if (res.length > argsMax) return fail(`${res.length} arguments > ${argsMax}`);
        for (const a of res) {
          if (!Buffer.isBuffer(a)) return fail('argument not a Buffer');
          if (a.length > bulkMax) return fail(`argument of ${a.length} bytes > ${bulkMax}`);
        }
        cmds.push(encodeCmd(res));
        if (cmds.length === authAfter) p.authenticated = true;
      }
      const buffered = p.bufferedBytes;
      if (!(buffered >= 0) || buffered > limits.queryBufferBytesMax + c.length) {
        return fail(`bufferedBytes ${buffered} > queryBufferBytesMax ${limits.queryBufferBytesMax} + chunk ${c.length}`);
      }
    }
  } catch (e) {
    return fail(`threw ${(e as Error)?.stack ?? String(e)}`);
  }
  return { cmds, error: null, problem: null };
}

const smallLimits: ParserLimits = { bulkBytesMax: 1000, argsMax: 50, inlineBytesMax: 200, queryBufferBytesMax: 5000 };
// The unauthenticated bulk limit stays above inlineBytesMax: inline arguments are only bounded by the line
// length (as in Redis, which applies no unauthenticated limit to inline requests).
const smallUnauth: ParserLimits = { ...smallLimits, unauthenticated: { argsMax: 10, bulkBytesMax: 300 } };
const bigLimits: ParserLimits = {
  bulkBytesMax: 100_000,
  argsMax: 50,
  inlineBytesMax: 200,
  queryBufferBytesMax: 300_000,
};

interface CaseResult {
  kind: string;
  problem: string | null;
  /** The protocol error of the split run, if any. */
  error?: string | null;
  input: Buffer;
  chunks: Buffer[];
}

function sameCmds(a: string[], b: string[], n = Math.max(a.length, b.length)): boolean {
  if (a.length < n || b.length < n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Runs case n: builds the input from its own seed, parses it whole and split, checks. */
function runCase(seed: number, n: number, pool: Stream[], big: boolean): CaseResult {
  const r = seededRandomFn(caseSeed(seed, n));
  const k = int(r, 100);
  let kind: string;
  let input: Buffer;
  let expected: string[] | null = null;
  let expectedError: string | null = null;
  if (big) {
    const s = genStream(r, true);
    if (k < 40) {
      kind = 'big intact';
      input = s.bytes;
      expected = s.cmds;
    } else {
      kind = 'big mutated';
      input = mutate(r, s.bytes);
    }
  } else if (k < 15) {
    kind = 'random';
    input = randomInput(r);
  } else {
    const s = pool[int(r, pool.length)]!;
    if (k < 27 && s.oversized) {
      kind = 'oversized';
      input = s.bytes;
    } else if (k < 27) {
      kind = s.error === null ? 'intact' : 'intact over a limit';
      input = s.bytes;
      expected = s.cmds;
      expectedError = s.error;
    } else {
      kind = 'mutated';
      input = mutate(r, s.bytes);
    }
  }
  const unauth = expected === null && !big && int(r, 5) === 0;
  const limits = big ? bigLimits : unauth ? smallUnauth : smallLimits;
  const authAfter = unauth ? 1 + int(r, 4) : -1;
  const chunks = split(r, input, big ? 8192 : 64);
  const res: CaseResult = { kind, problem: null, input, chunks };

  const whole = parse([input], limits, authAfter);
  if (whole.problem) return { ...res, problem: `(one chunk) ${whole.problem}` };
  const parts = parse(chunks, limits, authAfter);
  if (parts.problem) return { ...res, problem: `(split) ${parts.problem}` };
  res.error = parts.error;

  if (expected !== null) {
    for (const [name, o] of [
      ['one chunk', whole],
      ['split', parts],
    ] as const) {
      if (o.error !== expectedError) {
        return { ...res, problem: `(${name}) intact stream gave error ${o.error}, expected ${expectedError}` };
      }
      if (!sameCmds(o.cmds, expected)) {
        return { ...res, problem: `(${name}) intact stream: ${o.cmds.length} commands, expected ${expected.length}` };
      }
    }
  }
  const qlimit = 'query buffer limit exceeded';
  if (whole.error === qlimit || parts.error === qlimit) {
    if (!sameCmds(whole.cmds, parts.cmds, Math.min(whole.cmds.length, parts.cmds.length))) {
      return { ...res, problem: 'commands before the query buffer error differ between one chunk and split' };
    }
  } else if (whole.error !== parts.error || !sameCmds(whole.cmds, parts.cmds)) {
    return {
      ...res,
      problem:
        `one chunk vs split differ: ${whole.cmds.length} cmds/${whole.error} vs ` +
        `${parts.cmds.length} cmds/${parts.error}`,
    };
  }
  return res;
}

function buildPool(seed: number): Stream[] {
  const r = seededRandomFn(seed ^ 0x5a5a5a5a);
  return Array.from({ length: 4096 }, () => genStream(r));
}

interface WorkerJob {
  seed: number;
  from: number;
  to: number;
  big: boolean;
  progress: SharedArrayBuffer;
}

interface WorkerReport {
  failures: Array<{ n: number; kind: string; problem: string; input: string; chunks: number[] }>;
  kinds: Record<string, number>;
  errors: Record<string, number>;
  inputBytes: number;
  ms: number;
  /** CPU time of the worker thread, when the platform tells. */
  cpuMs: number | null;
}

/** CPU time used by the calling thread (Linux), or null: wall time is then used instead. */
function threadCpuMs(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime, in 1/100 s
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}

function work(job: WorkerJob): WorkerReport {
  const cpuStart = threadCpuMs();
  const started = Date.now();
  const progress = new Int32Array(job.progress);
  const pool = buildPool(job.seed);
  const report: WorkerReport = { failures: [], kinds: {}, errors: {}, inputBytes: 0, ms: 0, cpuMs: null };
  for (let n = job.from; n < job.to; n++) {
    Atomics.store(progress, 0, n);
    const res = runCase(job.seed, n, pool, job.big);
    report.kinds[res.kind] = (report.kinds[res.kind] ?? 0) + 1;
    report.inputBytes += res.input.length;
    const e = res.error === undefined ? '(not run)' : res.error === null ? '(none)' : res.error.replace(/got '.'/s, "got 'x'");
    report.errors[e] = (report.errors[e] ?? 0) + 1;
    if (res.problem !== null && report.failures.length < 10) {
      report.failures.push({
        n,
        kind: res.kind,
        problem: res.problem,
        input: JSON.stringify(res.input.subarray(0, 400).toString('latin1')) + (res.input.length > 400 ? '...' : ''),
        chunks: res.chunks.slice(0, 50).map((c) => c.length),
      });
    }
  }
  Atomics.store(progress, 1, 1);
  report.ms = Date.now() - started;
  const cpuEnd = threadCpuMs();
  report.cpuMs = cpuStart !== null && cpuEnd !== null ? cpuEnd - cpuStart : null;
  return report;
}

if (!isMainThread) {
  parentPort!.postMessage(work(workerData as WorkerJob));
} else {
  const { availableParallelism } = await import('node:os');
  const t = (await import('tap')).default;
  type Subtest = Parameters<Parameters<typeof t.test>[0]>[0];
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x2024cafe;
  const only = process.env.FUZZ_CASE !== undefined ? Number(process.env.FUZZ_CASE) : null;
  const inputs = Number(process.env.FUZZ_INPUTS ?? 1_000_000);
  const repro = (n: number, big: boolean) =>
    `FUZZ_SEED=${seed} FUZZ_CASE=${n}${big ? ' FUZZ_BIG=1' : ''} npx tap dist/test/protocol/fuzz.test.js`;

  /** Runs cases [from, to) in a worker; reports the case it is stuck on if it stops making progress. */
  const inWorker = (from: number, to: number, big: boolean, stallMs: number) =>
    new Promise<WorkerReport | { stalledAt: number }>((resolve, reject) => {
      const progress = new SharedArrayBuffer(8);
      const view = new Int32Array(progress);
      Atomics.store(view, 0, from);
      const job: WorkerJob = { seed, from, to, big, progress };
      const w = new Worker(new URL(import.meta.url), { workerData: job, execArgv: [] });
      let last = -1;
      let lastChange = Date.now();
      const timer = setInterval(() => {
        const cur = Atomics.load(view, 0);
        if (cur !== last) {
          last = cur;
          lastChange = Date.now();
        } else if (Atomics.load(view, 1) === 0 && Date.now() - lastChange > stallMs) {
          clearInterval(timer);
          void w.terminate();
          resolve({ stalledAt: cur });
        }
      }, 50);
      w.once('message', (m: WorkerReport) => {
        clearInterval(timer);
        resolve(m);
      });
      w.once('error', (e) => {
        clearInterval(timer);
        reject(e);
      });
    });

  /** Runs cases [0, count) split over the available cores (at most 2) and checks the reports. */
  const fuzz = async (t: Subtest, count: number, big: boolean) => {
    const workers = Math.max(1, Math.min(2, availableParallelism()));
    const per = Math.ceil(count / workers);
    const reports = await Promise.all(
      Array.from({ length: workers }, (_, i) => inWorker(i * per, Math.min(count, (i + 1) * per), big, 5000)),
    );
    let total = 0;
    let failures = 0;
    let cpuMs: number | null = 0;
    let bytes = 0;
    const kinds: Record<string, number> = {};
    const errors: Record<string, number> = {};
    for (const rep of reports) {
      if ('stalledAt' in rep) {
        t.fail(`parser hung on case ${rep.stalledAt} (seed ${seed}); reproduce: ${repro(rep.stalledAt, big)}`);
        failures++;
        continue;
      }
      for (const f of rep.failures) {
        t.fail(`case ${f.n} (${f.kind}), seed ${seed}: ${f.problem}`, {
          input: f.input,
          chunks: f.chunks,
          reproduce: repro(f.n, big),
        });
      }
      failures += rep.failures.length;
      cpuMs = cpuMs === null || rep.cpuMs === null ? null : Math.max(cpuMs, rep.cpuMs);
      bytes += rep.inputBytes;
      for (const [k, v] of Object.entries(rep.errors)) errors[k] = (errors[k] ?? 0) + v;
      for (const [k, v] of Object.entries(rep.kinds)) {
        kinds[k] = (kinds[k] ?? 0) + v;
        total += v;
      }
    }
    t.comment(`seed ${seed}: ${total} inputs ${JSON.stringify(kinds)}, ${(bytes / 1e6).toFixed(1)} MB, ${workers} workers`);
    t.comment(`outcomes (split run): ${JSON.stringify(errors)}`);
    // Every error path was reached (a generator change that stops reaching one should be noticed).
    if (!big) {
      for (const e of KNOWN_ERRORS) {
        if (e.startsWith('too big') && e.includes('count')) continue; // needs 64 KiB, see parser.test
        t.ok((errors[e] ?? 0) > 0, `reached "${e}"`);
      }
      t.ok((errors["expected '$', got 'x'"] ?? 0) > 0, `reached "expected '$', got ..."`);
    }
    t.ok(total === count, `ran all ${count} inputs (${total})`);
    t.ok(failures === 0, `no broken property (seed ${seed})`);
    return cpuMs;
  };

  if (only !== null) {
    const big = process.env.FUZZ_BIG === '1';
    t.test(`case ${only} of seed ${seed}`, async (t) => {
      const pool = big ? [] : buildPool(seed);
      const res = runCase(seed, only, pool, big);
      t.comment(`kind ${res.kind}, chunks ${JSON.stringify(res.chunks.map((c) => c.length))}`);
      const shown = res.input.subarray(0, 4000).toString('latin1');
      t.comment(`input (${res.input.length} bytes) ${JSON.stringify(shown)}${res.input.length > 4000 ? '...' : ''}`);
      t.equal(res.problem, null, res.problem ?? 'no problem');
    });
  } else {
    t.test(`${inputs} inputs, small limits`, async (t) => {
      t.comment(`seed ${seed} (set FUZZ_SEED to change)`);
      const started = Date.now();
      const cpuMs = await fuzz(t, inputs, false);
      const ms = Date.now() - started;
      // The budget is on the busiest worker's own CPU time, so a machine loaded by other work
      // does not fail the test; the wall time is what it takes on an otherwise idle machine.
      const spent = cpuMs ?? ms;
      t.ok(spent < 15_000, `${cpuMs === null ? 'wall' : 'CPU'} time ${spent} ms < 15 s (wall time ${ms} ms)`);
    });
    t.test('big bulks (>= 32 KiB, bulkBytesMax 100000) mutated and split', async (t) => {
      await fuzz(t, 200, true);
    });
  }
}
