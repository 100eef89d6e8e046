/**
 * The page the browser tests drive: the client as an app uses it, in a real Chromium. `?mode=queue`
 * runs a `Client` and an offline queue kept in IndexedDB; `?mode=tabs` a `SharedClient`, one
 * connection for every tab. What the test reads and does goes through `window.courtsideTest`.
 */

import { Client, IndexedDbOperationStore, OperationQueue, SharedClient, type FateEvent } from '../../src/index.js';

const params = new URLSearchParams(location.search);
const server = params.get('server') ?? '';

interface QueuePage {
  state: () => string;
  loaded: Promise<void>;
  enqueue: (n: number) => void;
  pending: () => number;
  fates: FateEvent[];
}

interface TabsPage {
  state: () => string;
  isLeader: () => boolean;
  offsets: number[];
  publish: (n: number) => Promise<number>;
}

declare global {
  interface Window {
    courtsideTest: QueuePage | TabsPage;
  }
}

if (params.get('mode') === 'queue') {
  const client = new Client({ url: server, backoff: { minDelay: 100, maxDelay: 500 } });
  client.connect();
  const queue = new OperationQueue(client, { store: new IndexedDbOperationStore('browser-test'), backoff: { minDelay: 100, maxDelay: 500 } });
  const fates: FateEvent[] = [];
  queue.on('fate', (event) => fates.push(event));
  window.courtsideTest = {
    state: () => client.state,
    loaded: queue.loaded(),
    enqueue: (n) => void queue.enqueue('publish', { channel: 'chat:browser', data: { n } }),
    pending: () => queue.pending.length,
    fates,
  };
} else {
  const client = new SharedClient({ url: server, name: 'browser-tabs', backoff: { minDelay: 100, maxDelay: 500 } });
  const offsets: number[] = [];
  client.subscribe('chat:tabs').on('publication', (publication) => offsets.push(publication.offset));
  window.courtsideTest = {
    state: () => client.state,
    isLeader: () => client.isLeader,
    offsets,
    publish: async (n) => (await client.publish('chat:tabs', { n })).offset,
  };
}

// The page works offline once its service worker holds it.
void navigator.serviceWorker.register('/sw.js');
