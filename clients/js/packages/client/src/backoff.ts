/**
 * Exponential backoff with full jitter (docs/client.md §1): the delay before attempt `n` is a
 * random value in `[0, min(maxDelay, minDelay × 2ⁿ)]`, so clients that lost the server together
 * do not come back together.
 */

export interface BackoffOptions {
  /** Milliseconds; the cap of the first attempt's delay. Default 1000. */
  minDelay: number;
  /** Milliseconds; no delay is longer. Default 30000. */
  maxDelay: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { minDelay: 1000, maxDelay: 30_000 };

/** The delay before attempt `attempt` (0 for the first after a success). */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  const cap = Math.min(options.maxDelay, options.minDelay * 2 ** exponent);
  return Math.floor(random() * cap);
}
