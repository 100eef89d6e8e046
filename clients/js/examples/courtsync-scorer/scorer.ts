/**
 * Seed 001's scorer on `@courtside/client`: a scorekeeper signs in, claims a match, and scores
 * it point by point. Every point is an operation of the offline queue (kept in IndexedDB), so
 * points scored with no network are sent, in order and once each, when it comes back; the
 * score shown is the server's with the points not yet confirmed on top. A point the server
 * refuses, or one that crossed another device's edit, rolls back and is said so.
 */

import { Client, IndexedDbOperationStore, OperationQueue, OptimisticState, type Operation } from '@courtside/client';
import { createApi, scoreExecutor, Session, type ScoreArgs, type Schemas } from '@courtside/client/api';

type Sets = Schemas['SetScore'][];

const server = new URLSearchParams(location.search).get('server') ?? location.origin;
const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const session = new Session({ baseUrl: server });
const api = createApi({ baseUrl: server, getToken: session.getToken });
const client = new Client({ url: server, getToken: session.getToken });
const queue = new OperationQueue(client, { store: new IndexedDbOperationStore('courtsync-scorer'), shared: true, executors: { score: scoreExecutor(api) } });

client.on('state', ({ state }) => (element('connection').textContent = state));
queue.on('change', () => (element('pending').textContent = String(queue.pending.length)));
queue.on('fate', ({ fate }) => {
  if (fate.kind === 'conflict') element('message').textContent = 'Another device changed this score: showing the stored one.';
  if (fate.kind === 'rejected') element('message').textContent = `Not taken: ${fate.error.message}`;
});

element<HTMLFormElement>('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.currentTarget as HTMLFormElement);
  await session.signIn(String(form.get('username')), String(form.get('password')));
  client.connect();
  element('sign-in').hidden = true;
  element('claim').hidden = false;
});

element<HTMLFormElement>('claim').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.currentTarget as HTMLFormElement);
  const eventId = String(form.get('event'));
  const matchId = String(form.get('match'));
  const claim = await api.POST('/api/events/{event_id}/claims/{match_id}', { params: { path: { event_id: eventId, match_id: matchId } }, body: {} });
  if (claim.data?.claim === undefined || claim.data.claim === null) {
    element('message').textContent = claim.error?.error.message ?? 'The claim was not given.';
    element('scoring').hidden = false;
    return;
  }
  score(eventId, matchId, claim.data.claim.fencingToken);
});

/** Scores one match: the server's score (its channel) with the unconfirmed points on top. */
function score(eventId: string, matchId: string, fencingToken: number): void {
  element('claim').hidden = true;
  element('scoring').hidden = false;
  const match = client.subscribe(`match:${eventId}:${matchId}`, { keyed: true });
  const stored = (): Sets => (match.entries.get('score') as { score?: { sets: Sets } } | undefined)?.score?.sets ?? [{ home: 0, away: 0 }];
  const view = new OptimisticState(queue, {
    base: stored,
    apply: (sets: Sets, operation: Operation) => ((operation.args as ScoreArgs).update.matchId === matchId ? (operation.args as ScoreArgs).update.sets : sets),
  });
  match.on('change', () => view.refresh());
  view.on('change', (sets) => {
    const current = sets[sets.length - 1] ?? { home: 0, away: 0 };
    element('home').textContent = String(current.home);
    element('away').textContent = String(current.away);
  });
  const point = (side: 'home' | 'away') => {
    const sets = view.value.map((set) => ({ ...set }));
    const current = sets[sets.length - 1] ?? { home: 0, away: 0 };
    current[side] += 1;
    const update: ScoreArgs['update'] = { matchId, sets, status: 'in_progress', fencingToken, clientTimeMs: Date.now() };
    void queue.enqueue('score', { eventId, update } satisfies ScoreArgs);
  };
  element('point-home').addEventListener('click', () => point('home'));
  element('point-away').addEventListener('click', () => point('away'));
}
