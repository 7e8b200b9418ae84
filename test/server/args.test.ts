// Argument parsing as Redis does it: integers, floats, glob patterns.

import t from 'tap';
import { formatFloatHuman, globMatch, parseFloatArg, parseInteger } from '../../src/server/args.js';

const b = (s: string) => Buffer.from(s);

t.test('parseInteger follows string2ll', async (t) => {
  t.equal(parseInteger(b('0')), 0);
  t.equal(parseInteger(b('-42')), -42);
  t.equal(parseInteger(b('9007199254740991')), 9007199254740991);
  t.equal(parseInteger(b('9223372036854775807')), 9223372036854775807n);
  t.equal(parseInteger(b('-9223372036854775808')), -9223372036854775808n);
  for (const bad of ['', '-', '+1', '01', '-0', ' 1', '1 ', '1.0', '9223372036854775808', '1e3', 'abc']) {
    t.equal(parseInteger(b(bad)), undefined, `'${bad}' rejected`);
  }
});

t.test('parseFloatArg and formatFloatHuman', async (t) => {
  t.equal(parseFloatArg(b('1.5')), 1.5);
  t.equal(parseFloatArg(b('-.5')), -0.5);
  t.equal(parseFloatArg(b('5.0e3')), 5000);
  t.equal(parseFloatArg(b('inf')), Infinity);
  for (const bad of ['', 'nan', ' 1', '1 ', 'abc', '1..2']) t.equal(parseFloatArg(b(bad)), undefined, `'${bad}' rejected`);
  t.equal(formatFloatHuman(10.6), '10.6');
  t.equal(formatFloatHuman(5000), '5000');
  t.equal(formatFloatHuman(1e21), '1000000000000000000000');
  t.equal(formatFloatHuman(1e-7), '0.0000001');
});

t.test('globMatch follows stringmatchlen', async (t) => {
  const yes: Array<[string, string]> = [['*', 'anything'], ['h?llo', 'hello'], ['h*llo', 'heeeello'], ['h[ae]llo', 'hallo'], ['h[^e]llo', 'hallo'], ['h[a-b]llo', 'hbllo'], ['h\\*llo', 'h*llo'], ['user:*:name', 'user:42:name'], ['', '']];
  const no: Array<[string, string]> = [['h?llo', 'hllo'], ['h[ae]llo', 'hillo'], ['h[^e]llo', 'hello'], ['h\\*llo', 'hello'], ['abc', 'abcd'], ['a*c', 'abd']];
  for (const [p, s] of yes) t.ok(globMatch(b(p), b(s)), `${p} matches ${s}`);
  for (const [p, s] of no) t.notOk(globMatch(b(p), b(s)), `${p} does not match ${s}`);
  t.ok(globMatch(b('GET*'), b('getrange'), true), 'nocase');
});
