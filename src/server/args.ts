// Parsing of command arguments exactly as Redis does it: integers (string2ll),
// floats (strtold without spaces or NaN), and glob patterns (stringmatchlen).

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/**
 * Parses a Redis integer argument: optional '-', no '+', no leading zeros, no
 * spaces, within int64. Returns a bigint when outside ±2^53 so no precision is lost.
 */
export function parseInteger(b: Buffer): number | bigint | undefined {
  const n = b.length;
  if (n === 0 || n > 20) return undefined;
  let i = 0;
  const negative = b[0] === 45;
  if (negative) {
    i = 1;
    if (n === 1) return undefined;
  }
  if (b[i] === 48 && n > i + 1) return undefined; // leading zero
  if (negative && b[i] === 48) return undefined; // "-0"
  let v = 0;
  for (let j = i; j < n; j++) {
    const d = b[j]! - 48;
    if (d < 0 || d > 9) return undefined;
    v = v * 10 + d;
  }
  if (v <= Number.MAX_SAFE_INTEGER) return negative ? -v : v;
  const big = BigInt(b.toString('latin1'));
  if (big > INT64_MAX || big < INT64_MIN) return undefined;
  return big;
}

/** An integer argument as a JS number if it is exactly representable, else undefined. */
export function parseSafeInteger(b: Buffer): number | undefined {
  const v = parseInteger(b);
  return typeof v === 'number' ? v : undefined;
}

/** Parses a Redis float argument (INCRBYFLOAT): decimal or exponent, inf allowed, no NaN or spaces. */
export function parseFloatArg(b: Buffer): number | undefined {
  const s = b.toString('latin1');
  if (s.length === 0 || s.length > 5000) return undefined;
  const lower = s.toLowerCase();
  if (lower === 'inf' || lower === '+inf' || lower === 'infinity' || lower === '+infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) return undefined;
  const v = Number(s);
  return Number.isNaN(v) ? undefined : v;
}

/** Formats a float result as Redis' INCRBYFLOAT does: plain decimal, no exponent, no trailing zeros. */
export function formatFloatHuman(v: number): string {
  if (Number.isInteger(v)) return BigInt(v).toString();
  const s = String(v);
  if (!s.includes('e')) return s;
  // Small magnitudes come out as 1e-7: spell them out with enough digits, then trim zeros.
  return v.toFixed(20).replace(/0+$/, '').replace(/\.$/, '');
}

/** Argument equals an ASCII keyword, ignoring case (SET's EX, NX, ...). */
export function isKeyword(b: Buffer, upper: string): boolean {
  if (b.length !== upper.length) return false;
  for (let i = 0; i < b.length; i++) {
    let c = b[i]!;
    if (c >= 97 && c <= 122) c -= 32;
    if (c !== upper.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Redis glob matching (KEYS, SCAN MATCH, CONFIG GET): a port of Redis 7's
 * stringmatchlen, byte for byte, corner cases included: an unterminated class
 * takes what follows as members, "[a-]" is the range from ']' to 'a', a
 * trailing backslash matches itself, and "*" needs at least the empty rest.
 */
export function globMatch(pattern: Buffer, str: Buffer, nocase = false): boolean {
  return matchFrom(pattern, 0, str, 0, nocase, 0, { skipLonger: false });
}

function lower(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

function matchFrom(p: Buffer, pi: number, s: Buffer, si: number, nocase: boolean, nesting: number, state: { skipLonger: boolean }): boolean {
  // Redis caps the recursion of '*' to stop pathological patterns; we do the same.
  if (nesting > 1000) return false;
  // Bytes past the end read as 0, as C reads the NUL terminator.
  const at = (i: number): number => (i < p.length ? p[i]! : 0);
  while (pi < p.length && si < s.length) {
    const pc = p[pi]!;
    if (pc === 42 /* * */) {
      while (pi < p.length && at(pi + 1) === 42) pi++;
      if (p.length - pi === 1) return true;
      while (si < s.length) {
        if (matchFrom(p, pi + 1, s, si, nocase, nesting + 1, state)) return true;
        if (state.skipLonger) return false;
        si++;
      }
      state.skipLonger = true;
      return false;
    } else if (pc === 63 /* ? */) {
      si++;
    } else if (pc === 91 /* [ */) {
      pi++;
      const not = at(pi) === 94; /* ^ */
      if (not) pi++;
      let match = false;
      const sc = s[si]!;
      for (;;) {
        const left = p.length - pi;
        if (at(pi) === 92 /* \ */ && left >= 2) {
          pi++;
          if (p[pi] === sc) match = true;
        } else if (at(pi) === 93 /* ] */ && left > 0) {
          break;
        } else if (left <= 0) {
          pi--;
          break;
        } else if (left >= 3 && p[pi + 1] === 45 /* - */) {
          let start = p[pi]!;
          let end = p[pi + 2]!;
          let c = sc;
          if (start > end) [start, end] = [end, start];
          if (nocase) {
            start = lower(start);
            end = lower(end);
            c = lower(c);
          }
          pi += 2;
          if (c >= start && c <= end) match = true;
        } else if (nocase ? lower(p[pi]!) === lower(sc) : p[pi] === sc) {
          match = true;
        }
        pi++;
      }
      if (not) match = !match;
      if (!match) return false;
      si++;
    } else {
      if (pc === 92 /* \ */ && p.length - pi >= 2) pi++;
      const want = p[pi]!;
      const have = s[si]!;
      if (nocase ? lower(want) !== lower(have) : want !== have) return false;
      si++;
    }
    pi++;
    if (si === s.length) {
      while (at(pi) === 42) pi++;
      break;
    }
  }
  return pi >= p.length && si === s.length;
}
