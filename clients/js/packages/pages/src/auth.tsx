/**
 * Signing in on the pages: one `Session` (refresh-token rotation) kept in localStorage so a
 * reload — an offline one too — stays signed in, the typed REST client with its token, and the
 * sign-in form.
 */

import { createApi, Session, type SessionTokens, type TokenStorage } from '@courtside/client/api';
import { useState } from 'react';

/** The sign-in survives a reload (and an offline one): the tokens are kept in localStorage. */
const storage: TokenStorage = {
  load: () => {
    const kept = localStorage.getItem('courtside-session');
    return kept === null ? undefined : (JSON.parse(kept) as SessionTokens);
  },
  save: (tokens) => (tokens === undefined ? localStorage.removeItem('courtside-session') : localStorage.setItem('courtside-session', JSON.stringify(tokens))),
};

export const session = new Session({ baseUrl: location.origin }, storage);
export const api = createApi({ baseUrl: location.origin, getToken: session.getToken });

/** The sign-in form: a user of the server, with a password. */
export function SignIn({ title, onSignedIn }: { title: string; onSignedIn: () => void }) {
  const [failed, setFailed] = useState<string | undefined>(undefined);
  return (
    <main>
      <h1>{title}</h1>
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          const form = new FormData(event.currentTarget);
          session.signIn(String(form.get('username')), String(form.get('password'))).then(onSignedIn, (error: unknown) => setFailed(String(error)));
        }}
      >
        <label>
          User <input name="username" autoComplete="username" required />
        </label>
        <label>
          Password <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit">Sign in</button>
        {failed !== undefined && <p role="alert">Not signed in: {failed}</p>}
      </form>
    </main>
  );
}

