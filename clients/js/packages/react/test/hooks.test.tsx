import { Client, OperationQueue } from '@courtside/client';
import { FakeServer } from '@courtside/client/testing';
import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';

import { CourtsideProvider, useChannel, useConnectionStatus, useKeyedState, useLeaderboard, useMatch, useOfflineQueue, usePresence } from '../src/index.js';

afterEach(cleanup);

function setup(answer: FakeServer['answer'] = () => ({ result: {} })) {
  const server = new FakeServer();
  server.answer = answer;
  const client = new Client({ url: 'http://fake', WebSocket: server.WebSocket, watchNetwork: false, backoff: { minDelay: 1, maxDelay: 5 } });
  client.connect();
  return { server, client };
}

const subscribed = (extra: Record<string, unknown> = {}) => ({ result: { epoch: 'e', offset: 0, publications: [], ...extra } });
const pub = (offset: number, data: unknown, key?: string) => ({ epoch: 'e', offset, time: 0, data, ...(key === undefined ? {} : { key }) });

function Feed({ name }: { name: string }) {
  const { status, publications } = useChannel('chat:lobby');
  return <p data-testid={name}>{`${status}:${publications.map((p) => (p.data as { text: string }).text).join(',')}`}</p>;
}

describe('@courtside/react', () => {
  it('shares one subscription between components and ends it after the last one leaves', async () => {
    const { server, client } = setup((method) => (method === 'subscribe' ? subscribed() : { result: {} }));
    const view = render(
      <CourtsideProvider client={client} gcTime={10}>
        <Feed name="a" />
        <Feed name="b" />
      </CourtsideProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('a').textContent).toBe('subscribed:'));
    act(() => server.publish('chat:lobby', pub(1, { text: 'hi' })));
    await waitFor(() => expect(screen.getByTestId('b').textContent).toBe('subscribed:hi'));
    expect(screen.getByTestId('a').textContent).toBe('subscribed:hi');
    expect(server.commands.filter((c) => c.method === 'subscribe')).toHaveLength(1);
    view.unmount();
    await waitFor(() => expect(server.commands.filter((c) => c.method === 'unsubscribe')).toHaveLength(1));
    client.close();
  });

  it('reports the connection and keeps a keyed state through a reset', async () => {
    const { server, client } = setup((method) => (method === 'subscribe' ? subscribed({ offset: 2, snapshot: [pub(1, 1, 'kim'), pub(2, 2, 'lee')] }) : { result: {} }));
    function Board() {
      const { state } = useConnectionStatus();
      const { entries, resets } = useKeyedState('board:b');
      return <p data-testid="board">{`${state}|${[...entries].map(([k, v]) => `${k}=${String(v)}`).join(',')}|${resets}`}</p>;
    }
    render(
      <CourtsideProvider client={client}>
        <Board />
      </CourtsideProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('board').textContent).toBe('connected|kim=1,lee=2|0'));
    act(() => server.publish('board:b', pub(3, 5, 'kim')));
    await waitFor(() => expect(screen.getByTestId('board').textContent).toBe('connected|kim=5,lee=2|0'));
    // The connection drops; the history no longer reaches back: the state comes from the snapshot.
    server.answer = (method) => (method === 'subscribe' ? { result: { epoch: 'e', offset: 40, recovered: false, publications: [], snapshot: [pub(39, 9, 'ana')] } } : { result: {} });
    act(() => server.dropAll());
    await waitFor(() => expect(screen.getByTestId('board').textContent).toBe('connected|ana=9|1'));
    client.close();
  });

  it('shows a match: score, claim and history; a leaderboard; and who watches', async () => {
    const score = (home: number) => ({ type: 'score', score: { matchId: 'm1', sets: [{ home, away: 0 }], version: home } });
    const { server, client } = setup((method, params) => {
      if (method === 'subscribe' && params.channel === 'match:cup:m1') {
        return subscribed({ offset: 3, snapshot: [pub(1, { type: 'claim', matchId: 'm1', claim: { holder: 'kim', fencingToken: 4 } }, 'claim'), pub(3, score(2), 'score')] });
      }
      if (method === 'subscribe') return subscribed({ offset: 7, snapshot: [pub(7, { type: 'TOP', board: 'points', total: 2, entries: [{ player: 'ann', score: 60, rank: 1 }], leader: 'ann' }, 'top')] });
      if (method === 'history') return { result: { epoch: 'e', offset: 3, earliest: 1, publications: [pub(2, score(1), 'score'), pub(3, score(2), 'score')] } };
      if (method === 'presence_stats') return { result: { clients: 12, users: 9 } };
      return { result: {} };
    });
    function Court() {
      const match = useMatch('cup', 'm1');
      const board = useLeaderboard('points');
      const watching = usePresence('match:cup:m1');
      const sets = match.history.map((s) => s.sets[0]?.home).join(',');
      return <p data-testid="court">{`${match.score?.version}|${match.claim?.holder}|${sets}|${board.top?.leader}|${watching.clients}`}</p>;
    }
    render(
      <CourtsideProvider client={client}>
        <Court />
      </CourtsideProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('court').textContent).toBe('2|kim|1,2|ann|12'));
    act(() => server.publish('match:cup:m1', pub(4, score(3), 'score')));
    await waitFor(() => expect(screen.getByTestId('court').textContent).toBe('3|kim|1,2,3|ann|12'));
    act(() => server.publish('match:cup:m1', pub(5, { type: 'claim_released', matchId: 'm1' }, 'claim')));
    await waitFor(() => expect(screen.getByTestId('court').textContent).toBe('3|undefined|1,2,3|ann|12'));
    client.close();
  });

  it('shows the offline queue: pending, then the fate', async () => {
    let answerPublish = false;
    const { client } = setup((method) => (method === 'publish' ? (answerPublish ? { result: { epoch: 'e', offset: 1 } } : { error: { code: 111, message: 'unavailable' } }) : { result: {} }));
    const queue = new OperationQueue(client, { backoff: { minDelay: 20, maxDelay: 20 }, maxAttempts: 100 });
    let enqueue: ((name: string, args: unknown) => Promise<unknown>) | undefined;
    function Pending() {
      const state = useOfflineQueue();
      enqueue = state.enqueue;
      return <p data-testid="queue">{`${state.pending.length}|${state.lastFate?.fate.kind ?? '-'}`}</p>;
    }
    render(
      <CourtsideProvider client={client} queue={queue}>
        <Pending />
      </CourtsideProvider>,
    );
    await waitFor(() => expect(enqueue).toBeDefined());
    void act(() => void enqueue?.('publish', { channel: 'chat:a', data: { n: 1 } }));
    await waitFor(() => expect(screen.getByTestId('queue').textContent).toBe('1|-'));
    answerPublish = true;
    await waitFor(() => expect(screen.getByTestId('queue').textContent).toBe('0|applied'));
    queue.close();
    client.close();
  });
});
