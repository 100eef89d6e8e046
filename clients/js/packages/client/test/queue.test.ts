import { describe, expect, it } from 'vitest';

import { Client } from '../src/client.js';
import { MemoryOperationStore, OperationQueue, type FateEvent } from '../src/queue.js';
import { FakeServer } from '../src/testing.js';

const quick = { minDelay: 1, maxDelay: 5 };

function connectedClient(server: FakeServer): Client {
  const client = new Client({ url: 'http://fake', WebSocket: server.WebSocket, backoff: quick, watchNetwork: false });
  client.connect();
  return client;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((wait) => setTimeout(wait, 2));
  }
}

/** A seeded generator (mulberry32), so a failing run can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('OperationQueue', () => {
  it('runs operations in order, one at a time, with the operation id as the idempotency key', async () => {
    const server = new FakeServer();
    let offset = 0;
    server.answer = (method) => (method === 'publish' ? { result: { epoch: 'e', offset: ++offset } } : { result: {} });
    const client = connectedClient(server);
    const queue = new OperationQueue(client, { backoff: quick });
    const fates = await Promise.all([1, 2, 3].map((n) => queue.enqueue('publish', { channel: 'chat:a', data: { n } })));
    expect(fates.map((event) => event.fate)).toEqual([1, 2, 3].map((n) => ({ kind: 'applied', result: { epoch: 'e', offset: n } })));
    const publishes = server.commands.filter((command) => command.method === 'publish');
    expect(publishes.map((command) => (command.params.data as { n: number }).n)).toEqual([1, 2, 3]);
    expect(publishes.map((command) => command.params.idempotency_key)).toEqual(fates.map((event) => event.operation.id));
    expect(queue.pending).toEqual([]);
    client.close();
  });

  it('moves an operation to the failed list after three temporary failures, goes on, and lets the app retry or discard it', async () => {
    const server = new FakeServer();
    let failing = true;
    server.answer = (method, params) => {
      if (method !== 'publish') return { result: {} };
      if (failing && (params.data as { n: number }).n === 1) return { error: { code: 111, message: 'unavailable: store' } };
      return { result: { epoch: 'e', offset: 1 } };
    };
    const client = connectedClient(server);
    const queue = new OperationQueue(client, { backoff: quick });
    const failed: string[] = [];
    queue.on('failed', (operation) => failed.push(operation.id));
    const first = queue.enqueue('publish', { channel: 'chat:a', data: { n: 1 } });
    const second = await queue.enqueue('publish', { channel: 'chat:a', data: { n: 2 } });
    expect(second.fate.kind).toBe('applied');
    expect(queue.failed).toHaveLength(1);
    expect(queue.failed[0]).toMatchObject({ attempts: 3, lastError: { code: 111 } });
    expect(server.commands.filter((command) => command.method === 'publish' && (command.params.data as { n: number }).n === 1)).toHaveLength(3);

    failing = false;
    await queue.retry(queue.failed[0]?.id ?? '');
    expect((await first).fate.kind).toBe('applied');
    expect(queue.failed).toEqual([]);

    server.answer = () => ({ error: { code: 111, message: 'unavailable' } });
    const third = queue.enqueue('publish', { channel: 'chat:a', data: { n: 3 } });
    await until(() => queue.failed.length === 1, 'the failed list');
    await queue.discard(queue.failed[0]?.id ?? '');
    expect((await third).fate).toEqual({ kind: 'rejected', error: { code: 'discarded', message: 'discarded by the app' } });
    expect(failed).toHaveLength(2);
    client.close();
  });

  it('ends an operation the server refuses for good as rejected, with the error', async () => {
    const server = new FakeServer();
    server.answer = () => ({ error: { code: 107, message: 'bad request: `data` does not match the schema' } });
    const client = connectedClient(server);
    const queue = new OperationQueue(client, { backoff: quick });
    const { fate } = await queue.enqueue('publish', { channel: 'chat:a', data: {} });
    expect(fate).toEqual({ kind: 'rejected', error: { code: 107, message: 'bad request: `data` does not match the schema' } });
    client.close();
  });

  it('keeps operations made offline across a reload and runs them once connected', async () => {
    const server = new FakeServer();
    server.up = false;
    const store = new MemoryOperationStore();
    const offline = connectedClient(server);
    const before = new OperationQueue(offline, { store, backoff: quick });
    void before.enqueue('publish', { channel: 'chat:a', data: { n: 1 } });
    void before.enqueue('publish', { channel: 'chat:a', data: { n: 2 } });
    await until(() => before.pending.length === 2, 'two queued');
    expect(server.commands.filter((command) => command.method === 'publish')).toEqual([]);
    before.close();
    offline.close();

    // The page reloads: a new client and queue over the same store; the server is back.
    server.up = true;
    let offset = 0;
    server.answer = (method) => (method === 'publish' ? { result: { epoch: 'e', offset: ++offset } } : { result: {} });
    const client = connectedClient(server);
    const after = new OperationQueue(client, { store, backoff: quick });
    const fates: FateEvent[] = [];
    after.on('fate', (event) => fates.push(event));
    await until(() => fates.length === 2, 'both fates');
    expect(fates.map((event) => (event.operation.args as { data: { n: number } }).data.n)).toEqual([1, 2]);
    expect((await store.load()).queued).toEqual([]);
    client.close();
  });

  it('gives every operation exactly one fate, in order, whatever the server and the network do (seeded)', async () => {
    const seed = Number(process.env.COURTSIDE_TEST_SEED ?? Date.now() % 100_000);
    const random = seeded(seed);
    const server = new FakeServer();
    const stored = new Map<string, number>();
    server.answer = (method, params) => {
      if (method !== 'publish') return { result: {} };
      const roll = random();
      const key = params.idempotency_key as string;
      if (roll < 0.08) {
        // Stored, but the answer is lost with the connection: the retry must find it stored.
        if (!stored.has(key)) stored.set(key, stored.size + 1);
        setTimeout(() => server.dropAll());
        return undefined;
      }
      if (roll < 0.15) {
        setTimeout(() => server.dropAll());
        return undefined;
      }
      // As the server does: a key it stored answers as a duplicate, whatever else happens.
      if (stored.has(key)) return { result: { epoch: 'e', offset: stored.get(key), duplicate: true } };
      if (roll < 0.35) return { error: { code: 111, message: 'unavailable' } };
      if (roll < 0.45) return { error: { code: 107, message: 'bad request' } };
      stored.set(key, stored.size + 1);
      return { result: { epoch: 'e', offset: stored.get(key) } };
    };
    const client = connectedClient(server);
    const queue = new OperationQueue(client, { backoff: quick, maxAttempts: 3 });
    const fates = new Map<string, FateEvent[]>();
    queue.on('fate', (event) => fates.set(event.operation.id, [...(fates.get(event.operation.id) ?? []), event]));
    const count = 40;
    const ids: string[] = [];
    for (let n = 0; n < count; n++) void queue.enqueue('publish', { channel: 'chat:a', data: { n } }).then((event) => ids.push(event.operation.id));
    await until(() => fates.size + queue.failed.length === count && queue.pending.length === 0, `every operation's end (seed ${seed})`);
    for (const [id, events] of fates) expect(events, `one fate for ${id} (seed ${seed})`).toHaveLength(1);
    for (const operation of queue.failed) expect(fates.has(operation.id), `seed ${seed}`).toBe(false);
    // Applied operations were stored once each, in the order they were made.
    const applied = [...fates.values()].map(([event]) => event).filter((event): event is FateEvent => event?.fate.kind === 'applied');
    const order = applied.map((event) => stored.get(event.operation.id) ?? 0);
    expect(order, `seed ${seed}`).toEqual([...order].sort((a, b) => a - b));
    // A stored operation is applied (its answer may have been lost, never the publication).
    expect([...stored.keys()].every((id) => fates.get(id)?.[0]?.fate.kind === 'applied' || queue.failed.some((op) => op.id === id)), `seed ${seed}`).toBe(true);
    client.close();
  });
});
