// The compaction commit file: the one atomic step of a compaction. Until it
// exists, the compaction's output segments are obsolete and its inputs are
// the truth; once it exists (written to a temporary name, fsynced, renamed,
// directory fsynced), the outputs are the truth and the inputs are obsolete.
// docs/storage.md walks through every crash point. This file is the ONE home
// of the format. Pure codec.
//
// `000000000042.commit`, named after the first output segment:
//   offset size field
//        0    4 magic          "DKVC"
//        4    1 version        COMMIT_FORMAT_VERSION (1)
//        5    3 reserved       0
//        8    4 inputCount     u32, >= 1
//       12    4 outputCount    u32, >= 0 (a compaction may keep nothing)
//       16  8*n segment ids    u64: inputs, then outputs
//      end    4 crc            CRC32C of every byte before it

import { crc32c } from './crc32c.js';

export const COMMIT_MAGIC = Buffer.from('DKVC', 'latin1');
export const COMMIT_FORMAT_VERSION = 1;
const fixedBytes = 16;
const two32 = 0x1_0000_0000;
/** More ids than this in a commit file is damage, not a compaction. */
const commitIdsMax = 1 << 20;

export interface CompactionCommit {
  inputs: number[];
  outputs: number[];
}

export function encodeCommit(c: CompactionCommit): Buffer {
  if (c.inputs.length === 0) throw new RangeError('a compaction has at least one input');
  const ids = [...c.inputs, ...c.outputs];
  const buf = Buffer.alloc(fixedBytes + 8 * ids.length + 4);
  COMMIT_MAGIC.copy(buf, 0);
  buf[4] = COMMIT_FORMAT_VERSION;
  buf.writeUInt32LE(c.inputs.length, 8);
  buf.writeUInt32LE(c.outputs.length, 12);
  ids.forEach((id, i) => {
    if (!Number.isSafeInteger(id) || id < 1) throw new RangeError(`bad segment id ${id}`);
    buf.writeUInt32LE(id % two32, fixedBytes + 8 * i);
    buf.writeUInt32LE(Math.floor(id / two32), fixedBytes + 8 * i + 4);
  });
  buf.writeUInt32LE(crc32c(buf, 0, buf.length - 4), buf.length - 4);
  return buf;
}

export type CommitDecodeResult = { kind: 'ok'; commit: CompactionCommit } | { kind: 'corrupt'; reason: string };

export function decodeCommit(buf: Buffer): CommitDecodeResult {
  if (buf.length < fixedBytes + 4) return { kind: 'corrupt', reason: 'shorter than a commit header' };
  if (!buf.subarray(0, 4).equals(COMMIT_MAGIC)) return { kind: 'corrupt', reason: 'bad magic' };
  if (crc32c(buf, 0, buf.length - 4) !== buf.readUInt32LE(buf.length - 4)) return { kind: 'corrupt', reason: 'checksum mismatch' };
  if (buf[4] !== COMMIT_FORMAT_VERSION) return { kind: 'corrupt', reason: `unsupported commit version ${buf[4]}` };
  const inputCount = buf.readUInt32LE(8);
  const outputCount = buf.readUInt32LE(12);
  if (inputCount < 1 || inputCount + outputCount > commitIdsMax) return { kind: 'corrupt', reason: 'bad id counts' };
  if (buf.length !== fixedBytes + 8 * (inputCount + outputCount) + 4) return { kind: 'corrupt', reason: 'length does not match the counts' };
  const ids: number[] = [];
  for (let i = 0; i < inputCount + outputCount; i++) {
    const high = buf.readUInt32LE(fixedBytes + 8 * i + 4);
    if (high > 0x1f_ffff) return { kind: 'corrupt', reason: 'segment id out of range' };
    ids.push(high * two32 + buf.readUInt32LE(fixedBytes + 8 * i));
  }
  return { kind: 'ok', commit: { inputs: ids.slice(0, inputCount), outputs: ids.slice(inputCount) } };
}
