// CRC32C (Castagnoli), the checksum of segment records and peer frames.
// Long inputs go to @node-rs/crc32 (hardware CRC instructions); short ones,
// the common case of a record header or a small record, are summed here in
// JavaScript from a table, which beats the cost of a native call plus the
// Buffer view it needs. Both give identical results (test/protocol/crc32c.test.ts).

import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** Below this many bytes the table loop is faster than a native call. */
const nativeBytesMin = 256;

const table = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  table[n] = c;
}

/** CRC32C of buf[start, end); `previous` continues the CRC of the bytes before them (a frame in chunks). */
export function crc32c(buf: Buffer, start = 0, end = buf.length, previous = 0): number {
  if (end - start >= nativeBytesMin) return nativeCrc32c(start === 0 && end === buf.length ? buf : buf.subarray(start, end), previous);
  let crc = ~previous;
  for (let i = start; i < end; i++) crc = table[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
