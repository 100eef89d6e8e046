/**
 * The operations dashboard: the node that serves it (each node of a cluster has its own), its connections (WebSocket, SSE, Socket.IO), publish and
 * delivery rates, publish→deliver latency p50/p95/p99 (seed 002's sync metrics), slow-consumer
 * closes and the hook and quota refusals — live, from the server's own `/metrics` every second,
 * each with a chart of the last two minutes.
 */

import { useEffect, useState } from 'react';

import { parseMetrics, quantile, rate, type Scrape } from './metrics.js';

interface Figure {
  label: string;
  value: (before: Scrape, after: Scrape) => number | undefined;
  format: (value: number) => string;
}

const count = (value: number) => value.toFixed(0);
const perSecond = (value: number) => `${value.toFixed(1)}/s`;
const ms = (value: number) => (value === Infinity ? '> 10 s' : `≤ ${(value * 1000).toFixed(value < 0.001 ? 2 : 1)} ms`);
const gauge = (name: string) => (_: Scrape, after: Scrape) => after.values.get(name);

const FIGURES: Figure[] = [
  { label: 'WebSocket connections', value: gauge('courtside_connections'), format: count },
  { label: 'SSE streams', value: gauge('courtside_sse_connections'), format: count },
  { label: 'Socket.IO sockets', value: gauge('courtside_socketio_connections'), format: count },
  { label: 'Subscriptions', value: gauge('courtside_subscriptions'), format: count },
  { label: 'Publications', value: (b, a) => rate(b, a, 'courtside_publications_total'), format: perSecond },
  { label: 'Deliveries', value: (b, a) => rate(b, a, 'courtside_deliveries_total'), format: perSecond },
  { label: 'Latency p50', value: (b, a) => quantile(b, a, 'courtside_deliver_latency_seconds', 0.5), format: ms },
  { label: 'Latency p95', value: (b, a) => quantile(b, a, 'courtside_deliver_latency_seconds', 0.95), format: ms },
  { label: 'Latency p99', value: (b, a) => quantile(b, a, 'courtside_deliver_latency_seconds', 0.99), format: ms },
  { label: 'Slow-consumer closes', value: gauge('courtside_disconnects_total{code="3001",reason="slow consumer"}'), format: count },
  { label: 'Queue overflows', value: gauge('courtside_queue_overflows_total'), format: count },
];

/** Samples kept per figure: two minutes at one a second. */
const KEEP = 120;

function Sparkline({ values }: { values: number[] }) {
  const finite = values.filter(Number.isFinite);
  const top = Math.max(1, ...finite);
  const points = values.map((v, i) => `${(i / (KEEP - 1)) * 100},${30 - (Number.isFinite(v) ? v / top : 1) * 28}`).join(' ');
  return (
    <svg viewBox="0 0 100 30" preserveAspectRatio="none" className="spark" aria-hidden="true">
      <polyline points={points} fill="none" stroke="currentColor" strokeWidth="1.5" vectorEffect="non-scaling-stroke" />
    </svg>
  );
}

export function Ops() {
  const [series, setSeries] = useState<number[][]>(FIGURES.map(() => []));
  const [latest, setLatest] = useState<Array<number | undefined>>([]);
  const [failed, setFailed] = useState<string | undefined>(undefined);
  const [node, setNode] = useState<string | undefined>(undefined);
  useEffect(() => {
    let previous: Scrape | undefined;
    let stopped = false;
    const scrape = async () => {
      try {
        const response = await fetch('/metrics', { cache: 'no-store' });
        const now = parseMetrics(await response.text(), Date.now());
        setFailed(undefined);
        setNode([...now.values.keys()].map((key) => /^courtside_node_info\{node="([^"]+)"\}$/.exec(key)?.[1]).find((id) => id !== undefined));
        if (previous !== undefined && !stopped) {
          const before = previous;
          const values = FIGURES.map((figure) => figure.value(before, now));
          setLatest(values);
          setSeries((all) => all.map((values1, i) => [...values1, values[i] ?? 0].slice(-KEEP)));
        }
        previous = now;
      } catch (error) {
        setFailed(String(error));
      }
    };
    void scrape();
    const timer = setInterval(() => void scrape(), 1000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  return (
    <main>
      <header>
        <h1>Operations</h1>
        <p className="status" data-testid="node">
          Node {node ?? '…'}, every second, from /metrics
        </p>
      </header>
      {failed !== undefined && <p role="alert">The metrics could not be read: {failed}</p>}
      <ul className="grid" aria-label="Figures">
        {FIGURES.map((figure, i) => {
          const value = latest[i];
          return (
            <li key={figure.label} className="card">
              <h2>{figure.label}</h2>
              <p className="figure" data-testid={figure.label}>
                {value === undefined ? '–' : figure.format(value)}
              </p>
              <Sparkline values={series[i] ?? []} />
            </li>
          );
        })}
      </ul>
    </main>
  );
}
