// The pages' service worker: the page and its files from the network when there is one (and
// kept for later), from what was kept when there is none — so a scorekeeper can reload with no
// network. The API, the WebSocket and the streams are never touched.
const CACHE = 'courtside-pages-v1';
const SHELL = ['/', '/scorekeeper', '/pages/app.js', '/pages/app.css', '/manifest.webmanifest'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys().then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name)))).then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const ours = url.origin === self.location.origin && event.request.method === 'GET';
  const served = event.request.mode === 'navigate' || url.pathname.startsWith('/pages/') || url.pathname === '/manifest.webmanifest';
  if (!ours || !served) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok && event.request.mode !== 'navigate') void caches.open(CACHE).then((cache) => cache.put(event.request, response.clone()));
        return response;
      })
      // `ignoreVary`: the server's answers vary by `Origin` (CORS), and a module script is asked
      // for with one, the kept copy without.
      .catch(async () => (await caches.match(event.request.mode === 'navigate' ? url.pathname : event.request, { ignoreVary: true })) ?? Response.error()),
  );
});
