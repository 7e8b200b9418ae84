// INCRBYFLOAT arithmetic exactly as Redis does it on x86-64: the value and the
// increment are parsed with strtold into an 80-bit x87 long double (64-bit
// significand, correctly rounded), added with one rounding to 64 bits, and the
// result printed with "%.17Lf" minus trailing zeros (Redis' LD_STR_HUMAN).
// A JS double gives different text (0.1 + 0.2 is "0.3" in Redis, not
// "0.30000000000000004"), and a different range (Redis accepts up to ~1.19e4932),
// so the long double is emulated with BigInts.

/** A finite long double: (-1)^neg * m * 2^e, with m < 2^64; or an infinity. */
export type LongDouble = { neg: boolean; m: bigint; e: number } | { neg: boolean; inf: true };

const PRECISION = 64;
/** Exponent of the smallest subnormal's unit (2^-16445). */
const E_MIN = -16382 - (PRECISION - 1);
/** Values at or above 2^16384 overflow. */
const E_OVERFLOW = 16384;
/** Redis' MAX_LONG_DOUBLE_CHARS: longer strings are not floats. */
const STRING_BYTES_MAX = 5 * 1024;

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

/**
 * Rounds the exact non-negative value p / q (times 2^shift) to 64 significant
 * bits, half to even, with subnormals; undefined when it overflows.
 */
function round(neg: boolean, p: bigint, q: bigint, shift: number): LongDouble | undefined {
  if (p === 0n) return { neg, m: 0n, e: 0 };
  // Choose e so that p/q / 2^e has 64 bits before the point.
  let e = bitLength(p) - bitLength(q) - PRECISION + shift;
  for (;;) {
    if (e < E_MIN) e = E_MIN;
    const rel = e - shift;
    const num = rel < 0 ? p << BigInt(-rel) : p;
    const den = rel > 0 ? q << BigInt(rel) : q;
    let m = num / den;
    const r = num - m * den;
    if (m >= 1n << BigInt(PRECISION)) {
      e++;
      continue;
    }
    if (m < 1n << BigInt(PRECISION - 1) && e > E_MIN) {
      e--;
      continue;
    }
    const twice = 2n * r;
    if (twice > den || (twice === den && (m & 1n) === 1n)) m++;
    if (m === 1n << BigInt(PRECISION)) {
      m >>= 1n;
      e++;
    }
    if (m !== 0n && bitLength(m) + e > E_OVERFLOW) return undefined;
    return { neg, m, e };
  }
}

const isDigit = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;
function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Redis' string2ld: the whole string must be a strtold number (decimal, hex
 * float, inf/infinity), without leading space or NaN; values that overflow or
 * underflow to zero are refused. Returns undefined when it is not a float.
 */
export function parseLongDouble(b: Buffer): LongDouble | undefined {
  if (b.length === 0 || b.length >= STRING_BYTES_MAX) return undefined;
  let i = 0;
  let neg = false;
  if (b[i] === 43 || b[i] === 45) {
    neg = b[i] === 45;
    i++;
  }
  const rest = b.toString('latin1', i).toLowerCase();
  if (rest === 'inf' || rest === 'infinity') return { neg, inf: true };
  if (b[i] === 48 && (b[i + 1] === 120 || b[i + 1] === 88) && (hexValue(b[i + 2]) >= 0 || (b[i + 2] === 46 && hexValue(b[i + 3]) >= 0))) {
    return parseHex(b, i + 2, neg);
  }
  let digits = '';
  let fracDigits = 0;
  let any = false;
  while (isDigit(b[i])) {
    digits += String.fromCharCode(b[i++]!);
    any = true;
  }
  if (b[i] === 46) {
    i++;
    while (isDigit(b[i])) {
      digits += String.fromCharCode(b[i++]!);
      fracDigits++;
      any = true;
    }
  }
  if (!any) return undefined;
  let exp = 0;
  if (b[i] === 101 || b[i] === 69) {
    i++;
    let eneg = false;
    if (b[i] === 43 || b[i] === 45) {
      eneg = b[i] === 45;
      i++;
    }
    if (!isDigit(b[i])) return undefined;
    let big = 0;
    while (isDigit(b[i])) {
      big = Math.min(big * 10 + (b[i++]! - 48), 1e9);
    }
    exp = eneg ? -big : big;
  }
  if (i !== b.length) return undefined;
  const mant = BigInt(digits);
  if (mant === 0n) return { neg, m: 0n, e: 0 };
  const scale = exp - fracDigits;
  // The leading digit's decimal exponent decides overflow / underflow before any big power is built.
  const lead = digits.replace(/^0+/, '').length - 1 + scale;
  if (lead > 4933) return undefined;
  if (lead < -4952) return undefined;
  const r = scale >= 0 ? round(neg, mant * 10n ** BigInt(scale), 1n, 0) : round(neg, mant, 10n ** BigInt(-scale), 0);
  if (r === undefined || ('m' in r && r.m === 0n)) return undefined; // ERANGE: overflow or underflow to zero
  return r;
}

function parseHex(b: Buffer, i: number, neg: boolean): LongDouble | undefined {
  let m = 0n;
  let fracDigits = 0;
  while (hexValue(b[i]) >= 0) m = m * 16n + BigInt(hexValue(b[i++]));
  if (b[i] === 46) {
    i++;
    while (hexValue(b[i]) >= 0) {
      m = m * 16n + BigInt(hexValue(b[i++]));
      fracDigits++;
    }
  }
  let exp = 0;
  if (b[i] === 112 || b[i] === 80) {
    let j = i + 1;
    let eneg = false;
    if (b[j] === 43 || b[j] === 45) {
      eneg = b[j] === 45;
      j++;
    }
    if (isDigit(b[j])) {
      let big = 0;
      while (isDigit(b[j])) big = Math.min(big * 10 + (b[j++]! - 48), 1e9);
      exp = eneg ? -big : big;
      i = j;
    }
  }
  if (i !== b.length) return undefined;
  if (m === 0n) return { neg, m: 0n, e: 0 };
  const shift = exp - 4 * fracDigits;
  if (bitLength(m) + shift > E_OVERFLOW + 1) return undefined;
  if (bitLength(m) + shift < E_MIN - 2) return undefined;
  const r = round(neg, m, 1n, shift);
  if (r === undefined || ('m' in r && r.m === 0n)) return undefined;
  return r;
}

/** a + b rounded to a long double; an infinity when it overflows (or an operand is infinite). */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble {
  if ('inf' in a || 'inf' in b) {
    // inf + -inf is NaN; Redis refuses NaN and infinity alike, so either infinity will do.
    return 'inf' in a ? a : b;
  }
  const e = Math.min(a.e, b.e);
  const va = (a.neg ? -a.m : a.m) << BigInt(a.e - e);
  const vb = (b.neg ? -b.m : b.m) << BigInt(b.e - e);
  const sum = va + vb;
  const neg = sum < 0n || (sum === 0n && a.neg && b.neg);
  const mag = sum < 0n ? -sum : sum;
  const r = e >= 0 ? round(neg, mag << BigInt(e), 1n, 0) : round(neg, mag, 1n, e);
  return r ?? { neg, inf: true };
}

/** Redis' ld2string(..., LD_STR_HUMAN): "%.17Lf", trailing zeros (and a bare '.') removed, "-0" as "0". */
export function formatLongDoubleHuman(v: LongDouble): string {
  if ('inf' in v) return v.neg ? '-inf' : 'inf';
  const FRAC = 17;
  const scale = 10n ** BigInt(FRAC);
  let q: bigint;
  if (v.e >= 0) {
    q = (v.m << BigInt(v.e)) * scale;
  } else {
    const num = v.m * scale;
    const den = 1n << BigInt(-v.e);
    q = num / den;
    const twice = 2n * (num - q * den);
    if (twice > den || (twice === den && (q & 1n) === 1n)) q++;
  }
  let digits = q.toString().padStart(FRAC + 1, '0');
  digits = `${digits.slice(0, -FRAC)}.${digits.slice(-FRAC)}`.replace(/0+$/, '').replace(/\.$/, '');
  const text = (v.neg ? '-' : '') + digits;
  return text === '-0' ? '0' : text;
}

export function isInfinite(v: LongDouble): boolean {
  return 'inf' in v;
}
