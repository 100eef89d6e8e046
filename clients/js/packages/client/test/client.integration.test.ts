/**
 * The client against a real `courtside serve` (test/server.ts): publish resolves on the durable
 * ack, a subscriber resumes across a server restart with no gap and no duplicate, a publish made
 * while the server is down lands once when it is back, a keyed channel whose history was trimmed
 * is recovered from the snapshot without the app reloading, and a short-lived token is refreshed
 * on the live connection.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { Client, MemoryOperationStore, OperationQueue, type ClientOptions, type FateEvent, type Publication, type ResetEvent, type StateEvent } from '../src/index.js';
import { courtsideBinary, TestServer } from './server.js';

const binary = courtsideBinary();
if (binary === undefined) {
  const message = 'SKIPPED: no courtside binary (set COURTSIDE_BIN or run `cargo build`): the integration tests need a real server';
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true, so this test must not be skipped)`);
  console.warn(message);
}

/** Resolves when `check` holds, polling; fails after `ms`. */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((wait) => setTimeout(wait, 20));
  }
}

describe.skipIf(binary === undefined)('Client against courtside serve', () => {
  let server: TestServer;
  const clients: Client[] = [];
  const client = (options: Partial<ClientOptions> = {}): Client => {
    const created = new Client({ url: server.url, WebSocket: WebSocket as unknown as ClientOptions['WebSocket'] & object, backoff: { minDelay: 50, maxDelay: 500 }, ...options });
    clients.push(created);
    return created;
  };

  beforeAll(async () => {
    server = await TestServer.start(binary ?? '');
  });

  afterAll(async () => {
    for (const created of clients) created.close();
    await (server as TestServer | undefined)?.stop();
  });

  it('publishes, resolving on the durable ack, and delivers in order', async () => {
    const reader = client();
    const writer = client();
    reader.connect();
    writer.connect();
    const subscription = reader.subscribe('chat:order');
    const received: unknown[] = [];
    subscription.on('publication', (publication) => received.push(publication.data));
    await until(() => subscription.state === 'subscribed', 'the subscription');
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => writer.publish('chat:order', { n })));
    expect(results.map((result) => result.offset).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    await until(() => received.length === 5, 'five publications');
    expect(received.map((data) => (data as { n: number }).n).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('resumes across a server restart with no gap and no duplicate, and lands a publish made while it was down once', async () => {
    const reader = client();
    const states: StateEvent[] = [];
    reader.on('state', (event) => states.push(event));
    reader.connect();
    const subscription = reader.subscribe('chat:restart');
    const offsets: number[] = [];
    subscription.on('publication', (publication: Publication) => offsets.push(publication.offset));
    await until(() => subscription.state === 'subscribed', 'the subscription');
    for (let n = 1; n <= 10; n++) await server.publish('chat:restart', { n });
    await until(() => offsets.length === 10, 'ten publications');

    const writer = client();
    writer.connect();
    await until(() => writer.state === 'connected', 'the writer');
    await (server as TestServer | undefined)?.stop();
    await until(() => reader.state === 'connecting', 'the reader noticing');
    const whileDown = writer.publish('chat:restart', { n: 'while down' }, { idempotencyKey: 'down-1' });
    await server.run();
    for (let n = 11; n <= 20; n++) await server.publish('chat:restart', { n });
    const landed = await whileDown;
    await until(() => offsets.length === 21, 'twenty-one publications');
    expect(offsets).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(landed.offset).toBeGreaterThan(10);
    const again = await writer.publish('chat:restart', { n: 'while down' }, { idempotencyKey: 'down-1' });
    expect(again).toMatchObject({ offset: landed.offset, duplicate: true });
    const closes = states.filter((event) => event.state === 'connecting' && event.code >= 1000);
    expect(closes[0]).toMatchObject({ code: 3000 });
  });

  it('recovers a keyed channel whose history was trimmed from the snapshot, without the app reloading', async () => {
    const reader = client();
    reader.connect();
    const subscription = reader.subscribe('board:b1', { keyed: true });
    await until(() => subscription.state === 'subscribed', 'the subscription');
    await server.publish('board:b1', { score: 1 }, 'kim');
    await server.publish('board:b1', { score: 2 }, 'lee');
    await until(() => subscription.entries.size === 2, 'two keys');

    reader.disconnect();
    // History keeps 4: ten more publications trim what the reader would need to resume.
    for (let n = 1; n <= 10; n++) await server.publish('board:b1', { score: 10 + n }, n % 2 === 0 ? 'kim' : 'ana');
    const resets: ResetEvent[] = [];
    subscription.on('reset', (reset) => resets.push(reset));
    reader.connect();
    await until(() => resets.length === 1, 'the reset');
    expect(Object.fromEntries(subscription.entries)).toEqual({ kim: { score: 20 }, ana: { score: 19 }, lee: { score: 2 } });
    expect(subscription.position?.offset).toBe(12);
    await server.publish('board:b1', { score: 30 }, 'lee');
    await until(() => (subscription.entries.get('lee') as { score: number }).score === 30, 'a live change after the reset');
  });

  it('refreshes a short-lived token on the live connection', async () => {
    let tokens = 0;
    const reader = client({
      getToken: async () => {
        tokens += 1;
        return server.token('kim', 3);
      },
    });
    const states: StateEvent[] = [];
    reader.on('state', (event) => states.push(event));
    reader.connect();
    await until(() => reader.state === 'connected', 'the connection');
    expect(reader.connection?.user).toBe('kim');
    await new Promise((wait) => setTimeout(wait, 5000));
    expect(tokens).toBeGreaterThanOrEqual(3);
    expect(states.map((event) => event.state)).toEqual(['connecting', 'connected']);
  }, 15_000);

  it('queues operations made while the server is down and lands each once, in order, when it is back', async () => {
    const writer = client();
    const store = new MemoryOperationStore();
    writer.connect();
    await until(() => writer.state === 'connected', 'the writer');
    await server.stop();
    await until(() => writer.state === 'connecting', 'the writer noticing');
    const queue = new OperationQueue(writer, { store, backoff: { minDelay: 50, maxDelay: 200 } });
    const fates: FateEvent[] = [];
    queue.on('fate', (event) => fates.push(event));
    for (let point = 1; point <= 20; point++) void queue.enqueue('publish', { channel: 'chat:queue', data: { point } });
    await until(() => queue.pending.length === 20, 'twenty queued');
    await server.run();
    await until(() => fates.length === 20, 'twenty fates', 20_000);
    expect(fates.every((event) => event.fate.kind === 'applied')).toBe(true);
    const reader = client();
    reader.connect();
    const history = await reader.history('chat:queue', { limit: 100 });
    expect(history.publications.map((publication) => (publication.data as { point: number }).point)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await store.load()).queued).toEqual([]);
    queue.close();
  }, 30_000);

  it('moves an operation whose server answers keep being temporary to the failed list after three attempts', async () => {
    // RPC calls go to an app backend that is not there: the server answers 111 each time.
    const flaky = await TestServer.start(binary ?? '', '[hooks]\nurl = "http://127.0.0.1:9/hooks"\nrpc = true\nretries = 0\n');
    try {
      const caller = new Client({ url: flaky.url, WebSocket: WebSocket as unknown as NonNullable<ClientOptions['WebSocket']>, watchNetwork: false });
      clients.push(caller);
      caller.connect();
      const queue = new OperationQueue(caller, {
        backoff: { minDelay: 10, maxDelay: 50 },
        executors: { rpc: async (operation) => ({ kind: 'applied', result: await caller.rpc('standings', operation.args) }) },
      });
      const failed: number[] = [];
      queue.on('failed', (operation) => failed.push(operation.attempts));
      void queue.enqueue('rpc', { division: 'u14' });
      const applied = queue.enqueue('publish', { channel: 'chat:after', data: { n: 1 } });
      expect((await applied).fate.kind).toBe('applied');
      expect(failed).toEqual([3]);
      expect(queue.failed[0]?.lastError?.code).toBe(111);
      queue.close();
    } finally {
      await flaky.stop();
    }
  });

  it('reports refusals with the server code and stops following', async () => {
    const reader = client();
    reader.connect();
    const subscription = reader.subscribe('nowhere:x');
    const ended: number[] = [];
    subscription.on('state', (event) => ended.push(event.code));
    await until(() => subscription.state === 'unsubscribed', 'the refusal');
    expect(ended).toEqual([102]);
    await expect(reader.publish('nowhere:x', {})).rejects.toMatchObject({ code: 102 });
    await expect(reader.rpc('anything')).rejects.toMatchObject({ code: 104 });
  });
});
