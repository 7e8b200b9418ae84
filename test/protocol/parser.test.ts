// Unit tests of the incremental request parser (protocol/resp.ts): multibulk and
// inline requests, pipelining, arbitrary chunking, big and binary bulks, every
// protocol error with Redis' text, and the limits.
//
// Expected texts and edge cases were checked against redis-server 7.0.15 by sending
// the same raw bytes (noted "Redis:" below where the behaviour is not obvious).

import t from 'tap';
import { ProtocolError, RequestParser, splitInlineArgs, type ParserLimits } from '../../protocol/resp.js';
import { seededRandomFn } from '../../src/cluster/ports.js';

const defaults: ParserLimits = {
  bulkBytesMax: 512 * 1024 * 1024,
  argsMax: 1024 * 1024,
  inlineBytesMax: 64 * 1024,
  queryBufferBytesMax: 1024 * 1024 * 1024,
};
const withAuth: ParserLimits = { ...defaults, unauthenticated: { argsMax: 10, bulkBytesMax: 16 * 1024 } };

/** Encodes a multibulk request. */
function mb(...args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

interface Outcome {
  /** Commands, each argument rendered as latin1 (byte-exact, readable in diffs). */
  cmds: string[][];
  error: string | null;
}

/** Feeds the chunks in order, draining next() after each; stops at the first error. */
function run(chunks: Buffer[], limits: ParserLimits = defaults, parser = new RequestParser(limits)): Outcome {
  const cmds: string[][] = [];
  for (const c of chunks) {
    parser.feed(c);
    for (;;) {
      const r = parser.next();
      if (r === null) break;
      if (r instanceof ProtocolError) return { cmds, error: r.message };
      cmds.push(r.map((a) => a.toString('latin1')));
    }
  }
  return { cmds, error: null };
}

const B = (s: string) => Buffer.from(s, 'latin1');
const one = (s: string | Buffer, limits: ParserLimits = defaults) => run([typeof s === 'string' ? B(s) : s], limits);

/** Splits buf at the given sorted offsets. */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

t.test('multibulk', async (t) => {
  t.same(one('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n'), { cmds: [['SET', 'k', 'value']], error: null });
  t.same(one('*2\r\n$4\r\nECHO\r\n$0\r\n\r\n'), { cmds: [['ECHO', '']], error: null }, 'empty bulk');
  t.same(one('*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI'), { cmds: [['PING']], error: null }, 'partial second request waits');

  const p = new RequestParser(defaults);
  p.feed(B('*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n'));
  const cmd = p.next();
  t.ok(Array.isArray(cmd));
  t.same((cmd as Buffer[]).map((b) => b.toString()), ['GET', 'foo']);
  t.ok((cmd as Buffer[]).every((b) => Buffer.isBuffer(b)), 'arguments are Buffers');
  t.equal(p.next(), null, 'nothing more');
  t.equal(p.bufferedBytes, 0, 'nothing buffered after a whole request');
  t.equal(p.next(), null, 'still nothing');

  // Redis does not check the 2 bytes after a bulk's data; neither do we.
  t.same(one('*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n'), { cmds: [['PING'], ['PING']], error: null });
  // A negative or zero count is an empty request, skipped (Redis answers the PING after it).
  t.same(one('*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n'), { cmds: [['PING']], error: null }, '*0 / *-1 skipped');
  t.same(one('*0\r\n'), { cmds: [], error: null });
  t.same(one('*-1\r\nPING\r\n'), { cmds: [['PING']], error: null }, 'inline after a skipped *-1');
});

t.test('inline requests', async (t) => {
  t.same(one('SET k v\r\n'), { cmds: [['SET', 'k', 'v']], error: null }, 'CRLF ending');
  t.same(one('SET k v\n'), { cmds: [['SET', 'k', 'v']], error: null }, 'LF ending');
  t.same(one('PING'), { cmds: [], error: null }, 'no newline yet: waits');
  t.same(one('  SET \t k   v  \r\n'), { cmds: [['SET', 'k', 'v']], error: null }, 'runs of blanks');
  t.same(one('PING\r\r\n'), { cmds: [['PING']], error: null }, 'only one CR is dropped; the other separates');
  t.same(one('ECHO a\rb\n'), { cmds: [['ECHO', 'a', 'b']], error: null }, 'a lone CR separates (Redis)');
  t.same(one('\r\n\n\n   \r\n\t\nPING\n'), { cmds: [['PING']], error: null }, 'empty and blank lines ignored');
  t.same(one('\n'), { cmds: [], error: null });
  t.same(
    one('SET "a b" \'c d\'\r\n'),
    { cmds: [['SET', 'a b', 'c d']], error: null },
    'double and single quoted arguments',
  );
  t.same(
    one('ECHO "\\x41\\x4g\\n\\r\\t\\b\\a\\\\\\"\\z\\xff\\x00"\r\n'),
    { cmds: [['ECHO', 'Ax4g\n\r\t\b\x07\\"z\xff\x00']], error: null },
    'escapes in double quotes, \\xHH, unknown escape keeps the char',
  );
  t.same(one('ECHO "\\xZZ"\r\n'), { cmds: [['ECHO', 'xZZ']], error: null }, 'bad \\x escape: x kept (Redis)');
  t.same(one('ECHO "\\x4"\r\n'), { cmds: [['ECHO', 'x4']], error: null }, 'short \\x escape');
  t.same(one("ECHO 'it\\'s'\r\n"), { cmds: [['ECHO', "it's"]], error: null }, "\\' in single quotes");
  t.same(one("ECHO 'a\\\\'b'\r\n"), { cmds: [['ECHO', "a\\'b"]], error: null }, 'other backslashes literal (Redis)');
  t.same(one("ECHO '\\n'\r\n"), { cmds: [['ECHO', '\\n']], error: null }, 'no escapes in single quotes');
  t.same(one('ECHO ab"cd"\r\n'), { cmds: [['ECHO', 'abcd']], error: null }, 'quote opening inside a token (Redis)');
  t.same(one('ECHO "" \'\'\r\n'), { cmds: [['ECHO', '', '']], error: null }, 'empty quoted arguments');
  t.same(one('ECHO "a"\vb\r\n'), { cmds: [['ECHO', 'a', 'b']], error: null }, 'closing quote then \\v (isspace)');
  t.same(one('ECHO \v x \f\n'), { cmds: [['ECHO', 'x']], error: null }, '\\v \\f skipped between arguments');
  // Redis: an unquoted token ends only at ' ', \t, \r, \n (sdssplitargs); "ECHO a\vb" echoes "a\vb".
  t.same(one('ECHO a\vb c\ff\r\n'), { cmds: [['ECHO', 'a\vb', 'c\ff']], error: null }, '\\v \\f inside a token');
  t.same(one('GET \xe9\xff\r\n'), { cmds: [['GET', '\xe9\xff']], error: null }, 'high bytes');

  t.same(one('ECHO "a"b\r\n'), { cmds: [], error: 'unbalanced quotes in request' }, 'closing quote glued');
  t.same(one("ECHO 'a'b\r\n"), { cmds: [], error: 'unbalanced quotes in request' });
  t.same(one('ECHO "abc\r\n'), { cmds: [], error: 'unbalanced quotes in request' }, 'unterminated "');
  t.same(one("ECHO 'abc\n"), { cmds: [], error: 'unbalanced quotes in request' }, "unterminated '");
  t.same(one('ECHO "abc\\"\n'), { cmds: [], error: 'unbalanced quotes in request' }, 'escaped closing quote');
  t.same(one('ECHO "a\\\n'), { cmds: [], error: 'unbalanced quotes in request' }, 'backslash at the end');
  t.same(one('PING\nECHO "x\nPING\n'), { cmds: [['PING']], error: 'unbalanced quotes in request' }, 'earlier ok');
});

t.test('splitInlineArgs', async (t) => {
  const s = (x: string) => splitInlineArgs(B(x))?.map((b) => b.toString('latin1')) ?? null;
  t.same(s(''), []);
  t.same(s('   '), []);
  t.same(s('a'), ['a']);
  t.same(s('a  "b c"  \'d\''), ['a', 'b c', 'd']);
  t.same(s('"\\x61\\x62"'), ['ab']);
  t.same(s('"abc'), null);
  t.same(s("'abc"), null);
  t.same(s('"a"x'), null);
  t.same(s('"a" '), ['a']);
  t.same(s('"a"\t"b"'), ['a', 'b']);
});

t.test('pipelined commands in one chunk', async (t) => {
  const stream = Buffer.concat([
    mb('SET', 'a', '1'),
    B('PING\r\n'),
    mb('MGET', 'a', 'b', 'c'),
    B('\r\n'),
    B('ECHO "x y"\n'),
    B('*0\r\n'),
    mb('DEL', 'a'),
  ]);
  t.same(run([stream]), {
    cmds: [['SET', 'a', '1'], ['PING'], ['MGET', 'a', 'b', 'c'], ['ECHO', 'x y'], ['DEL', 'a']],
    error: null,
  });
});

t.test('every split point gives the same commands', async (t) => {
  const bin = Buffer.from([0, 13, 10, 42, 36, 13, 10, 255, 10, 13]);
  const stream = Buffer.concat([
    mb('SET', 'key', bin),
    B('PING\r\n'),
    B('\r\n'),
    mb('ECHO', ''),
    B('*0\r\n*-1\r\n'),
    B('SET "a b" \'c\' "\\x41"\n'),
    mb('MSET', 'k1', 'v1', 'k2', '\r\n'),
    B('  GET  x  \r\n'),
    mb('$', '*3\r\n'),
  ]);
  const expected: Outcome = {
    cmds: [
      ['SET', 'key', bin.toString('latin1')],
      ['PING'],
      ['ECHO', ''],
      ['SET', 'a b', 'c', 'A'],
      ['MSET', 'k1', 'v1', 'k2', '\r\n'],
      ['GET', 'x'],
      ['$', '*3\r\n'],
    ],
    error: null,
  };
  t.same(run([stream]), expected, 'one chunk');

  const bytes: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
  t.same(run(bytes), expected, 'byte by byte');

  let bad2 = 0;
  for (let i = 0; i <= stream.length; i++) {
    const o = run(splitAt(stream, [i]));
    if (JSON.stringify(o) !== JSON.stringify(expected)) {
      if (bad2++ === 0) t.same(o, expected, `2-way split at ${i}`);
    }
  }
  t.equal(bad2, 0, `all ${stream.length + 1} 2-way splits agree`);

  let bad3 = 0;
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      const o = run(splitAt(stream, [i, j]));
      if (JSON.stringify(o) !== JSON.stringify(expected)) {
        if (bad3++ === 0) t.same(o, expected, `3-way split at ${i}, ${j}`);
      }
    }
  }
  t.equal(bad3, 0, 'all 3-way splits agree');

  // Empty chunks anywhere change nothing.
  const withEmpty: Buffer[] = [Buffer.alloc(0)];
  for (const b of bytes) withEmpty.push(b, Buffer.alloc(0));
  t.same(run(withEmpty), expected, 'empty chunks interleaved');
});

t.test('errors are found at every split point', async (t) => {
  const stream = Buffer.concat([mb('PING'), B('ECHO "a\r\n'), mb('PING')]);
  for (let i = 0; i <= stream.length; i++) {
    const o = run(splitAt(stream, [i]));
    if (o.error !== 'unbalanced quotes in request' || o.cmds.length !== 1) {
      t.fail(`split at ${i}: ${JSON.stringify(o)}`);
      return;
    }
  }
  t.pass('same commands and error at every split');
});

t.test('big bulks split randomly', async (t) => {
  const rand = seededRandomFn(0xb16b00b5);
  const big = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (rand() * 256) | 0;
  // Make sure \r\n, '*' and '$' occur inside, including at the very end.
  big.write('\r\n*1\r\n$3\r\n', 1000, 'latin1');
  big[big.length - 2] = 13;
  big[big.length - 1] = 10;
  const stream = Buffer.concat([mb('PING'), mb('SET', 'big', big, 'EX', '10'), B('PING\n'), mb('GET', 'big')]);
  const check = (chunks: Buffer[], what: string) => {
    const p = new RequestParser(defaults);
    const got: Buffer[][] = [];
    for (const c of chunks) {
      p.feed(c);
      for (let r = p.next(); r !== null; r = p.next()) {
        if (r instanceof ProtocolError) {
          t.fail(`${what}: ${r.message}`);
          return false;
        }
        got.push(r);
      }
    }
    const ok =
      got.length === 4 &&
      got[0]!.toString() === 'PING' &&
      got[1]!.length === 5 &&
      got[1]![0]!.toString() === 'SET' &&
      got[1]![1]!.toString() === 'big' &&
      got[1]![2]!.equals(big) &&
      got[1]![3]!.toString() === 'EX' &&
      got[1]![4]!.toString() === '10' &&
      got[2]!.toString() === 'PING' &&
      got[3]!.map(String).join(' ') === 'GET big' &&
      p.bufferedBytes === 0;
    if (!ok) t.fail(`${what}: got ${got.map((c) => c.map((a) => a.length).join(',')).join(' | ')}`);
    return ok;
  };
  t.ok(check([stream], 'one chunk'), 'one chunk');
  let allOk = true;
  for (let iter = 0; iter < 40 && allOk; iter++) {
    const n = 1 + ((rand() * 40) | 0);
    const cuts = Array.from({ length: n }, () => (rand() * (stream.length + 1)) | 0).sort((a, b) => a - b);
    allOk = check(splitAt(stream, cuts), `random cuts ${cuts.join(',')}`);
  }
  t.ok(allOk, 'random splits');
  // Cuts at and around the bulk's boundaries: header, first byte, last bytes, inside the CRLF.
  const start = mb('PING').length + mb('SET', 'big').length + `$${big.length}\r\n`.length;
  const fixed = [0, 1, 2, big.length - 2, big.length - 1, big.length, big.length + 1, big.length + 2];
  for (const off of fixed) {
    t.ok(check(splitAt(stream, [start + off]), `cut at bulk+${off}`), `cut at bulk+${off}`);
  }
  t.ok(check(splitAt(stream, [start - 3, start + 1, start + big.length + 1]), 'several cuts'), 'several cuts');
  // 64 KiB chunks, like a socket would give.
  const cuts: number[] = [];
  for (let i = 65536; i < stream.length; i += 65536) cuts.push(i);
  t.ok(check(splitAt(stream, cuts), '64 KiB chunks'), '64 KiB chunks');
});

t.test('bulks around the 32 KiB big-bulk threshold', async (t) => {
  for (const len of [32 * 1024 - 1, 32 * 1024, 32 * 1024 + 1, 100000]) {
    const v = Buffer.alloc(len, 0x61);
    v[0] = 13;
    v[len - 1] = 10;
    const stream = Buffer.concat([mb('SET', 'k', v), mb('PING')]);
    const expected = { cmds: [['SET', 'k', v.toString('latin1')], ['PING']], error: null };
    let bad = 0;
    for (const cut of [1, 10, 20, 21, 22, 23, 24, 1000, len, len + 20, len + 21, len + 22, len + 23, len + 24, len + 25]) {
      for (const second of [-1, 7, 5000]) {
        const cuts = second < 0 ? [cut] : [cut, Math.min(stream.length, cut + second)];
        const o = run(splitAt(stream, cuts));
        if (JSON.stringify(o) !== JSON.stringify(expected)) {
          bad++;
          t.fail(`len ${len} cuts ${cuts}: ${o.error} ${o.cmds.map((c) => c.length)}`);
        }
      }
    }
    t.equal(bad, 0, `len ${len}`);
  }
});

t.test('binary bulks', async (t) => {
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  const crlf = B('\r\n\r\n*2\r\n$1\r\n');
  const stream = Buffer.concat([mb(all, crlf, B('\r'), B('\n'))]);
  const o = run([stream]);
  t.same(o, { cmds: [[all.toString('latin1'), crlf.toString('latin1'), '\r', '\n']], error: null });
  const p = new RequestParser(defaults);
  p.feed(stream);
  const r = p.next() as Buffer[];
  t.ok(r[0]!.equals(all), 'all 256 byte values intact');
});

t.test('returned arguments stay intact after more input', async (t) => {
  const p = new RequestParser(defaults);
  p.feed(B('*2\r\n$3\r\nGET\r\n$3\r\nabc\r\n*2\r\n$3\r\nGET\r\n$2\r\nx'));
  const first = p.next() as Buffer[];
  t.equal(p.next(), null);
  p.feed(B('y\r\n'));
  const second = p.next() as Buffer[];
  p.feed(Buffer.alloc(100, 0x7a));
  p.feed(B('\n'));
  t.same(first.map(String), ['GET', 'abc']);
  t.same(second.map(String), ['GET', 'xy']);
});

t.test('bufferedBytes', async (t) => {
  const p = new RequestParser(defaults);
  t.equal(p.bufferedBytes, 0);
  p.feed(B('*1\r\n$10\r\n01234'));
  t.equal(p.next(), null);
  t.ok(p.bufferedBytes >= 5, `counts the partial bulk (${p.bufferedBytes})`);
  p.feed(B('56789\r\n'));
  t.same((p.next() as Buffer[]).map(String), ['0123456789']);
  t.equal(p.bufferedBytes, 0, 'zero after the request completes');
  p.feed(B('PIN'));
  t.equal(p.next(), null);
  t.equal(p.bufferedBytes, 3, 'partial inline line');
});

t.test('protocol errors with Redis texts', async (t) => {
  const cases: Array<[string, string, ParserLimits?]> = [
    ['*abc\r\n', 'invalid multibulk length'],
    ['*1x\r\n', 'invalid multibulk length'],
    ['*\r\n', 'invalid multibulk length'],
    ['*-\r\n', 'invalid multibulk length'],
    ['*+1\r\n', 'invalid multibulk length'],
    ['* 1\r\n', 'invalid multibulk length'],
    // Redis' string2ll refuses leading zeros and "-0".
    ['*01\r\n$4\r\nPING\r\n', 'invalid multibulk length'],
    ['*-0\r\n', 'invalid multibulk length'],
    ['*00\r\n', 'invalid multibulk length'],
    ['*99999999999999999999\r\n', 'invalid multibulk length'],
    ['*1\r\nx4\r\nPING\r\n', "expected '$', got 'x'"],
    ['*2\r\n$4\r\nECHO\r\n:1\r\n', "expected '$', got ':'"],
    ['*1\r\n*1\r\n', "expected '$', got '*'"],
    ['*1\r\n$abc\r\n', 'invalid bulk length'],
    ['*1\r\n$\r\n', 'invalid bulk length'],
    ['*1\r\n$-1\r\n', 'invalid bulk length'],
    ['*1\r\n$-0\r\n', 'invalid bulk length'],
    ['*1\r\n$04\r\nPING\r\n', 'invalid bulk length'],
    ['*1\r\n$4x\r\nPING\r\n', 'invalid bulk length'],
    ['*1\r\n$\xe9\r\n', 'invalid bulk length'],
    ['*1\r\n$99999999999999999999\r\n', 'invalid bulk length'],
    ['*1\r\n$536870913\r\n', 'invalid bulk length'], // proto-max-bulk-len + 1
    ['ECHO "abc\r\n', 'unbalanced quotes in request'],
  ];
  for (const [input, msg, limits] of cases) {
    t.same(one(input, limits), { cmds: [], error: msg }, JSON.stringify(input));
  }
  t.same(one('*2\r\n$4\r\nECHO\r\n$1\r\na\r\n*1\r\n$x\r\n'), { cmds: [['ECHO', 'a']], error: 'invalid bulk length' });
  // expected '$' with CR: the message carries the byte, the writer turns CR/LF into spaces.
  t.same(one('*1\r\n\r\n'), { cmds: [], error: "expected '$', got '\r'" });
});

t.test('too big inline request', async (t) => {
  const limits = { ...defaults, inlineBytesMax: 100 };
  t.same(one('x'.repeat(100), limits), { cmds: [], error: null }, 'at the limit, no newline: waits');
  t.same(one('x'.repeat(101), limits), { cmds: [], error: 'too big inline request' }, 'over, no newline');
  t.same(one('x'.repeat(100) + '\n', limits), { cmds: [['x'.repeat(100)]], error: null }, 'at the limit');
  t.same(one('x'.repeat(101) + '\n', limits), { cmds: [], error: 'too big inline request' }, 'over, with newline');
  t.same(one('x'.repeat(99) + '\r\n', limits), { cmds: [['x'.repeat(99)]], error: null }, 'CR counts');
  const chunks = Array.from({ length: 101 }, () => B('y'));
  t.same(run(chunks, limits), { cmds: [], error: 'too big inline request' }, 'byte by byte');
  // Default limit: 64 KiB.
  t.same(one('a'.repeat(64 * 1024 + 1)), { cmds: [], error: 'too big inline request' }, '64 KiB default');
  t.same(one('a'.repeat(64 * 1024)), { cmds: [], error: null });
});

t.test('too big count strings', async (t) => {
  // Redis: more than 64 KiB without a CR while reading a "*" or "$" header.
  t.same(one('*' + '1'.repeat(64 * 1024 + 1)), { cmds: [], error: 'too big mbulk count string' });
  t.same(one('*1\r\n$' + '1'.repeat(64 * 1024 + 1)), { cmds: [], error: 'too big bulk count string' });
  t.same(one('*' + '1'.repeat(1000)), { cmds: [], error: null }, 'shorter: waits');
});

t.test('errors are sticky', async (t) => {
  const p = new RequestParser(defaults);
  p.feed(B('*1\r\n$4\r\nPING\r\n*x\r\n*1\r\n$4\r\nPING\r\n'));
  t.same((p.next() as Buffer[]).map(String), ['PING']);
  const e = p.next();
  t.ok(e instanceof ProtocolError);
  t.equal((e as ProtocolError).message, 'invalid multibulk length');
  t.equal(p.next(), e, 'same error again, the PING after it is not returned');
  p.feed(mb('PING'));
  t.equal(p.next(), e, 'still the error after more input');
  p.feed(B('PING\r\n'));
  t.equal(p.next(), e);
});

t.test('bulkBytesMax and argsMax', async (t) => {
  const limits = { ...defaults, bulkBytesMax: 10, argsMax: 3 };
  t.same(one(mb('a', 'b', '0123456789'), limits), { cmds: [['a', 'b', '0123456789']], error: null }, 'at limits');
  t.same(one(mb('a', '0123456789X'), limits), { cmds: [], error: 'invalid bulk length' }, 'bulk over the limit');
  t.same(one('*1\r\n$11\r\n', limits), { cmds: [], error: 'invalid bulk length' }, 'rejected at the header');
  t.same(one(mb('a', 'b', 'c', 'd'), limits), { cmds: [], error: 'invalid multibulk length' }, 'argc over');
  t.same(one('*4\r\n', limits), { cmds: [], error: 'invalid multibulk length' }, 'rejected at the header');
  t.same(one('a b c\r\n', limits), { cmds: [['a', 'b', 'c']], error: null }, 'inline at the limit');
  t.same(one('a b c d\r\n', limits), { cmds: [], error: 'invalid multibulk length' }, 'inline argc over');
});

t.test('unauthenticated limits', async (t) => {
  const p0 = new RequestParser(defaults);
  t.equal(p0.authenticated, true, 'no unauthenticated limits: authenticated from the start');
  const p1 = new RequestParser(withAuth);
  t.equal(p1.authenticated, false, 'with unauthenticated limits: not authenticated');

  const args10 = Array.from({ length: 10 }, (_, i) => `a${i}`);
  const args11 = [...args10, 'a10'];
  t.same(one(mb(...args10), withAuth), { cmds: [args10], error: null }, '10 arguments ok');
  t.same(one(mb(...args11), withAuth), { cmds: [], error: 'unauthenticated multibulk length' });
  t.same(one('*11\r\n', withAuth), { cmds: [], error: 'unauthenticated multibulk length' }, 'at the header');
  t.same(one(args11.join(' ') + '\n', withAuth), { cmds: [], error: 'unauthenticated multibulk length' }, 'inline');
  const b16k = Buffer.alloc(16 * 1024, 0x62);
  t.same(one(mb('SET', 'k', b16k), withAuth), { cmds: [['SET', 'k', b16k.toString('latin1')]], error: null });
  t.same(one('*1\r\n$16385\r\n', withAuth), { cmds: [], error: 'unauthenticated bulk length' });
  // Redis checks the general validity first: these are "invalid", not "unauthenticated".
  t.same(one('*1\r\n$-1\r\n', withAuth), { cmds: [], error: 'invalid bulk length' }, '$-1 unauthenticated');
  t.same(one('*99999999999\r\n', withAuth), { cmds: [], error: 'invalid multibulk length' }, 'huge argc');
  t.same(
    one('*1\r\n$536870913\r\n', withAuth),
    { cmds: [], error: 'invalid bulk length' },
    'over proto-max-bulk-len unauthenticated',
  );
  t.same(
    one('*2000000\r\n', withAuth),
    { cmds: [], error: 'invalid multibulk length' },
    'over argsMax unauthenticated',
  );

  // Once authenticated, the normal limits apply.
  const p = new RequestParser(withAuth);
  p.authenticated = true;
  const args100 = Array.from({ length: 100 }, (_, i) => `x${i}`);
  const b100k = Buffer.alloc(100 * 1024, 0x63);
  t.same(run([mb(...args100), mb('SET', 'k', b100k)], withAuth, p), {
    cmds: [args100, ['SET', 'k', b100k.toString('latin1')]],
    error: null,
  });

  // Flipping mid-pipeline: the commands after AUTH, already buffered, get the new limits.
  const q = new RequestParser(withAuth);
  q.feed(Buffer.concat([mb('AUTH', 'pw'), mb(...args11)]));
  t.same((q.next() as Buffer[]).map(String), ['AUTH', 'pw']);
  q.authenticated = true;
  t.same((q.next() as Buffer[]).map(String), args11, 'big command accepted after authentication');

  const r = new RequestParser(withAuth);
  r.feed(Buffer.concat([mb('AUTH', 'pw'), mb(...args11)]));
  t.same((r.next() as Buffer[]).map(String), ['AUTH', 'pw']);
  const e = r.next();
  t.ok(e instanceof ProtocolError && e.message === 'unauthenticated multibulk length', 'still refused when not');
});

t.test('query buffer limit exceeded', async (t) => {
  const limits = { ...defaults, queryBufferBytesMax: 100 };
  const v60 = 'v'.repeat(60);
  // A whole request within the limit, in small pieces.
  const ok = mb('SET', 'k', 'v'.repeat(20));
  const bytes = [...ok].map((b) => Buffer.from([b]));
  t.same(run(bytes, limits), { cmds: [['SET', 'k', 'v'.repeat(20)]], error: null }, 'within the limit byte by byte');
  // An unfinished request holding more than the limit.
  const big = Buffer.concat([B('*2\r\n'), B(`$60\r\n${v60}\r\n`), B('$60\r\n'), B('v'.repeat(30))]);
  t.same(run([big], limits), { cmds: [], error: 'query buffer limit exceeded' }, 'partial request over the limit');
  const bigBytes = [...big].map((b) => Buffer.from([b]));
  t.same(run(bigBytes, limits), { cmds: [], error: 'query buffer limit exceeded' }, 'byte by byte');
  // A whole request over the limit in one chunk: the parser never waits for bytes, and refuses it all the same.
  const whole = mb('SET', 'k', v60, v60);
  t.same(run([whole], limits), { cmds: [], error: 'query buffer limit exceeded' }, 'whole request in one chunk');
  t.same(run([Buffer.concat([ok, whole])], limits), { cmds: [['SET', 'k', 'v'.repeat(20)]], error: 'query buffer limit exceeded' }, 'after a request within the limit');
  // The big-bulk path (>= 32 KiB) checks the announced length up front.
  const l2 = { ...defaults, queryBufferBytesMax: 50000 };
  t.same(run([B('*1\r\n$60000\r\nabc')], l2), { cmds: [], error: 'query buffer limit exceeded' }, 'big bulk');
  // A "*" header waiting for its CR is part of the buffered request too.
  t.same(
    run([B('*'), B('1'.repeat(60)), B('1'.repeat(60))], limits),
    { cmds: [], error: 'query buffer limit exceeded' },
    'header without CR',
  );
  const h = new RequestParser(limits);
  h.feed(B('*' + '1'.repeat(120)));
  const he = h.next();
  t.ok(he instanceof ProtocolError && he.message === 'query buffer limit exceeded');
  h.feed(B('\r\n'));
  t.equal(h.next(), he, 'sticky');
  t.same(
    run([B('*2\r\n$3\r\nGET\r\n$'), B('1'.repeat(60)), B('1'.repeat(60))], limits),
    { cmds: [], error: 'query buffer limit exceeded' },
    'bulk header without CR',
  );
});
