import { describe, expect, it } from 'vitest';

import { Client } from '../src/client.js';
import { OptimisticState } from '../src/optimistic.js';
import { OperationQueue, type FateEvent, type Operation } from '../src/queue.js';
import { FakeServer } from '../src/testing.js';

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((wait) => setTimeout(wait, 2));
  }
}

const quick = { minDelay: 1, maxDelay: 5 };

describe('optimistic state and temporary ids', () => {
  it('shows unconfirmed operations at once and rolls back the one the server refuses', async () => {
    const server = new FakeServer();
    let release: () => void = () => {};
    const gate = new Promise<void>((open) => (release = open));
    const confirmed = new Map<string, number>();
    server.answer = () => undefined; // answered below, once the test lets the server go on
    const client = new Client({ url: 'http://fake', WebSocket: server.WebSocket, watchNetwork: false, backoff: quick });
    client.connect();
    const queue = new OperationQueue(client, {
      backoff: quick,
      executors: {
        points: async (operation) => {
          await gate;
          const { team, points } = operation.args as { team: string; points: number };
          if (points < 0) return { kind: 'rejected', error: { code: 422, message: 'points cannot go down' } };
          confirmed.set(team, (confirmed.get(team) ?? 0) + points);
          return { kind: 'applied', result: { team, total: confirmed.get(team) } };
        },
      },
    });
    const view = new OptimisticState(queue, {
      base: () => new Map(confirmed),
      apply: (state: Map<string, number>, operation: Operation) => {
        const { team, points } = operation.args as { team: string; points: number };
        return new Map(state).set(team, (state.get(team) ?? 0) + points);
      },
    });
    const rollbacks: FateEvent[] = [];
    view.on('rollback', (event) => rollbacks.push(event));
    const done = Promise.all([queue.enqueue('points', { team: 'red', points: 1 }), queue.enqueue('points', { team: 'red', points: -5 }), queue.enqueue('points', { team: 'blue', points: 2 })]);
    await until(() => queue.pending.length === 3, 'three pending');
    expect(Object.fromEntries(view.value)).toEqual({ red: -4, blue: 2 });
    release();
    await done;
    expect(Object.fromEntries(view.value)).toEqual({ red: 1, blue: 2 });
    expect(rollbacks.map((event) => (event.operation.args as { points: number }).points)).toEqual([-5]);
    view.close();
    client.close();
  });

  it('writes the server id for a temporary one into every later operation, also ones made after', async () => {
    const server = new FakeServer();
    const client = new Client({ url: 'http://fake', WebSocket: server.WebSocket, watchNetwork: false, backoff: quick });
    client.connect();
    const seen: unknown[] = [];
    const queue = new OperationQueue(client, {
      backoff: quick,
      executors: {
        createMatch: async () => ({ kind: 'applied', result: { id: 'm-77' } }),
        score: async (operation) => {
          seen.push(operation.args);
          return { kind: 'applied', result: {} };
        },
      },
    });
    const ids: Array<{ tempId: string; id: string }> = [];
    queue.on('id', (event) => ids.push(event));
    const created = queue.enqueue('createMatch', { home: 'red', away: 'blue' }, { tempId: 'temp-1' });
    const scored = queue.enqueue('score', { matchId: 'temp-1', sets: [{ home: 1, away: 0 }], nested: ['temp-1'] });
    await Promise.all([created, scored]);
    await queue.enqueue('score', { matchId: 'temp-1' });
    expect(seen).toEqual([{ matchId: 'm-77', sets: [{ home: 1, away: 0 }], nested: ['m-77'] }, { matchId: 'm-77' }]);
    expect(ids).toEqual([{ tempId: 'temp-1', id: 'm-77' }]);
    expect(queue.idFor('temp-1')).toBe('m-77');
    client.close();
  });
});
