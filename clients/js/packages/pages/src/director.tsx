/**
 * The director console: tournaments and what they hold (divisions, teams, courts, matches with
 * court and time), announcements with a priority, live claims with force-release, the conflicts
 * to review, and users. Every change goes through the sports API, which checks the director's
 * role; what it publishes reaches the scoreboards at once.
 */

import type { Schemas } from '@courtside/client/api';
import { useCallback, useEffect, useState, type FormEvent, type ReactNode } from 'react';

import { api, session, SignIn } from './auth.js';

type Detail = Schemas['EventDetail'];

export function Director() {
  const [user, setUser] = useState(session.user);
  if (user === undefined) return <SignIn title="Director" onSignedIn={() => setUser(session.user)} />;
  return <Console />;
}

/** A form whose fields are read by name; `run` says what went wrong, if anything. */
function Form({ label, submit, run, children }: { label: string; submit: string; run: (fields: FormData) => Promise<string | undefined>; children: ReactNode }) {
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = event.currentTarget;
    run(new FormData(form)).then(
      (failed) => {
        setProblem(failed);
        if (failed === undefined) form.reset();
      },
      (error: unknown) => setProblem(String(error)),
    );
  };
  return (
    <form className="stack" aria-label={label} onSubmit={onSubmit}>
      {children}
      <button type="submit">{submit}</button>
      {problem !== undefined && <p role="alert">{problem}</p>}
    </form>
  );
}

/** A labelled choice among named things; `optional` adds "—" (none). */
function Choice({ name, label, options, optional = false, defaultValue }: { name: string; label: string; options: Array<{ id: string; name: string }>; optional?: boolean; defaultValue?: string }) {
  return (
    <label>
      {label}
      <select name={name} required={!optional} {...(defaultValue === undefined ? {} : { defaultValue })}>
        {optional && <option value="">—</option>}
        {options.map((o) => (
          <option key={o.id} value={o.id}>
            {o.name}
          </option>
        ))}
      </select>
    </label>
  );
}

const text = (fields: FormData, name: string) => String(fields.get(name) ?? '').trim();
const failure = (error: { error?: { message?: string } } | undefined) => error?.error?.message ?? 'refused';

function Console() {
  const [events, setEvents] = useState<Schemas['Tournament'][]>([]);
  const [eventId, setEventId] = useState<string>(new URLSearchParams(location.search).get('event') ?? '');
  const [detail, setDetail] = useState<Detail | undefined>(undefined);
  const [claims, setClaims] = useState<Record<string, Schemas['Claim']>>({});
  const [conflicts, setConflicts] = useState<Schemas['ConflictEntry'][]>([]);
  const [users, setUsers] = useState<Schemas['UserView'][]>([]);
  const loadEvents = useCallback(() => api.GET('/api/events').then(({ data }) => setEvents(data?.events ?? [])), []);
  const load = useCallback(async () => {
    void loadEvents();
    void api.GET('/api/users').then(({ data }) => setUsers(data?.users ?? []));
    if (eventId === '') return;
    const path = { params: { path: { event_id: eventId } } };
    setDetail((await api.GET('/api/events/{event_id}', path)).data);
    setClaims((await api.GET('/api/events/{event_id}/claims', path)).data?.claims ?? {});
    setConflicts((await api.GET('/api/events/{event_id}/conflicts', path)).data?.conflicts ?? []);
  }, [eventId, loadEvents]);
  useEffect(() => void load(), [load]);
  const path = { params: { path: { event_id: eventId } } };
  const named = (fields: FormData) => ({ id: text(fields, 'id'), name: text(fields, 'name') });
  const after = async (answer: Promise<{ error?: unknown }>) => {
    const { error } = await answer;
    await load();
    return error === undefined ? undefined : failure(error as { error?: { message?: string } });
  };

  return (
    <main>
      <header>
        <h1>Director</h1>
        <p className="status">{session.user?.username}</p>
      </header>
      <section aria-label="Tournaments">
        <h2>Tournaments</h2>
        <label>
          Tournament{' '}
          <select value={eventId} onChange={(e) => setEventId(e.target.value)}>
            <option value="">—</option>
            {events.map((e) => (
              <option key={e.id} value={e.id}>
                {e.name}
              </option>
            ))}
          </select>
        </label>
        <Form label="New tournament" submit="Create tournament" run={(f) => after(api.POST('/api/events', { body: named(f) }))}>
          <label>
            Id <input name="id" required />
          </label>
          <label>
            Name <input name="name" required />
          </label>
        </Form>
      </section>
      {detail !== undefined && (
        <>
          <section aria-label="Registry">
            <h2>{detail.event.name}</h2>
            <p>
              Divisions: {detail.divisions.map((d) => d.name).join(', ') || '—'} · Teams: {detail.teams.map((t) => t.name).join(', ') || '—'} · Courts:{' '}
              {detail.courts.map((c) => c.name).join(', ') || '—'}
            </p>
            {(['divisions', 'teams', 'courts'] as const).map((kind) => (
              <Form
                key={kind}
                label={`New ${kind.slice(0, -1)}`}
                submit={`Add ${kind.slice(0, -1)}`}
                run={(f) => {
                  const body = named(f);
                  const params = { params: { path: { event_id: eventId, id: body.id } }, body };
                  if (kind === 'divisions') return after(api.PUT('/api/events/{event_id}/divisions/{id}', params));
                  if (kind === 'teams') return after(api.PUT('/api/events/{event_id}/teams/{id}', params));
                  return after(api.PUT('/api/events/{event_id}/courts/{id}', params));
                }}
              >
                <label>
                  {kind.slice(0, -1)} id <input name="id" required />
                </label>
                <label>
                  {kind.slice(0, -1)} name <input name="name" required />
                </label>
              </Form>
            ))}
          </section>
          <section aria-label="Matches">
            <h2>Matches</h2>
            <ul>
              {detail.matches.map((m) => (
                <li key={m.id}>
                  {m.id}: {m.homeTeamId} v {m.awayTeamId} {m.courtId ? `· ${m.courtId}` : ''}
                  {m.scheduledAtMs ? ` · ${new Date(m.scheduledAtMs).toLocaleString()}` : ''}
                  <Form
                    label={`Edit ${m.id}`}
                    submit={`Save ${m.id}`}
                    run={(f) => {
                      const court = text(f, 'court');
                      const at = text(f, 'at');
                      const { courtId: _court, scheduledAtMs: _at, ...rest } = m;
                      const body: Schemas['Match'] = { ...rest, ...(court === '' ? {} : { courtId: court }), ...(at === '' ? {} : { scheduledAtMs: new Date(at).getTime() }) };
                      return after(api.PUT('/api/events/{event_id}/matches/{match_id}', { params: { path: { event_id: eventId, match_id: m.id } }, body }));
                    }}
                  >
                    <Choice name="court" label="Court" options={detail.courts} optional defaultValue={m.courtId ?? ''} />
                    <label>
                      Time <input name="at" type="datetime-local" />
                    </label>
                  </Form>
                  {claims[m.id] !== undefined && (
                    <>
                      {' '}
                      · kept by {claims[m.id]?.holder}{' '}
                      <button type="button" onClick={() => void after(api.DELETE('/api/events/{event_id}/claims/{match_id}', { params: { path: { event_id: eventId, match_id: m.id } } }))}>
                        Force-release {m.id}
                      </button>
                    </>
                  )}
                </li>
              ))}
            </ul>
            <Form
              label="New match"
              submit="Create match"
              run={(f) => {
                const court = text(f, 'court');
                const at = text(f, 'at');
                const body = {
                  id: text(f, 'id'),
                  divisionId: text(f, 'division'),
                  homeTeamId: text(f, 'home'),
                  awayTeamId: text(f, 'away'),
                  ...(court === '' ? {} : { courtId: court }),
                  ...(at === '' ? {} : { scheduledAtMs: new Date(at).getTime() }),
                };
                return after(api.POST('/api/events/{event_id}/matches', { ...path, body }));
              }}
            >
              <label>
                Match id <input name="id" required />
              </label>
              {(
                [
                  ['division', 'Division', detail.divisions],
                  ['home', 'Home team', detail.teams],
                  ['away', 'Away team', detail.teams],
                  ['court', 'Court', detail.courts],
                ] as const
              ).map(([name, label, options]) => (
                <Choice key={name} name={name} label={label} options={options} optional={name === 'court'} />
              ))}
              <label>
                Time <input name="at" type="datetime-local" />
              </label>
            </Form>
          </section>
          <section aria-label="Announcements">
            <h2>Announce</h2>
            <Form
              label="New announcement"
              submit="Announce"
              run={(f) => {
                const body = { priority: text(f, 'priority') as 'critical' | 'high' | 'normal' | 'low', title: text(f, 'title'), body: text(f, 'body') };
                return after(api.POST('/api/events/{event_id}/announcements', { ...path, body }));
              }}
            >
              <label>
                Priority
                <select name="priority" defaultValue="normal">
                  <option value="critical">critical</option>
                  <option value="high">high</option>
                  <option value="normal">normal</option>
                  <option value="low">low</option>
                </select>
              </label>
              <label>
                Title <input name="title" required />
              </label>
              <label>
                Text <input name="body" />
              </label>
            </Form>
          </section>
          <section aria-label="Conflicts">
            <h2>Conflicts to review</h2>
            {conflicts.length === 0 ? (
              <p>None.</p>
            ) : (
              <ul>
                {conflicts.map((c, i) => (
                  <li key={i}>
                    {c.matchId}: {c.kind} by {c.editor} (stored version {c.serverVersion})
                  </li>
                ))}
              </ul>
            )}
          </section>
        </>
      )}
      <section aria-label="Users">
        <h2>Users</h2>
        <ul>
          {users.map((u) => (
            <li key={u.username}>
              {u.username}: {u.roles.join(', ')}
            </li>
          ))}
        </ul>
        <Form
          label="New user"
          submit="Add user"
          run={(f) => after(api.POST('/api/users', { body: { username: text(f, 'username'), password: text(f, 'password'), roles: [text(f, 'role') as Schemas['RoleDoc']] } }))}
        >
          <label>
            Username <input name="username" required />
          </label>
          <label>
            Password <input name="password" type="password" minLength={8} required />
          </label>
          <label>
            Role
            <select name="role" defaultValue="scorekeeper">
              {['scorekeeper', 'staff', 'director', 'coach', 'media', 'spectator'].map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
        </Form>
      </section>
    </main>
  );
}
