// The table CRC32C (short inputs) and the native one (long inputs) agree everywhere.

import t from 'tap';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { crc32c } from '../../protocol/crc32c.js';

t.test('check value of the standard test vector', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.equal(crc32c(Buffer.alloc(0)), 0);
});

t.test('every length from 0 to 600, at every offset class, matches the native implementation', async (t) => {
  const buf = Buffer.alloc(700);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 17) & 0xff;
  let mismatches = 0;
  for (let start = 0; start < 8; start++) {
    for (let len = 0; len <= 600; len++) {
      if (crc32c(buf, start, start + len) !== nativeCrc32c(buf.subarray(start, start + len))) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});

t.test('a CRC continued over chunks equals the CRC of the whole, short and long chunks alike', async (t) => {
  const buf = Buffer.alloc(2000);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 89 + 3) & 0xff;
  const whole = nativeCrc32c(buf);
  let mismatches = 0;
  for (const cut of [0, 1, 7, 255, 256, 257, 1000, 1999, 2000]) {
    const first = crc32c(buf, 0, cut);
    if (crc32c(buf, cut, buf.length, first) !== whole) mismatches++;
    if (crc32c(buf.subarray(cut), 0, buf.length - cut, first) !== whole) mismatches++;
  }
  t.equal(mismatches, 0);
});
