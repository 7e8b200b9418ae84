import { encodeFrame, decodeFrame } from '../dist/protocol/peer.js';
import { encodeObject } from '../dist/protocol/object.js';
import { update, objectLimits } from '../dist/src/cluster/version.js';
const ids = ['a', 'b', 'c'].map((c) => c.repeat(40));
let o = update(null, new Map(), ids[0], 1, Buffer.alloc(3, 120), 0);
o = update(o, o.vv, ids[1], 2, Buffer.alloc(3, 121), 0);
o = update(o, o.vv, ids[2], 3, Buffer.alloc(3, 122), 0);
const enc = encodeObject(o);
console.log('object bytes', enc.length);
for (const n of [10, 100, 500]) {
  const items = Array.from({ length: n }, (_, i) => ({ key: Buffer.from('key:' + String(i).padStart(12, '0')), object: o, encoded: enc, report: true }));
  const msg = { type: 'writeBatch', items };
  for (let r = 0; r < 3; r++) {
    const N = 200000 / n; let t = process.hrtime.bigint(); let f;
    for (let i = 0; i < N; i++) f = encodeFrame('request', 1, msg);
    const e = Number(process.hrtime.bigint() - t) / (N * n);
    const buf = Buffer.concat(f);
    t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) decodeFrame(buf, objectLimits);
    const d = Number(process.hrtime.bigint() - t) / (N * n);
    if (r === 2) console.log(n, 'items: encode', e.toFixed(0), 'ns/item, decode', d.toFixed(0), 'ns/item');
  }
}
