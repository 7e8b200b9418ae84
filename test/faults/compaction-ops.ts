// The op stream of the compaction crash test: op n touches key n % keys,
// and is a delete for about one n in seven.

export const compactionKeys = 300;
/** Ops the child may have issued past its last acknowledgement. */
export const compactionOpsInFlight = 40;

export function compactionOp(n: number): { key: string; value: string | undefined } {
  const key = `key${n % compactionKeys}`;
  const del = Math.imul(n, 2654435761) >>> 0;
  return { key, value: del % 7 === 0 ? undefined : `v${n}-${'p'.repeat(n % 97)}` };
}
