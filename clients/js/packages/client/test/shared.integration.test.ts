/**
 * Tabs sharing one connection, in one Node process: BroadcastChannel is Node's own, the Web
 * Locks API an in-process lock manager with the same granting rule (first come, held until its
 * callback's promise settles). Three tabs cost the server one connection; each sees every
 * publication of the channels it follows, keyed state included; when the leader tab closes,
 * another takes over and the others miss nothing.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import type { ClientOptions } from '../src/client.js';
import { SharedClient } from '../src/shared.js';
import { InProcessLocks } from './support/locks.js';
import { courtsideBinary, TestServer } from './server.js';

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((wait) => setTimeout(wait, 20));
  }
}

const binary = courtsideBinary();

describe.skipIf(binary === undefined)('SharedClient: tabs sharing one connection', () => {
  let server: TestServer;
  const tabs: SharedClient[] = [];

  beforeAll(async () => {
    server = await TestServer.start(binary ?? '');
  });

  afterAll(async () => {
    for (const tab of tabs) tab.close();
    await (server as TestServer | undefined)?.stop();
  });

  async function connections(): Promise<number> {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('courtside_connections '));
    return Number(line?.split(' ')[1] ?? NaN);
  }

  it('costs the server one connection for three tabs, and survives the leader tab closing', async () => {
    const locks = new InProcessLocks();
    const open = (name: string) => {
      const tab = new SharedClient({ name, url: server.url, WebSocket: WebSocket as unknown as NonNullable<ClientOptions['WebSocket']>, locks, watchNetwork: false, backoff: { minDelay: 20, maxDelay: 100 } });
      tabs.push(tab);
      return tab;
    };
    const [first, second, third] = [open('scores'), open('scores'), open('scores')];
    if (first === undefined || second === undefined || third === undefined) throw new Error('three tabs');
    await until(() => tabs.every((tab) => tab.state === 'connected'), 'every tab connected');
    expect(tabs.filter((tab) => tab.isLeader)).toHaveLength(1);
    expect(await connections()).toBe(1);

    const seen = new Map<SharedClient, number[]>();
    for (const tab of [first, second, third]) {
      const subscription = tab.subscribe('chat:tabs');
      seen.set(tab, []);
      subscription.on('publication', (publication) => seen.get(tab)?.push(publication.offset));
    }
    const board = third.subscribe('board:tabs', { keyed: true });
    await until(() => [first, second, third].every((tab) => tab.getSubscription('chat:tabs')?.state === 'subscribed') && board.state === 'subscribed', 'subscribed everywhere');
    for (let n = 1; n <= 10; n++) await server.publish('chat:tabs', { n });
    await server.publish('board:tabs', { score: 3 }, 'kim');
    const published = await second.publish('chat:tabs', { n: 'from the second tab' });
    expect(published.offset).toBe(11);
    await until(() => [...seen.values()].every((offsets) => offsets.length === 11), 'eleven everywhere');
    await until(() => board.entries.get('kim') !== undefined, 'the keyed state in the third tab');
    expect(await connections()).toBe(1);

    // The leader tab closes: another takes the connection; the others miss nothing.
    const leader = tabs.find((tab) => tab.isLeader);
    leader?.close();
    const remaining = [first, second, third].filter((tab) => tab !== leader);
    await until(() => remaining.some((tab) => tab.isLeader), 'a new leader');
    await until(() => remaining.every((tab) => tab.state === 'connected'), 'connected again');
    for (let n = 12; n <= 20; n++) await server.publish('chat:tabs', { n });
    await until(() => remaining.every((tab) => seen.get(tab)?.length === 20), 'twenty in the remaining tabs');
    for (const tab of remaining) expect(seen.get(tab)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await connections()).toBe(1);
    const late = open('scores');
    const lateBoard = late.subscribe('board:tabs', { keyed: true });
    await until(() => lateBoard.entries.get('kim') !== undefined, 'a late tab gets the keyed state');
    expect(lateBoard.entries.get('kim')).toEqual({ score: 3 });
  }, 30_000);
});
