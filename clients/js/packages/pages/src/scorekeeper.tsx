/**
 * The scorekeeper console (seed 001's PWA): sign in, pick a tournament, see the coverage plan,
 * claim a match (its expiry shown), and score it point by point with big buttons. Every point is
 * an operation of the offline queue (IndexedDB, shared by the browser's tabs), so scoring goes on
 * with no network and after a reload; what is waiting to sync and every conflict are shown, and a
 * conflict is resolved by keeping the stored score or sending this device's over it.
 */

import { IndexedDbOperationStore, OperationQueue, OptimisticState, type FateEvent, type Operation, type SharedClient } from '@courtside/client';
import { scoreExecutor, type ScoreArgs, type Schemas } from '@courtside/client/api';
import { useKeyedState } from '@courtside/react';
import { useEffect, useMemo, useState } from 'react';

import { api, session, SignIn } from './auth.js';

type Sets = Schemas['SetScore'][];

let queue: OperationQueue | undefined;
/** The one queue of this page, over the shared client. */
function scoreQueue(client: SharedClient): OperationQueue {
  queue ??= new OperationQueue(client, { store: new IndexedDbOperationStore('courtside-scorekeeper'), shared: true, executors: { score: scoreExecutor(api) } });
  return queue;
}

export function Scorekeeper({ client }: { client: SharedClient }) {
  const [user, setUser] = useState(session.user);
  if (user === undefined) return <SignIn title="Scorekeeper" onSignedIn={() => setUser(session.user)} />;
  return <Console client={client} />;
}

function useQueueState(queue: OperationQueue) {
  const [, setVersion] = useState(0);
  const [conflicts, setConflicts] = useState<FateEvent[]>([]);
  useEffect(() => {
    const offChange = queue.on('change', () => setVersion((n) => n + 1));
    const offFate = queue.on('fate', (event) => {
      if (event.fate.kind === 'conflict' || event.fate.kind === 'rejected') setConflicts((all) => [...all, event]);
    });
    return () => {
      offChange();
      offFate();
    };
  }, [queue]);
  return { pending: queue.pending.length, failed: queue.failed, conflicts, dismiss: (event: FateEvent) => setConflicts((all) => all.filter((e) => e !== event)) };
}

function Console({ client }: { client: SharedClient }) {
  const queue = scoreQueue(client);
  const { pending, failed, conflicts, dismiss } = useQueueState(queue);
  const params = new URLSearchParams(location.search);
  const [eventId, setEventId] = useState(params.get('event') ?? '');
  const [claimed, setClaimed] = useState<{ matchId: string; claim: Schemas['Claim'] } | undefined>(undefined);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [plan, setPlan] = useState<string[]>([]);
  const [matches, setMatches] = useState<Schemas['Match'][]>([]);
  useEffect(() => {
    if (eventId === '') return;
    api.GET('/api/events/{event_id}', { params: { path: { event_id: eventId } } }).then(({ data }) => setMatches(data?.matches ?? []), () => {});
    api.GET('/api/events/{event_id}/coverage-plans', { params: { path: { event_id: eventId } } }).then(({ data }) => setPlan(data?.selectedMatches ?? []), () => {});
  }, [eventId]);

  const claim = async (matchId: string) => {
    const { data, error } = await api.POST('/api/events/{event_id}/claims/{match_id}', { params: { path: { event_id: eventId, match_id: matchId } }, body: {} });
    if (data?.claim) setClaimed({ matchId, claim: data.claim });
    else setMessage(error?.error.message ?? 'The claim was not given.');
  };

  return (
    <main>
      <header>
        <h1>Scorekeeper</h1>
        <p className="status" aria-live="polite">
          {session.user?.username} · waiting to sync: <output data-testid="pending">{pending}</output>
        </p>
      </header>
      {conflicts.map((event) => (
        <Conflict key={event.operation.id} event={event} queue={queue} onDone={() => dismiss(event)} />
      ))}
      {failed.length > 0 && (
        <div className="alert" role="alert">
          {failed.length} point(s) could not be sent after three tries.{' '}
          {failed.map((op) => (
            <button key={op.id} type="button" onClick={() => void queue.retry(op.id)}>
              Try again
            </button>
          ))}
        </div>
      )}
      {message !== undefined && <p role="alert">{message}</p>}
      {claimed === undefined ? (
        <section aria-label="Matches">
          <form
            className="stack"
            onSubmit={(event) => {
              event.preventDefault();
              setEventId(String(new FormData(event.currentTarget).get('event')));
            }}
          >
            <label>
              Tournament <input name="event" defaultValue={eventId} required />
            </label>
            <button type="submit">Show matches</button>
          </form>
          <ul className="grid">
            {matches.map((m) => (
              <li key={m.id} className="card">
                <h2>
                  {m.id}
                  {plan.includes(m.id) ? ' · in my plan' : ''}
                </h2>
                <p>
                  {m.homeTeamId} v {m.awayTeamId}
                </p>
                <button type="button" onClick={() => void claim(m.id)}>
                  Keep the score of {m.id}
                </button>
              </li>
            ))}
          </ul>
        </section>
      ) : (
        <Scoring eventId={eventId} matchId={claimed.matchId} claim={claimed.claim} queue={queue} />
      )}
    </main>
  );
}

function Scoring({ eventId, matchId, claim, queue }: { eventId: string; matchId: string; claim: Schemas['Claim']; queue: OperationQueue }) {
  const channel = `match:${eventId}:${matchId}`;
  const { entries } = useKeyedState(channel);
  const stored = useMemo((): Sets => (entries.get('score') as { score?: { sets: Sets } } | undefined)?.score?.sets ?? [{ home: 0, away: 0 }], [entries]);
  const view = useMemo(
    () =>
      new OptimisticState(queue, {
        base: () => stored,
        apply: (sets: Sets, operation: Operation) => ((operation.args as ScoreArgs).update.matchId === matchId ? (operation.args as ScoreArgs).update.sets : sets),
      }),
    [queue, stored, matchId],
  );
  const [sets, setSets] = useState<Sets>(view.value);
  useEffect(() => {
    setSets(view.value);
    const off = view.on('change', setSets);
    return () => {
      off();
      view.close();
    };
  }, [view]);
  const send = (next: Sets) => {
    const update: ScoreArgs['update'] = { matchId, sets: next, status: 'in_progress', fencingToken: claim.fencingToken, clientTimeMs: Date.now() };
    void queue.enqueue('score', { eventId, update } satisfies ScoreArgs);
  };
  const point = (side: 'home' | 'away', by: 1 | -1) => {
    const next = sets.map((set) => ({ ...set }));
    const current = next[next.length - 1] ?? { home: 0, away: 0 };
    current[side] = Math.max(0, current[side] + by);
    send(next);
  };
  const current = sets[sets.length - 1] ?? { home: 0, away: 0 };
  const expires = new Date(claim.expiresAtMs).toLocaleTimeString();
  return (
    <section aria-label={`Scoring ${matchId}`}>
      <p>
        Match {matchId} · set {sets.length} · claim until {expires}
      </p>
      <p className="big-score" aria-live="polite">
        <output data-testid="home">{current.home}</output> – <output data-testid="away">{current.away}</output>
      </p>
      <div className="buttons">
        <button type="button" className="big" onClick={() => point('home', 1)}>
          +1 home
        </button>
        <button type="button" className="big" onClick={() => point('away', 1)}>
          +1 away
        </button>
        <button type="button" onClick={() => point('home', -1)}>
          −1 home
        </button>
        <button type="button" onClick={() => point('away', -1)}>
          −1 away
        </button>
        <button type="button" onClick={() => send([...sets.map((s) => ({ ...s })), { home: 0, away: 0 }])}>
          Next set
        </button>
      </div>
    </section>
  );
}

/** A point that met another device's edit, or one the server refused: what happened, and what to do. */
function Conflict({ event, queue, onDone }: { event: FateEvent; queue: OperationQueue; onDone: () => void }) {
  const args = event.operation.args as ScoreArgs;
  if (event.fate.kind === 'rejected') {
    return (
      <div className="alert" role="alert">
        A point was refused: {event.fate.error.message}{' '}
        <button type="button" onClick={onDone}>
          OK
        </button>
      </div>
    );
  }
  const current = (event.fate.kind === 'conflict' ? (event.fate.conflict as { current?: Schemas['ScoreRecord'] }).current : undefined) ?? undefined;
  const show = (sets: Sets | undefined) => (sets ?? []).map((s) => `${s.home}–${s.away}`).join(', ');
  return (
    <div className="alert" role="alert">
      Another device changed match {args.update.matchId}: stored {show(current?.sets)}, this device {show(args.update.sets)}.{' '}
      <button type="button" onClick={onDone}>
        Keep the stored score
      </button>
      <button
        type="button"
        onClick={() => {
          const update = { ...args.update, ...(current === undefined ? {} : { baseVersion: current.version }), clientTimeMs: Date.now() };
          void queue.enqueue('score', { eventId: args.eventId, update } satisfies ScoreArgs);
          onDone();
        }}
      >
        Send this device's score
      </button>
    </div>
  );
}

