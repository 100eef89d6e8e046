/**
 * The live scoreboard of one tournament, for anyone: every match with its teams, court and
 * score as it moves (`tournament:{id}:scores`, keyed by match), how many are watching, and the
 * announcements (`tournament:{id}:announcements`) — a critical one as an alert at the top that
 * stays until a newer one replaces it.
 */

import type { Schemas } from '@courtside/client/api';
import { useChannel, useConnectionStatus, useCourtside, useKeyedState, usePresence } from '@courtside/react';
import { useEffect, useMemo, useState } from 'react';

interface Named {
  id: string;
  name: string;
}

type Board = Schemas['ScoreboardOut'];
type Score = Schemas['ScoreRecord'];

interface Announcement {
  id: string;
  priority: 'critical' | 'high' | 'normal' | 'low';
  title: string;
  body?: string;
  atMs: number;
}

/** How often the names and pairings are asked again. */
const NAMES_EVERY_MS = 5000;

export function Scoreboard({ eventId }: { eventId: string }) {
  const { client } = useCourtside();
  const { state } = useConnectionStatus();
  const [board, setBoard] = useState<Board | undefined>(undefined);
  const [failed, setFailed] = useState<string | undefined>(undefined);
  useEffect(() => {
    // Names and pairings are asked again every few seconds: a match the director adds appears.
    // Once they are shown, a failed ask (no network) leaves them shown.
    let loaded = false;
    const load = () =>
      fetch(`/api/scoreboards/${encodeURIComponent(eventId)}`)
        .then(async (response) => {
          if (!response.ok) throw new Error(`the server answered ${response.status}`);
          const text = await response.text();
          setBoard((current) => (current !== undefined && JSON.stringify(current) === text ? current : (JSON.parse(text) as Board)));
          loaded = true;
          setFailed(undefined);
        })
        .catch((error: unknown) => {
          if (!loaded) setFailed(String(error));
        });
    void load();
    const timer = setInterval(() => void load(), NAMES_EVERY_MS);
    return () => clearInterval(timer);
  }, [eventId]);
  const scores = useKeyedState(`tournament:${eventId}:scores`);
  const watching = usePresence(`tournament:${eventId}:scores`);
  const live = useChannel(`tournament:${eventId}:announcements`);
  const [earlier, setEarlier] = useState<Announcement[]>([]);
  useEffect(() => {
    client.history(`tournament:${eventId}:announcements`, { limit: 20 }).then(
      (page) => setEarlier(page.publications.map((p) => (p.data as { announcement: Announcement }).announcement)),
      () => {},
    );
  }, [client, eventId]);
  const announcements = useMemo(() => {
    const byId = new Map<string, Announcement>();
    for (const a of [...earlier, ...live.publications.map((p) => (p.data as { announcement?: Announcement }).announcement)]) {
      if (a !== undefined) byId.set(a.id, a);
    }
    return [...byId.values()].sort((a, b) => b.atMs - a.atMs);
  }, [earlier, live.publications]);
  const names = useMemo(() => new Map((board?.teams ?? []).map((t: Named) => [t.id, t.name])), [board]);
  const courts = useMemo(() => new Map((board?.courts ?? []).map((c: Named) => [c.id, c.name])), [board]);
  const critical = announcements.find((a) => a.priority === 'critical');

  if (failed !== undefined) return <main><h1>Scoreboard</h1><p role="alert">This tournament could not be loaded: {failed}</p></main>;
  return (
    <main>
      <header>
        <h1>{board?.event.name ?? 'Scoreboard'}</h1>
        <p className="status" data-state={state} aria-live="polite">
          {state === 'connected' ? 'Live' : state === 'offline' ? 'Offline' : 'Connecting…'}
          {watching.clients !== undefined ? ` · ${watching.clients} watching` : ''}
        </p>
      </header>
      {critical !== undefined && (
        <div className="alert" role="alert">
          {critical.title}
          {critical.body ? <p>{critical.body}</p> : null}
        </div>
      )}
      <ul className="grid" aria-label="Matches">
        {(board?.matches ?? []).map((m) => {
          const score = (scores.entries.get(m.id) as { score?: Score } | undefined)?.score;
          const sets = score?.sets ?? [];
          const won = (side: 'home' | 'away') => sets.filter((s) => (side === 'home' ? s.home > s.away : s.away > s.home)).length;
          const current = sets[sets.length - 1];
          const winner = score?.state.winner;
          return (
            <li key={m.id} className="card" aria-label={`${names.get(m.homeTeamId) ?? m.homeTeamId} against ${names.get(m.awayTeamId) ?? m.awayTeamId}`}>
              <h2>
                {m.courtId ? (courts.get(m.courtId) ?? m.courtId) : 'No court yet'} · {score?.status === 'completed' ? 'Final' : score?.status === 'in_progress' ? 'Live' : 'Scheduled'}
              </h2>
              {(['home', 'away'] as const).map((side) => {
                const team = side === 'home' ? m.homeTeamId : m.awayTeamId;
                return (
                  <p key={side} className={`team${winner === side ? ' winner' : ''}`}>
                    <span>{names.get(team) ?? team}</span>
                    <strong data-testid={`${m.id}-${side}`}>
                      {current === undefined ? '–' : `${current[side]}`}
                      {sets.length > 1 ? ` (${won(side)})` : ''}
                    </strong>
                  </p>
                );
              })}
            </li>
          );
        })}
      </ul>
      {announcements.length > 0 && (
        <section aria-label="Announcements">
          <h2>Announcements</h2>
          <ul className="news">
            {announcements.map((a) => (
              <li key={a.id}>
                <strong>{a.title}</strong>
                {a.body ? ` — ${a.body}` : ''}
              </li>
            ))}
          </ul>
        </section>
      )}
    </main>
  );
}
