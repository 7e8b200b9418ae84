// Reconnect delays: exponential backoff with "full jitter" (AWS architecture
// blog, "Exponential Backoff And Jitter"): the n-th retry waits a uniformly
// random time in [0, min(cap, base * 2^n)). The randomness spreads the
// reconnects of many nodes to one restarted peer instead of having them all
// arrive in the same millisecond.

/** Delay before retry number `attempt` (0 = first retry after a failure or a drop). */
export function backoffDelayMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  // Math.min on the exponent keeps 2^attempt finite for a peer that has been down for days.
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
