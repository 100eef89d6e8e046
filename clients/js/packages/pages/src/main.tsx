/**
 * The pages `courtside serve` serves, one app: `/` opens the live scoreboard of the server's
 * tournament (or a list, when it holds several), `/scoreboard/{id}` one tournament's. Built on
 * `@courtside/react` over a `SharedClient`, so the tabs of a browser share one connection.
 */

import { SharedClient } from '@courtside/client';
import { CourtsideProvider } from '@courtside/react';
import { createRoot } from 'react-dom/client';

import { App } from './app.js';

const client = new SharedClient({ url: location.origin, name: 'pages' });
const root = document.getElementById('root');
if (root !== null) {
  createRoot(root).render(
    <CourtsideProvider client={client}>
      <App />
    </CourtsideProvider>,
  );
}
