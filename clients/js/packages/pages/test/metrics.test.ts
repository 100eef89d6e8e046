import { describe, expect, it } from 'vitest';

import { parseMetrics, quantile, rate } from '../src/metrics.js';

const scrape = (at: number, lines: string) => parseMetrics(`# HELP x y\n# TYPE x counter\n${lines}`, at);

describe('reading /metrics', () => {
  it('reads samples with their labels, rates between scrapes, and latency quantiles', () => {
    const before = scrape(0, 'courtside_deliveries_total 100\nh_bucket{le="0.001"} 10\nh_bucket{le="0.01"} 10\nh_bucket{le="+Inf"} 10\nclosed{code="3001",reason="slow consumer"} 2');
    const after = scrape(2000, 'courtside_deliveries_total 300\nh_bucket{le="0.001"} 60\nh_bucket{le="0.01"} 105\nh_bucket{le="+Inf"} 110\nclosed{code="3001",reason="slow consumer"} 3');
    expect(after.values.get('closed{code="3001",reason="slow consumer"}')).toBe(3);
    expect(rate(before, after, 'courtside_deliveries_total')).toBe(100);
    expect(rate(after, before, 'courtside_deliveries_total')).toBe(0);
    // 100 observations between the scrapes: 50 under 1 ms, 45 more under 10 ms, 5 above.
    expect(quantile(before, after, 'h', 0.5)).toBe(0.001);
    expect(quantile(before, after, 'h', 0.95)).toBe(0.01);
    expect(quantile(before, after, 'h', 0.99)).toBe(Infinity);
    expect(quantile(after, after, 'h', 0.5)).toBeUndefined();
  });
});
