/**
 * Reading the server's own `/metrics` (Prometheus text) for the operations dashboard: samples by
 * name and labels, rates between two scrapes, and latency quantiles from the histogram's bucket
 * counts between two scrapes (each quantile is the upper bound of the bucket it falls in).
 */

/** One scrape: `name{labels}` → value, and when it was taken. */
export interface Scrape {
  at: number;
  values: Map<string, number>;
}

export function parseMetrics(text: string, at: number): Scrape {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const value = Number(line.slice(space + 1));
    if (space > 0 && !Number.isNaN(value)) values.set(line.slice(0, space), value);
  }
  return { at, values };
}

/** Per second, between two scrapes, of a counter (0 when it went down: a restart). */
export function rate(before: Scrape, after: Scrape, name: string): number {
  const seconds = (after.at - before.at) / 1000;
  const delta = (after.values.get(name) ?? 0) - (before.values.get(name) ?? 0);
  return seconds > 0 && delta > 0 ? delta / seconds : 0;
}

/** The histogram's `q` quantile (0..1) over what it counted between two scrapes, in seconds. */
export function quantile(before: Scrape, after: Scrape, histogram: string, q: number): number | undefined {
  const buckets: Array<[number, number]> = [];
  for (const [key, value] of after.values) {
    const match = new RegExp(`^${histogram}_bucket\\{le="([^"]+)"\\}$`).exec(key);
    if (match?.[1] === undefined) continue;
    const bound = match[1] === '+Inf' ? Infinity : Number(match[1]);
    buckets.push([bound, value - (before.values.get(key) ?? 0)]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets[buckets.length - 1]?.[1] ?? 0;
  if (total <= 0) return undefined;
  const wanted = q * total;
  return buckets.find(([, cumulative]) => cumulative >= wanted)?.[0];
}
