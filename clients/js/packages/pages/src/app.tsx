/**
 * Which page a path shows, and the tournament list.
 */

import type { SharedClient } from '@courtside/client';
import { useEffect, useState } from 'react';

import { Director } from './director.js';
import { Ops } from './ops.js';
import { Scoreboard } from './scoreboard.js';
import { Scorekeeper } from './scorekeeper.js';

interface Named {
  id: string;
  name: string;
}

/** `/scorekeeper`, `/director`: the consoles; `/ops`: the operations dashboard; `/scoreboard/{id}`: that tournament; `/`: the only one, or the list to pick from. */
export function App({ client }: { client: SharedClient }) {
  const path = location.pathname.replace(/\/$/, '');
  if (path === '/scorekeeper') return <Scorekeeper client={client} />;
  if (path === '/director') return <Director />;
  if (path === '/ops') return <Ops />;
  const eventId = /^\/scoreboard\/([A-Za-z0-9_-]+)$/.exec(path)?.[1];
  if (eventId !== undefined) return <Scoreboard eventId={eventId} />;
  return <Home />;
}

/** `/`: the server's only tournament, or the list of them. */
function Home() {
  const [tournaments, setTournaments] = useState<Named[] | undefined>(undefined);
  const [failed, setFailed] = useState<string | undefined>(undefined);
  useEffect(() => {
    fetch('/api/scoreboards')
      .then(async (response) => {
        if (!response.ok) throw new Error(`the server answered ${response.status}`);
        setTournaments(((await response.json()) as { scoreboards: Named[] }).scoreboards);
      })
      .catch((error: unknown) => setFailed(String(error)));
  }, []);
  if (failed !== undefined) return <main><h1>Courtside</h1><p role="alert">The tournaments could not be loaded: {failed}</p></main>;
  if (tournaments === undefined) return <main><h1>Courtside</h1><p>Loading…</p></main>;
  const [only] = tournaments;
  if (tournaments.length === 1 && only !== undefined) return <Scoreboard eventId={only.id} />;
  return (
    <main>
      <h1>Courtside</h1>
      {tournaments.length === 0 ? (
        <p>No tournament yet.</p>
      ) : (
        <nav aria-label="Tournaments">
          <ul>
            {tournaments.map((t) => (
              <li key={t.id}>
                <a href={`/scoreboard/${t.id}`}>{t.name}</a>
              </li>
            ))}
          </ul>
        </nav>
      )}
    </main>
  );
}
