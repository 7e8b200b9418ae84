// ReplyWriter (protocol/resp.ts): every reply type byte-exact on RESP2 and RESP3,
// the RESP2 downgrades, big bulks on the zero-copy path keeping their order among
// small replies, and take() never handing out memory it writes again.

import t from 'tap';
import {
  BooleanReply,
  BulkText,
  DoubleReply,
  ErrorReply,
  formatDouble,
  MapReply,
  NullArray,
  OK,
  ReplyWriter,
  SetReply,
  VerbatimReply,
  type Reply,
} from '../../protocol/resp.js';

/** Encodes the replies on a fresh writer; checks pendingBytes against what take() returns. */
function encode(resp3: boolean, ...replies: Reply[]): Buffer {
  const w = new ReplyWriter(resp3);
  for (const r of replies) w.write(r);
  const pending = w.pendingBytes;
  const out = Buffer.concat(w.take());
  if (pending !== out.length) throw new Error(`pendingBytes ${pending} != ${out.length} bytes taken`);
  if (w.pendingBytes !== 0) throw new Error('pendingBytes not reset by take()');
  return out;
}
/** The encoding as latin1 text, byte for byte. */
const enc2 = (...r: Reply[]) => encode(false, ...r).toString('latin1');
const enc3 = (...r: Reply[]) => encode(true, ...r).toString('latin1');
/** UTF-8 text to its bytes as a latin1 string, to compare with enc2/enc3. */
const u8 = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

t.test('null', async (t) => {
  t.equal(enc2(null), '$-1\r\n');
  t.equal(enc3(null), '_\r\n');
  t.equal(enc2(NullArray), '*-1\r\n');
  t.equal(enc3(NullArray), '_\r\n');
});

t.test('simple strings', async (t) => {
  t.equal(enc2(OK), '+OK\r\n');
  t.equal(enc3('PONG'), '+PONG\r\n');
  t.equal(enc2(''), '+\r\n');
});

t.test('errors', async (t) => {
  t.equal(enc2(new ErrorReply('ERR syntax error')), '-ERR syntax error\r\n');
  t.equal(enc3(new ErrorReply('WRONGTYPE Operation against a key')), '-WRONGTYPE Operation against a key\r\n');
  // CR/LF inside would end the error early and desync the client: they become spaces.
  t.equal(enc2(new ErrorReply('ERR bad\r\nthing')), '-ERR bad thing\r\n');
  t.equal(enc2(new ErrorReply('ERR a\rb\nc')), '-ERR a b c\r\n');
  t.equal(enc3(new ErrorReply("ERR Protocol error: expected '$', got '\r'")), "-ERR Protocol error: expected '$', got ' '\r\n");
  const e = enc2(new ErrorReply('ERR x\n\n\r\ny\r'));
  t.equal(e.indexOf('\r'), e.length - 2, 'only the final CR');
  t.equal(e.indexOf('\n'), e.length - 1, 'only the final LF');
  t.equal(enc2(new ErrorReply('ERR é €')), '-' + u8('ERR é €') + '\r\n', 'UTF-8 message');
});

t.test('integers', async (t) => {
  t.equal(enc2(0), ':0\r\n');
  t.equal(enc2(-1), ':-1\r\n');
  t.equal(enc3(42), ':42\r\n');
  t.equal(enc2(Number.MAX_SAFE_INTEGER), ':9007199254740991\r\n');
  t.equal(enc2(-Number.MAX_SAFE_INTEGER), ':-9007199254740991\r\n');
  t.equal(enc2(9223372036854775807n), ':9223372036854775807\r\n', 'bigint max int64');
  t.equal(enc3(-9223372036854775808n), ':-9223372036854775808\r\n', 'bigint min int64');
  t.equal(enc2(0n), ':0\r\n');
});

t.test('bulk strings', async (t) => {
  t.equal(enc2(Buffer.from('hello')), '$5\r\nhello\r\n');
  t.equal(enc3(Buffer.from('hello')), '$5\r\nhello\r\n', 'same on RESP3');
  t.equal(enc2(Buffer.alloc(0)), '$0\r\n\r\n');
  const bin = Buffer.from([0, 13, 10, 255, 36, 42, 13, 10]);
  t.equal(enc2(bin), '$8\r\n\x00\r\n\xff$*\r\n\r\n', 'binary, CRLF inside');
  t.equal(enc2(new BulkText('hello')), '$5\r\nhello\r\n');
  t.equal(enc2(new BulkText('héllo €')), '$10\r\n' + u8('héllo €') + '\r\n', 'UTF-8 length in bytes');
  t.equal(enc3(new BulkText('😀')), '$4\r\n\xf0\x9f\x98\x80\r\n', 'astral char: 4 bytes');
  t.equal(enc2(new BulkText('')), '$0\r\n\r\n');
  const long = 'ä'.repeat(70_000); // 140,000 bytes: more than one output chunk
  t.equal(enc2(new BulkText(long)), '$140000\r\n' + u8(long) + '\r\n', 'text bigger than a chunk');
});

t.test('arrays', async (t) => {
  t.equal(enc2([]), '*0\r\n');
  t.equal(
    enc2([1, [Buffer.from('a'), null], [], OK]),
    '*4\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*0\r\n+OK\r\n',
    'nested, null inside (RESP2)',
  );
  t.equal(enc3([1, [Buffer.from('a'), null], [], OK]), '*4\r\n:1\r\n*2\r\n$1\r\na\r\n_\r\n*0\r\n+OK\r\n', 'RESP3');
  t.equal(enc2([[[[]]]]), '*1\r\n*1\r\n*1\r\n*0\r\n', 'deeply nested');
  t.equal(enc2([new ErrorReply('ERR x'), 5n, NullArray]), '*3\r\n-ERR x\r\n:5\r\n*-1\r\n', 'mixed');
});

t.test('maps', async (t) => {
  const m = new MapReply([
    [Buffer.from('a'), 1],
    [Buffer.from('b'), new MapReply([[OK, null]])],
  ]);
  t.equal(enc3(m), '%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n%1\r\n+OK\r\n_\r\n');
  t.equal(enc2(m), '*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*2\r\n+OK\r\n$-1\r\n', 'flattened on RESP2');
  t.equal(enc3(new MapReply([])), '%0\r\n');
  t.equal(enc2(new MapReply([])), '*0\r\n');
});

t.test('sets', async (t) => {
  const s = new SetReply([Buffer.from('x'), 2, new SetReply([])]);
  t.equal(enc3(s), '~3\r\n$1\r\nx\r\n:2\r\n~0\r\n');
  t.equal(enc2(s), '*3\r\n$1\r\nx\r\n:2\r\n*0\r\n');
});

t.test('doubles', async (t) => {
  t.equal(enc3(new DoubleReply(1.5)), ',1.5\r\n');
  t.equal(enc2(new DoubleReply(1.5)), '$3\r\n1.5\r\n', 'bulk string on RESP2');
  t.equal(enc3(new DoubleReply(3)), ',3\r\n', 'integral: no decimal point');
  t.equal(enc3(new DoubleReply(-2)), ',-2\r\n');
  t.equal(enc3(new DoubleReply(Infinity)), ',inf\r\n');
  t.equal(enc3(new DoubleReply(-Infinity)), ',-inf\r\n');
  t.equal(enc3(new DoubleReply(NaN)), ',nan\r\n');
  t.equal(enc2(new DoubleReply(Infinity)), '$3\r\ninf\r\n');
  t.equal(enc2(new DoubleReply(-Infinity)), '$4\r\n-inf\r\n');
  t.equal(enc2(new DoubleReply(NaN)), '$3\r\nnan\r\n');
  t.equal(enc3(new DoubleReply(0.1)), ',0.1\r\n', 'shortest round-trip form');
  t.equal(enc3(new DoubleReply(1e21)), ',1e+21\r\n', 'as Redis: 1e+21');
  t.equal(enc3(new DoubleReply(1e16)), ',10000000000000000\r\n');
  t.equal(enc2(new DoubleReply(-0.000123)), '$9\r\n-0.000123\r\n');
  t.equal(formatDouble(2.5e-7), '2.5e-7');
  t.equal(formatDouble(1 / 3), '0.3333333333333333');
  // Whatever the form, it must parse back to the same double, and never contain CR/LF/space.
  let x = 0x9e3779b9;
  const f64 = new Float64Array(1);
  const u32 = new Uint32Array(f64.buffer);
  let bad = 0;
  for (let i = 0; i < 20000; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    u32[0] = x >>> 0;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    u32[1] = x >>> 0;
    const v = f64[0]!;
    const s = formatDouble(v);
    const back = s === 'inf' ? Infinity : s === '-inf' ? -Infinity : s === 'nan' ? NaN : Number(s);
    if (/[\s]/.test(s) || !(Object.is(back, v) || (v === 0 && back === 0) || (Number.isNaN(v) && Number.isNaN(back)))) {
      if (bad++ < 5) t.fail(`formatDouble(${v}) = ${s}`);
    }
  }
  t.equal(bad, 0, 'random doubles round-trip');
});

t.test('booleans', async (t) => {
  t.equal(enc3(new BooleanReply(true)), '#t\r\n');
  t.equal(enc3(new BooleanReply(false)), '#f\r\n');
  t.equal(enc2(new BooleanReply(true)), ':1\r\n');
  t.equal(enc2(new BooleanReply(false)), ':0\r\n');
});

t.test('verbatim strings', async (t) => {
  t.equal(enc3(new VerbatimReply('hello')), '=9\r\ntxt:hello\r\n');
  t.equal(enc2(new VerbatimReply('hello')), '$5\r\nhello\r\n', 'bulk string on RESP2');
  t.equal(enc3(new VerbatimReply('# Server\r\nx:1\r\n')), '=19\r\ntxt:# Server\r\nx:1\r\n\r\n', 'CRLF inside');
  t.equal(enc3(new VerbatimReply('héllo', 'mkd')), '=10\r\nmkd:' + u8('héllo') + '\r\n', 'UTF-8, mkd');
  t.equal(enc2(new VerbatimReply('héllo', 'mkd')), '$6\r\n' + u8('héllo') + '\r\n');
});

t.test('not a reply', async (t) => {
  const w = new ReplyWriter();
  t.throws(() => w.write(undefined as unknown as Reply), TypeError);
  t.throws(() => w.write({} as unknown as Reply), TypeError);
});

t.test('switching protocol on the same writer', async (t) => {
  const w = new ReplyWriter(false);
  w.write(null);
  w.resp3 = true;
  w.write(null);
  w.write(new MapReply([[1, 2]]));
  w.resp3 = false;
  w.write(new BooleanReply(true));
  t.equal(Buffer.concat(w.take()).toString('latin1'), '$-1\r\n_\r\n%1\r\n:1\r\n:2\r\n:1\r\n');
});

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

t.test('big bulks mixed with small replies keep order', async (t) => {
  const sizes = [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 64 * 1024 - 10, 64 * 1024, 200_000, 1024 * 1024];
  const w = new ReplyWriter(false);
  const expected: Buffer[] = [];
  let i = 0;
  for (const n of sizes) {
    const v = pattern(n, n);
    // small reply, big bulk, small reply, in an array, then a small one
    w.write(`S${i}`);
    expected.push(Buffer.from(`+S${i}\r\n`));
    w.write(v);
    expected.push(Buffer.from(`$${n}\r\n`), v, Buffer.from('\r\n'));
    w.write([i, v, Buffer.from('x')]);
    expected.push(Buffer.from(`*3\r\n:${i}\r\n$${n}\r\n`), v, Buffer.from('\r\n$1\r\nx\r\n'));
    w.write(new BulkText('t'.repeat(i * 1000)));
    expected.push(Buffer.from(`$${i * 1000}\r\n${'t'.repeat(i * 1000)}\r\n`));
    i++;
  }
  // two big bulks back to back, then many small replies crossing chunk boundaries
  const a = pattern(40_000, 1);
  const b = pattern(50_000, 2);
  w.write([a, b]);
  expected.push(Buffer.from('*2\r\n$40000\r\n'), a, Buffer.from('\r\n$50000\r\n'), b, Buffer.from('\r\n'));
  for (let k = 0; k < 20_000; k++) {
    w.write(k);
    expected.push(Buffer.from(`:${k}\r\n`));
  }
  const want = Buffer.concat(expected);
  t.equal(w.pendingBytes, want.length, 'pendingBytes');
  const chunks = w.take();
  const got = Buffer.concat(chunks);
  t.equal(got.length, want.length, 'length');
  t.ok(got.equals(want), 'bytes in order');
  // Bulks from 16 KiB up are queued as they are, not copied.
  const v1m = sizes.length - 1;
  t.ok(
    chunks.some((c) => c === expected[v1m * 8 + 2]),
    'a 1 MiB bulk is handed out without a copy',
  );
  t.ok(chunks.some((c) => c === expected[1 * 8 + 2]), 'so is a bulk of exactly 16 KiB');
  t.notOk(
    chunks.some((c) => c.length === 16 * 1024 - 1),
    'a bulk under 16 KiB is copied into the output chunk',
  );
});

t.test('take() after take() leaves earlier buffers untouched', async (t) => {
  const w = new ReplyWriter(true);
  w.write(OK);
  w.write(Buffer.from('first'));
  const first = w.take();
  const firstCopy = Buffer.from(Buffer.concat(first));
  t.equal(firstCopy.toString('latin1'), '+OK\r\n$5\r\nfirst\r\n');
  // More replies reuse the rest of the same output chunk: they must not overwrite the first bytes.
  for (let i = 0; i < 1000; i++) w.write(new ErrorReply(`ERR number ${i}`));
  w.write(pattern(20_000, 3));
  w.write('after');
  const second = w.take();
  t.ok(Buffer.concat(first).equals(firstCopy), 'first take unchanged');
  const secondCopy = Buffer.from(Buffer.concat(second));
  t.ok(secondCopy.subarray(0, 16).toString('latin1').startsWith('-ERR number 0\r\n'), 'second starts right');
  t.ok(secondCopy.subarray(-8).toString('latin1') === '+after\r\n', 'second ends right');
  t.same(w.take(), [], 'nothing pending: empty take');
  t.equal(w.pendingBytes, 0);

  // Many rounds of random replies, every taken buffer checked at the end.
  let x = 12345;
  const rnd = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const taken: Array<{ bufs: Buffer[]; copy: Buffer; expect: Buffer }> = [];
  for (let round = 0; round < 300; round++) {
    const expect: Buffer[] = [];
    const n = 1 + rnd(20);
    for (let j = 0; j < n; j++) {
      const k = rnd(10);
      if (k < 4) {
        w.write(round * 100 + j);
        expect.push(Buffer.from(`:${round * 100 + j}\r\n`));
      } else if (k < 7) {
        const v = pattern(rnd(3000), round * 31 + j);
        w.write(v);
        expect.push(Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n'));
      } else if (k < 8) {
        const v = pattern(16 * 1024 + rnd(50_000), round * 7 + j);
        w.write(v);
        expect.push(Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n'));
      } else {
        const s = 'é'.repeat(rnd(500));
        w.write(new BulkText(s));
        expect.push(Buffer.from(`$${Buffer.byteLength(s)}\r\n${s}\r\n`));
      }
    }
    const bufs = w.take();
    const e = Buffer.concat(expect);
    taken.push({ bufs, copy: Buffer.from(Buffer.concat(bufs)), expect: e });
    if (rnd(4) === 0) w.take(); // an empty take in between changes nothing
  }
  let badNow = 0;
  let badLater = 0;
  for (const { bufs, copy, expect } of taken) {
    if (!copy.equals(expect)) badNow++;
    if (!Buffer.concat(bufs).equals(copy)) badLater++;
  }
  t.equal(badNow, 0, 'every take returned exactly its replies');
  t.equal(badLater, 0, 'no taken buffer changed by later writes');
});
