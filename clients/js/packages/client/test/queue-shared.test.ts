/**
 * One queue kept by several tabs (one store, as IndexedDB is one per origin): one tab at a time
 * sends, every operation is sent once whichever tab made it, every tab hears every fate, and
 * when the sending tab closes another goes on with what is left.
 */

import { describe, expect, it } from 'vitest';

import { Client } from '../src/client.js';
import { MemoryOperationStore, OperationQueue, type FateEvent } from '../src/queue.js';
import { FakeServer } from '../src/testing.js';
import { InProcessLocks } from './support/locks.js';

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((wait) => setTimeout(wait, 5));
  }
}

describe('OperationQueue shared by tabs', () => {
  it('sends each operation once from one tab, tells every tab, and passes on when that tab closes', async () => {
    const server = new FakeServer();
    let offset = 0;
    let answering = true;
    server.answer = (method) => (method !== 'publish' ? { result: {} } : answering ? { result: { epoch: 'e', offset: ++offset } } : undefined);
    const store = new MemoryOperationStore();
    const locks = new InProcessLocks();
    const tabs = [1, 2, 3].map(() => {
      const client = new Client({ url: 'http://fake', WebSocket: server.WebSocket, watchNetwork: false, backoff: { minDelay: 1, maxDelay: 5 } });
      client.connect();
      const queue = new OperationQueue(client, { store, shared: { name: 'test', locks }, backoff: { minDelay: 1, maxDelay: 5 } });
      const heard: FateEvent[] = [];
      queue.on('fate', (event) => heard.push(event));
      return { client, queue, heard };
    });
    const [first, second, third] = tabs;
    if (first === undefined || second === undefined || third === undefined) throw new Error('three tabs');
    const fates = await Promise.all([
      first.queue.enqueue('publish', { channel: 'chat:a', data: { from: 1 } }),
      second.queue.enqueue('publish', { channel: 'chat:a', data: { from: 2 } }),
      third.queue.enqueue('publish', { channel: 'chat:a', data: { from: 3 } }),
    ]);
    expect(fates.map((event) => event.fate.kind)).toEqual(['applied', 'applied', 'applied']);
    expect(server.commands.filter((command) => command.method === 'publish')).toHaveLength(3);
    await until(() => tabs.every((tab) => tab.heard.length === 3), 'every tab hearing every fate');

    // The sending tab closes with an operation unanswered: another tab sends it, once more.
    answering = false;
    const left = second.queue.enqueue('publish', { channel: 'chat:a', data: { from: 2, n: 2 } });
    await until(() => server.commands.filter((command) => command.method === 'publish').length === 4, 'the fourth sent');
    first.queue.close();
    first.client.close();
    answering = true;
    expect((await left).fate.kind).toBe('applied');
    const sent = server.commands.filter((command) => command.method === 'publish').map((command) => command.params.idempotency_key);
    expect(new Set(sent).size).toBe(4);
    expect(second.queue.pending).toEqual([]);
    for (const tab of [second, third]) {
      tab.queue.close();
      tab.client.close();
    }
  });
});
