// The test page's service worker: the page and its script from the cache first, so a reload
// while offline still loads the app (requests to the Courtside server pass through untouched).
const CACHE = 'courtside-browser-test';
const SHELL = ['/', '/index.html', '/app.js'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  event.respondWith(caches.match(url.pathname === '/' ? '/index.html' : url.pathname).then((hit) => hit ?? fetch(event.request)));
});
