/**
 * The pages `courtside serve` serves, one app: `/` opens the live scoreboard of the server's
 * tournament (or a list, when it holds several), `/scoreboard/{id}` one tournament's,
 * `/scorekeeper` the scorekeeper console. Built on `@courtside/react` over a `SharedClient`, so
 * the tabs of a browser share one connection; a service worker keeps the pages for offline use.
 */

import { SharedClient } from '@courtside/client';
import { CourtsideProvider } from '@courtside/react';
import { createRoot } from 'react-dom/client';

import { App } from './app.js';
import { session } from './auth.js';

const client = new SharedClient({ url: location.origin, name: 'pages', getToken: session.getToken });
const root = document.getElementById('root');
if (root !== null) {
  createRoot(root).render(
    <CourtsideProvider client={client}>
      <App client={client} />
    </CourtsideProvider>,
  );
}

// The pages work offline once the service worker holds them (a reload with no network too).
if ('serviceWorker' in navigator) void navigator.serviceWorker.register('/sw.js');
