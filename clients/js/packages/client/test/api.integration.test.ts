/**
 * The generated REST client and the sports API's offline operations against a real server:
 * sign-in with refresh-token rotation, a scorekeeper's claim, score operations queued while
 * offline that land in order, a stale edit that comes back as a `conflict` with the stored
 * score, and an impossible score `rejected` with the server's validation error.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { createApi, scoreExecutor, Session, type ScoreArgs } from '../src/api/index.js';
import { Client, OperationQueue, type ClientOptions, type FateEvent } from '../src/index.js';
import { courtsideBinary, TestServer } from './server.js';

const binary = courtsideBinary();

describe.skipIf(binary === undefined)('REST client against courtside serve', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await TestServer.start(binary ?? '');
    await server.seedCup();
  });

  afterAll(async () => {
    await (server as TestServer | undefined)?.stop();
  });

  it('signs in, rotates the refresh token before the access token expires, and calls the API typed', async () => {
    const session = new Session({ baseUrl: server.url });
    await expect(session.signIn('kim', 'wrong password')).rejects.toMatchObject({ code: 401 });
    const user = await session.signIn('kim', 'correct horse battery');
    expect(user.username).toBe('kim');
    const first = await session.getToken();
    await new Promise((wait) => setTimeout(wait, 2600));
    const [second, again] = await Promise.all([session.getToken(), session.getToken()]);
    expect(second).not.toBe(first);
    expect(again).toBe(second);
    const api = createApi({ baseUrl: server.url, getToken: session.getToken });
    const { data } = await api.GET('/api/events/{event_id}', { params: { path: { event_id: 'cup' } } });
    expect(data?.matches.map((match) => match.id)).toEqual(['m1']);
  }, 10_000);

  it('queues score operations while offline, then lands them in order; a stale one is a conflict and a bad one rejected', async () => {
    const session = new Session({ baseUrl: server.url });
    await session.signIn('kim', 'correct horse battery');
    const api = createApi({ baseUrl: server.url, getToken: session.getToken });
    const claim = await api.POST('/api/events/{event_id}/claims/{match_id}', { params: { path: { event_id: 'cup', match_id: 'm1' } }, body: {} });
    expect(claim.response.status, JSON.stringify(claim.error)).toBe(200);
    const fencingToken = claim.data?.claim?.fencingToken;

    const client = new Client({ url: server.url, getToken: session.getToken, WebSocket: WebSocket as unknown as NonNullable<ClientOptions['WebSocket']>, backoff: { minDelay: 50, maxDelay: 200 }, watchNetwork: false });
    const queue = new OperationQueue(client, { executors: { score: scoreExecutor(api) }, backoff: { minDelay: 50, maxDelay: 200 } });
    const fates: FateEvent[] = [];
    queue.on('fate', (event) => fates.push(event));
    const score = (home: number, away: number, extra: Partial<ScoreArgs['update']> = {}): ScoreArgs => ({
      eventId: 'cup',
      update: { matchId: 'm1', sets: [{ home, away }], status: 'in_progress', ...(fencingToken === undefined ? {} : { fencingToken }), ...extra },
    });
    // Offline: the client is not connected yet, so the queue holds the operations.
    for (let point = 1; point <= 5; point++) void queue.enqueue('score', score(point, 0));
    void queue.enqueue('score', score(5, 1, { baseVersion: 1 }));
    void queue.enqueue('score', score(99, 0));
    await new Promise((wait) => setTimeout(wait, 50));
    expect(queue.pending).toHaveLength(7);
    client.connect();
    const deadline = Date.now() + 15_000;
    while (fates.length < 7 && Date.now() < deadline) await new Promise((wait) => setTimeout(wait, 25));
    expect(fates.map((event) => event.fate.kind)).toEqual(['applied', 'applied', 'applied', 'applied', 'applied', 'conflict', 'rejected']);
    const conflict = fates[5]?.fate;
    expect(conflict?.kind === 'conflict' && (conflict.conflict as { code: string; current: { version: number } })).toMatchObject({ code: 'stale_version', current: { version: 5 } });
    const rejected = fates[6]?.fate;
    expect(rejected?.kind === 'rejected' && rejected.error.code).toBe('invalid_score');
    const history = await api.GET('/api/events/{event_id}/scores/{match_id}/history', { params: { path: { event_id: 'cup', match_id: 'm1' } } });
    expect(history.data?.changes.map((change) => change.sets[0]?.home)).toEqual([1, 2, 3, 4, 5]);
    queue.close();
    client.close();
  }, 20_000);
});
