// `npm run bench:compression`: how much space zstd saves on real values, the
// way the store compresses them (a value longer than compressBytesMin, 1 KiB
// by default, is compressed, and kept compressed only if that is smaller),
// and what a zstd dictionary trained on the node's own small values would add.
//
// The corpus is built from real files on this machine, no network:
//   json          every *.json under ./node_modules and /usr/lib/node_modules
//                 (package.json files, schemas, data tables, tsconfigs...);
//   json-records  the entries of the JSON files whose top level is an object
//                 or array of at least 20 entries (objects, or key: object and
//                 key: string pairs), one value per entry, JSON.stringify'd:
//                 the "one small document per key" case;
//   text          README* and *.md under those node_modules, the text files of
//                 /usr/share/doc (changelogs, copyright, READMEs, gunzipped
//                 when .gz), and /usr/share/common-licenses.
// Files are deduplicated by content. Each corpus is split into value-size
// buckets; by default each bucket is sampled (seeded) down to --budget-mb of
// raw bytes (but at least 20 values) so that the run takes about a minute;
// --full takes all.
//
// Three measurements:
// 1. per corpus, bucket and zstd level: raw bytes, the bytes the store would
//    keep for the values (threshold honoured), the saving zstd alone would
//    give (every value compressed), compress and decompress MB/s (zstd-napi,
//    the same call the store makes);
// 2. through the store itself: every sampled value put into a SegmentStore in
//    a temp dir, stats().diskBytes (36-byte record headers, keys and segment
//    headers included) against the raw value bytes and against the same store
//    with compression off;
// 3. dictionaries (zstd-napi can compress with a dictionary but cannot train
//    one, so the Debian `zstd` CLI trains it): for the buckets up to 4 KiB,
//    half of the values train a dictionary and the other half are compressed
//    with and without it.
//
//   node dist/bench/compression.js [--full] [--budget-mb 2] [--levels 1,3,9,19]
//     [--dict true] [--dict-sizes 4,16,64] [--store true] [--seed 1]

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as zstd from 'zstd-napi';
import { RECORD_HEADER_BYTES } from '../protocol/record.js';
import { compressBytesMinDefault, compressLevelDefault } from '../src/constants.js';
import { SegmentStore } from '../src/storage/store.js';
import { seededRandomFn } from '../src/cluster/ports.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Bucket {
  name: string;
  /** Values with length <= max fall in this bucket (the first that fits). */
  max: number;
}
const buckets: Bucket[] = [
  { name: '<256 B', max: 255 },
  { name: '256 B-1 KiB', max: 1 * KiB },
  { name: '1-4 KiB', max: 4 * KiB },
  { name: '4-64 KiB', max: 64 * KiB },
  { name: '>64 KiB', max: Infinity },
];
const bucketOf = (n: number): number => buckets.findIndex((b) => n <= b.max);

interface Corpus {
  name: string;
  /** Every value found, by bucket. */
  all: Buffer[][];
  /** The values measured (a seeded sample of `all`, or all of it), by bucket. */
  sample: Buffer[][];
}

// --- a seeded PRNG, so that a run can be repeated --------------------------------

function shuffle<T>(xs: T[], rnd: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// --- the corpus ------------------------------------------------------------------

/** Regular files under dir (symlinks not followed). */
function walk(dir: string, out: string[] = []): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const textExt = new Set(['', 'md', 'markdown', 'txt', 'text', 'rst', 'debian', 'changes', 'news', 'readme', 'adoc', 'asciidoc', 'org']);
const textName = /^(readme|news|changes|changelog|copyright|authors|thanks|todo|faq|history|license|licence|copying|notice)/i;

function isDocText(file: string): boolean {
  const name = path.basename(file).replace(/\.gz$/, '');
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
  return textName.test(name) || textExt.has(ext);
}

function readValue(file: string): Buffer | undefined {
  try {
    let buf = fs.readFileSync(file);
    if (file.endsWith('.gz')) buf = gunzipSync(buf);
    return buf;
  } catch {
    return undefined;
  }
}

/** No NUL byte and valid UTF-8: text, not a binary that happens to sit in a doc dir. */
function looksLikeText(buf: Buffer): boolean {
  if (buf.length === 0 || buf.includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}

function dedupe(values: Buffer[]): Buffer[] {
  const seen = new Set<string>();
  return values.filter((v) => {
    const h = createHash('sha1').update(v).digest('hex');
    if (seen.has(h)) return false;
    seen.add(h);
    return true;
  });
}

const recordsPerFileMax = 500;

/**
 * The entries of a JSON object/array with at least 20 of them, one value each:
 * the objects of an array, the {key: object} and {key: string} pairs of an
 * object. Arrays of numbers or strings (encoding tables, lists of ids) are not
 * records anyone would store one per key, and are left out.
 */
function jsonRecords(doc: Buffer): Buffer[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(doc.toString('utf8'));
  } catch {
    return [];
  }
  if (parsed === null || typeof parsed !== 'object') return [];
  const isObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);
  const entries: unknown[] = Array.isArray(parsed)
    ? parsed.filter(isObject)
    : Object.entries(parsed)
        .filter(([, v]) => isObject(v) || typeof v === 'string')
        .map(([k, v]) => ({ [k]: v }));
  if (entries.length < 20) return [];
  return entries
    .slice(0, recordsPerFileMax)
    .map((e) => Buffer.from(JSON.stringify(e), 'utf8'))
    .filter((b) => b.length >= 16);
}

function byBucket(values: Buffer[]): Buffer[][] {
  const out: Buffer[][] = buckets.map(() => []);
  for (const v of values) out[bucketOf(v.length)]!.push(v);
  return out;
}

/** At least this many values per bucket, whatever the budget: a few huge files would otherwise stand for a whole bucket. */
const sampleValuesMin = 20;

function sampleBuckets(all: Buffer[][], budgetBytes: number, rnd: () => number): Buffer[][] {
  return all.map((vs) => {
    const out: Buffer[] = [];
    let bytes = 0;
    for (const v of shuffle(vs, rnd)) {
      if (bytes >= budgetBytes && out.length >= sampleValuesMin) break;
      out.push(v);
      bytes += v.length;
    }
    return out;
  });
}

function buildCorpora(budgetBytes: number, rnd: () => number): Corpus[] {
  const nodeModules = [path.resolve('node_modules'), '/usr/lib/node_modules'];
  const jsonFiles: string[] = [];
  const textFiles: string[] = [];
  for (const root of nodeModules) {
    for (const f of walk(root)) {
      const base = path.basename(f);
      if (base.endsWith('.json')) jsonFiles.push(f);
      else if (/^readme/i.test(base) || /\.(md|markdown)$/i.test(base)) textFiles.push(f);
    }
  }
  for (const f of walk('/usr/share/doc')) if (isDocText(f)) textFiles.push(f);
  textFiles.push(...walk('/usr/share/common-licenses'));

  const json = dedupe(jsonFiles.sort().map(readValue).filter((v): v is Buffer => v !== undefined && v.length > 0));
  const text = dedupe(textFiles.sort().map(readValue).filter((v): v is Buffer => v !== undefined && looksLikeText(v)));
  const records = dedupe(json.flatMap(jsonRecords));

  return [
    { name: 'json', values: json },
    { name: 'json-records', values: records },
    { name: 'text', values: text },
  ].map(({ name, values }) => {
    const all = byBucket(values);
    return { name, all, sample: Number.isFinite(budgetBytes) ? sampleBuckets(all, budgetBytes, rnd) : all };
  });
}

// --- measuring -------------------------------------------------------------------

const sum = (vs: Buffer[]): number => vs.reduce((n, v) => n + v.length, 0);

/**
 * ms per run of fn, the best of a few rounds (each at least roundMs long):
 * other work on this shared machine only ever makes a round slower. Stops
 * after 3 rounds, or after one round once a second has gone by (level 19 on
 * megabytes).
 */
function timeIt(fn: () => void, roundMs = 40): number {
  let best = Infinity;
  const t0 = process.hrtime.bigint();
  const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6;
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint();
    let runs = 0;
    do {
      fn();
      runs++;
    } while (since(start) < roundMs);
    best = Math.min(best, since(start) / runs);
    if (since(t0) > 1000) break;
  }
  return best;
}

interface LevelResult {
  raw: number;
  /** Bytes of the values as the store keeps them (threshold and "only if smaller" honoured). */
  stored: number;
  /** Bytes if every value were compressed (kept only if smaller), whatever its size. */
  zstdAlone: number;
  compressMBs: number;
  decompressMBs: number;
}

function measureLevel(values: Buffer[], level: number, threshold: number): LevelResult {
  const raw = sum(values);
  let packed: Buffer[] = [];
  const compressMs = timeIt(() => {
    packed = values.map((v) => zstd.compress(v, { compressionLevel: level }));
  });
  const decompressMs = timeIt(() => {
    for (const p of packed) zstd.decompress(p);
  });
  let stored = 0;
  let zstdAlone = 0;
  values.forEach((v, i) => {
    const p = packed[i]!;
    const best = Math.min(p.length, v.length);
    zstdAlone += best;
    stored += v.length > threshold ? best : v.length;
  });
  return {
    raw,
    stored,
    zstdAlone,
    compressMBs: raw / MiB / (compressMs / 1000),
    decompressMBs: raw / MiB / (decompressMs / 1000),
  };
}

interface StoreResult {
  level: number | 'off';
  values: number;
  rawValueBytes: number;
  diskBytes: number;
}

async function measureStore(values: Buffer[], level: number | 'off', keyOf: (i: number) => Buffer): Promise<StoreResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkv-bench-zstd-'));
  try {
    const store = await SegmentStore.open({
      dir,
      fsync: 'no',
      segmentBytesMax: 64 * MiB,
      cacheBytes: 0,
      compressBytesMin: level === 'off' ? Number.MAX_SAFE_INTEGER : compressBytesMinDefault,
      compressLevel: level === 'off' ? compressLevelDefault : level,
      logger: pino({ level: 'silent' }),
    });
    values.forEach((v, i) => store.put(keyOf(i), v, 0));
    await new Promise<void>((res, rej) => store.whenDurable((err) => (err ? rej(err) : res())));
    // Read a few back from disk (cache off): the round trip through the record format holds.
    for (let i = 0; i < values.length; i += Math.max(1, Math.floor(values.length / 50))) {
      const e = await store.get(keyOf(i));
      if (!e || !e.value.equals(values[i]!)) throw new Error(`store round trip failed for value ${i}`);
    }
    const s = store.stats();
    await store.close();
    const onDisk = fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
    if (onDisk !== s.diskBytes) throw new Error(`stats().diskBytes ${s.diskBytes} but the files hold ${onDisk}`);
    return { level, values: values.length, rawValueBytes: sum(values), diskBytes: s.diskBytes };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface DictResult {
  corpus: string;
  bucket: string;
  dictBytes: number;
  trainValues: number;
  testValues: number;
  raw: number;
  plain: number;
  dict: number;
  dictNoId: number;
  trainMs: number;
  /** Microseconds per value: zstd.compress as the store calls it, a kept Compressor (no dictionary), with the dictionary. */
  compressUsStore: number;
  compressUsKept: number;
  compressUsDict: number;
  decompressUsPlain: number;
  decompressUsDict: number;
}

/** Trains a dictionary with the zstd CLI on `train`; undefined if the CLI refuses (too few samples). */
function trainDictionary(train: Buffer[], maxBytes: number, level: number): { dict: Buffer; ms: number } | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkv-bench-dict-'));
  try {
    const samples = path.join(dir, 'samples');
    fs.mkdirSync(samples);
    train.forEach((v, i) => fs.writeFileSync(path.join(samples, String(i).padStart(6, '0')), v));
    const out = path.join(dir, 'dict');
    const start = Date.now();
    execFileSync('zstd', ['--train', '-r', samples, '-o', out, `--maxdict=${maxBytes}`, `-${level}`, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { dict: fs.readFileSync(out), ms: Date.now() - start };
  } catch {
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function measureDict(corpus: string, bucket: string, train: Buffer[], test: Buffer[], dictBytes: number, level: number): DictResult | undefined {
  const trained = trainDictionary(train, dictBytes, level);
  if (!trained) return undefined;
  const cmp = new zstd.Compressor();
  cmp.setParameters({ compressionLevel: level });
  cmp.loadDictionary(trained.dict);
  const cmpNoId = new zstd.Compressor();
  cmpNoId.setParameters({ compressionLevel: level, dictIDFlag: false });
  cmpNoId.loadDictionary(trained.dict);
  const kept = new zstd.Compressor();
  kept.setParameters({ compressionLevel: level });
  const dec = new zstd.Decompressor();
  dec.loadDictionary(trained.dict);

  const raw = sum(test);
  let plainPacked: Buffer[] = [];
  const plainMs = timeIt(() => {
    plainPacked = test.map((v) => zstd.compress(v, { compressionLevel: level }));
  });
  let dictPacked: Buffer[] = [];
  const keptMs = timeIt(() => {
    for (const v of test) kept.compress(v);
  });
  const dictMs = timeIt(() => {
    dictPacked = test.map((v) => cmp.compress(v));
  });
  const decPlainMs = timeIt(() => {
    for (const p of plainPacked) zstd.decompress(p);
  });
  const decMs = timeIt(() => {
    for (const p of dictPacked) dec.decompress(p);
  });
  const noId = test.map((v) => cmpNoId.compress(v));
  dictPacked.forEach((p, i) => {
    if (!dec.decompress(p).equals(test[i]!)) throw new Error('dictionary round trip failed');
  });
  // As the store would keep them: compressed only when smaller.
  const keptBytes = (ps: Buffer[]): number => ps.reduce((n, p, i) => n + Math.min(p.length, test[i]!.length), 0);
  const us = (ms: number): number => (ms * 1000) / test.length;
  return {
    corpus,
    bucket,
    dictBytes: trained.dict.length,
    trainValues: train.length,
    testValues: test.length,
    raw,
    plain: keptBytes(plainPacked),
    dict: keptBytes(dictPacked),
    dictNoId: keptBytes(noId),
    trainMs: trained.ms,
    compressUsStore: us(plainMs),
    compressUsKept: us(keptMs),
    compressUsDict: us(dictMs),
    decompressUsPlain: us(decPlainMs),
    decompressUsDict: us(decMs),
  };
}

// --- printing --------------------------------------------------------------------

const pct = (saved: number, of: number): string => (of === 0 ? '-' : `${((100 * saved) / of).toFixed(1)}%`);
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const mbs = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const us1 = (n: number): string => n.toFixed(1);

function table(head: string[], rows: string[][], rightFrom = 1): string {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i >= rightFrom ? '---:' : '---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

// --- main ------------------------------------------------------------------------

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('full', { type: 'boolean', default: false, describe: 'measure every value found, not a sample' })
    .option('budget-mb', { type: 'number', default: 2, describe: 'raw MiB sampled per corpus and size bucket' })
    .option('levels', { type: 'string', default: '1,3,9,19' })
    .option('store', { type: 'boolean', default: true, describe: 'also measure through a SegmentStore' })
    .option('dict', { type: 'boolean', default: true, describe: 'also measure zstd dictionaries for small values (needs the zstd CLI)' })
    .option('dict-sizes', { type: 'string', default: '4,16,64', describe: 'dictionary sizes to train, KiB' })
    .option('seed', { type: 'number', default: 1 })
    .strict()
    .parse();
  const levels = argv.levels.split(',').map(Number);
  const threshold = compressBytesMinDefault;
  const rnd = seededRandomFn(argv.seed);
  const started = Date.now();

  const corpora = buildCorpora(argv.full ? Infinity : argv['budget-mb'] * MiB, rnd);
  console.log(
    `compression bench: threshold ${threshold} B (values longer are compressed), ` +
      `levels ${levels.join(', ')}, ${argv.full ? 'every value' : `sample of <= ${argv['budget-mb']} MiB per bucket, seed ${argv.seed}`} ` +
      `(corpus read in ${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  );

  // 1. Per corpus, bucket and level.
  const totals: string[][] = [];
  for (const c of corpora) {
    const rows: string[][] = [];
    for (const level of levels) {
      // The "all" row weighs each bucket's measured saving by the bytes that bucket holds in the
      // whole corpus, so that sampling (the same budget per bucket) does not distort it.
      let popRaw = 0;
      let popStored = 0;
      let popAlone = 0;
      let sampleRaw = 0;
      let compressSec = 0;
      let decompressSec = 0;
      buckets.forEach((b, bi) => {
        const vs = c.sample[bi]!;
        const pop = sum(c.all[bi]!);
        if (vs.length === 0) return;
        const r = measureLevel(vs, level, threshold);
        popRaw += pop;
        popStored += (pop * r.stored) / r.raw;
        popAlone += (pop * r.zstdAlone) / r.raw;
        sampleRaw += r.raw;
        compressSec += r.raw / MiB / r.compressMBs;
        decompressSec += r.raw / MiB / r.decompressMBs;
        rows.push([
          b.name,
          String(level),
          `${int(vs.length)} / ${int(c.all[bi]!.length)}`,
          int(r.raw),
          int(r.stored),
          pct(r.raw - r.stored, r.raw),
          pct(r.raw - r.zstdAlone, r.raw),
          mbs(r.compressMBs),
          mbs(r.decompressMBs),
        ]);
      });
      const allRow = [
        `**all**`,
        String(level),
        `${int(c.sample.reduce((n, vs) => n + vs.length, 0))} / ${int(c.all.reduce((n, vs) => n + vs.length, 0))}`,
        int(popRaw),
        int(popStored),
        `**${pct(popRaw - popStored, popRaw)}**`,
        pct(popRaw - popAlone, popRaw),
        mbs(sampleRaw / MiB / compressSec),
        mbs(sampleRaw / MiB / decompressSec),
      ];
      rows.push(allRow);
      totals.push([c.name, ...allRow.slice(1)]);
    }
    // Bucket-major order reads better: each bucket's levels together.
    rows.sort((a, b) => {
      const ia = a[0] === '**all**' ? buckets.length : buckets.findIndex((x) => x.name === a[0]);
      const ib = b[0] === '**all**' ? buckets.length : buckets.findIndex((x) => x.name === b[0]);
      return ia - ib || Number(a[1]) - Number(b[1]);
    });
    console.log(`### ${c.name}\n`);
    console.log(
      table(['bucket', 'level', 'values (measured / in corpus)', 'raw B', 'stored B', 'saved (store)', 'saved (zstd, no threshold)', 'compress MB/s', 'decompress MB/s'], rows, 2),
    );
    console.log();
  }
  console.log('### Summary (all buckets, weighted by the bytes each bucket holds in the corpus)\n');
  console.log(table(['corpus', 'level', 'values (measured / in corpus)', 'raw B', 'stored B', 'saved (store)', 'saved (zstd, no threshold)', 'compress MB/s', 'decompress MB/s'], totals, 2));
  console.log();

  // 2. Through the store.
  if (argv.store) {
    const rows: string[][] = [];
    for (const c of corpora) {
      const values = c.sample.flat();
      const prefix = c.name.slice(0, 4);
      const keyOf = (i: number): Buffer => Buffer.from(`${prefix}:${String(i).padStart(11, '0')}`); // 16 bytes
      const off = await measureStore(values, 'off', keyOf);
      for (const level of levels) {
        const r = await measureStore(values, level, keyOf);
        rows.push([
          c.name,
          String(level),
          int(r.values),
          int(r.rawValueBytes),
          int(off.diskBytes),
          int(r.diskBytes),
          pct(r.rawValueBytes - r.diskBytes, r.rawValueBytes),
          pct(off.diskBytes - r.diskBytes, off.diskBytes),
        ]);
      }
    }
    console.log(`### Through the store (SegmentStore, 16-byte keys, ${RECORD_HEADER_BYTES}-byte record headers, the measured values of every bucket)\n`);
    console.log(table(['corpus', 'level', 'values', 'raw value B', 'disk B, compression off', 'disk B', 'saved vs raw values', 'saved vs compression off'], rows, 2));
    console.log();
  }

  // 3. Dictionaries for the small buckets (and 1-4 KiB, to see where the gain fades).
  let haveCli = true;
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' });
  } catch {
    haveCli = false;
  }
  if (argv.dict && !haveCli) console.log('No `zstd` CLI on the PATH (apt-get install zstd): dictionaries not measured.\n');
  if (argv.dict && haveCli) {
    const dictSizes = argv['dict-sizes'].split(',').map((k) => Number(k) * KiB);
    const rows: string[][] = [];
    for (const c of corpora) {
      for (const bi of [0, 1, 2]) {
        // Train on half of the bucket's values, measure on the other half: values written after training.
        const vs = shuffle(c.sample[bi]!, rnd);
        if (vs.length < 40) continue;
        const half = Math.floor(vs.length / 2);
        const train = vs.slice(0, half);
        const test = vs.slice(half);
        let lastDictBytes = -1;
        for (const size of dictSizes) {
          const r = measureDict(c.name, buckets[bi]!.name, train, test, size, compressLevelDefault);
          if (!r) {
            rows.push([c.name, buckets[bi]!.name, `${size / KiB} KiB`, `${train.length} / ${test.length}`, 'training refused (too few samples)', '', '', '', '', '', '']);
            continue;
          }
          // The CLI makes a smaller dictionary than asked when the samples are few: the same one again.
          if (r.dictBytes === lastDictBytes) continue;
          lastDictBytes = r.dictBytes;
          const hdr = RECORD_HEADER_BYTES + 16;
          const rec = (bytes: number): number => bytes + r.testValues * hdr;
          rows.push([
            c.name,
            buckets[bi]!.name,
            int(r.dictBytes),
            `${r.trainValues} / ${r.testValues}`,
            int(r.raw),
            pct(r.raw - r.plain, r.raw),
            `${pct(r.raw - r.dictNoId, r.raw)} (${pct(r.raw - r.dict, r.raw)})`,
            `${pct(rec(r.raw) - rec(r.plain), rec(r.raw))} / ${pct(rec(r.raw) - rec(r.dictNoId), rec(r.raw))}`,
            `${us1(r.compressUsStore)} / ${us1(r.compressUsKept)} / ${us1(r.compressUsDict)}`,
            `${us1(r.decompressUsPlain)} / ${us1(r.decompressUsDict)}`,
            int(r.trainMs),
          ]);
        }
      }
    }
    console.log(`### zstd dictionaries (level ${compressLevelDefault}; trained by \`zstd --train\` on half of the bucket's values, measured on the other half)\n`);
    console.log(
      table(
        [
          'corpus',
          'bucket',
          'dict B',
          'train / test values',
          'raw B',
          'saved, zstd',
          'saved, zstd + dict',
          'record bytes saved (16 B key + header), zstd / + dict',
          'compress us/value: store call / kept context / + dict',
          'decompress us/value: zstd / + dict',
          'train ms',
        ],
        rows,
        2,
      ),
    );
    console.log(
      '\n"saved, zstd + dict": frames without the dictionary id (the store would keep the id in the record); in brackets, with it. ' +
        '"store call" is zstd.compress(value, {compressionLevel}) as put() calls it (it resets a shared context each call); ' +
        '"kept context" a Compressor set up once.',
    );
    console.log();
  }
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

await main();
