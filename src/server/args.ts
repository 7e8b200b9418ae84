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

/** Redis glob matching (KEYS, SCAN MATCH, CONFIG GET): * ? [abc] [^a] [a-z] and \ escapes, over bytes. */
export function globMatch(pattern: Buffer, str: Buffer, nocase = false): boolean {
  return matchFrom(pattern, 0, str, 0, nocase, 0);
}

function lower(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

function matchFrom(p: Buffer, pi: number, s: Buffer, si: number, nocase: boolean, depth: number): boolean {
  // Redis caps recursion of '*' to stop pathological patterns; we do the same.
  if (depth > 1000) return false;
  while (pi < p.length) {
    const pc = p[pi]!;
    if (pc === 42 /* * */) {
      while (pi + 1 < p.length && p[pi + 1] === 42) pi++;
      if (pi + 1 === p.length) return true;
      for (let k = si; k <= s.length; k++) {
        if (matchFrom(p, pi + 1, s, k, nocase, depth + 1)) return true;
      }
      return false;
    }
    if (si >= s.length) return false;
    if (pc === 63 /* ? */) {
      si++;
      pi++;
      continue;
    }
    if (pc === 91 /* [ */) {
      pi++;
      const not = p[pi] === 94; /* ^ */
      if (not) pi++;
      let matched = false;
      const c = nocase ? lower(s[si]!) : s[si]!;
      while (pi < p.length && p[pi] !== 93 /* ] */) {
        if (p[pi] === 92 && pi + 1 < p.length) {
          pi++;
          if ((nocase ? lower(p[pi]!) : p[pi]) === c) matched = true;
        } else if (pi + 2 < p.length && p[pi + 1] === 45 /* - */ && p[pi + 2] !== 93) {
          let a = p[pi]!;
          let b = p[pi + 2]!;
          if (a > b) [a, b] = [b, a];
          if (nocase) {
            a = lower(a);
            b = lower(b);
          }
          if (c >= a && c <= b) matched = true;
          pi += 2;
        } else if ((nocase ? lower(p[pi]!) : p[pi]) === c) {
          matched = true;
        }
        pi++;
      }
      if (not) matched = !matched;
      if (!matched) return false;
      pi++; // past ']' (or the end of an unterminated class)
      si++;
      continue;
    }
    let want = pc;
    if (pc === 92 /* \ */ && pi + 1 < p.length) {
      pi++;
      want = p[pi]!;
    }
    const have = s[si]!;
    if (nocase ? lower(want) !== lower(have) : want !== have) return false;
    pi++;
    si++;
  }
  return si === s.length;
}
