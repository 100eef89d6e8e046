import { describe, expect, it } from 'vitest';

import { backoffDelay, DEFAULT_BACKOFF } from '../src/backoff.js';

describe('backoffDelay', () => {
  it('grows the cap exponentially from minDelay and never passes maxDelay', () => {
    const top = () => 0.999_999;
    const caps = [0, 1, 2, 3, 4, 5, 6, 10, 100].map((attempt) => backoffDelay(attempt, DEFAULT_BACKOFF, top));
    expect(caps).toEqual([999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999, 29_999]);
  });

  it('draws from the whole range: full jitter, down to zero', () => {
    expect(backoffDelay(3, DEFAULT_BACKOFF, () => 0)).toBe(0);
    expect(backoffDelay(3, DEFAULT_BACKOFF, () => 0.5)).toBe(4000);
  });

  it('spreads clients that failed together', () => {
    const delays = Array.from({ length: 1000 }, () => backoffDelay(4, { minDelay: 1000, maxDelay: 30_000 }));
    const buckets = new Set(delays.map((delay) => Math.floor(delay / 1600)));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(16_000);
    expect(buckets.size).toBe(10);
  });

  it('treats a negative attempt as the first', () => {
    expect(backoffDelay(-5, DEFAULT_BACKOFF, () => 0.999_999)).toBe(999);
  });
});
