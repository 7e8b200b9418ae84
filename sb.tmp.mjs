import { SegmentStore } from '/work/main/dist/src/storage/store.js';
import { pino } from 'pino';
import fs from 'node:fs';
fs.rmSync('/tmp/sbdir', {recursive:true, force:true});
const s = await SegmentStore.open({dir:'/tmp/sbdir', fsync:'everysec', segmentBytesMax: 256<<20, cacheBytes: 256<<20, compressBytesMin:1024, compressLevel:3, logger: pino({level:'warn'})});
const v = Buffer.from('xxx'); const k = Buffer.from('key:__rand_int__');
for (let round=0; round<5; round++) {
let t0 = performance.now();
for (let i=0;i<1000000;i++) { s.put(k, v, 0); if (i % 1000 === 0) await new Promise(r => s.whenDurable(r)); }
console.log('same key puts/s', Math.round(1000000/((performance.now()-t0)/1000)));
}
await s.close();
