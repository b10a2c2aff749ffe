// The service worker of the web client: when a page cannot be loaded (the server or the
// network is down), it answers with our own offline page (kept from when the server was
// reachable) instead of the browser's error page. Only page loads are touched: API calls,
// signaling and media go to the network as they would without it.

const CACHE = "classroom-offline-v2";
// The offline page speaks the visitor's language: its module, the i18n module and both
// catalogues are kept too.
const OFFLINE = ["/offline.html", "/css/app.css", "/js/offline.js", "/js/i18n.js", "/i18n/en.json", "/i18n/zh-CN.json"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(OFFLINE)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(async () => (await caches.match("/offline.html")) ?? Response.error()));
    return;
  }
  // The offline page's own stylesheet, scripts and catalogues, when the server is gone.
  const path = new URL(request.url).pathname;
  if (OFFLINE.includes(path)) {
    event.respondWith(fetch(request).catch(async () => (await caches.match(path)) ?? Response.error()));
  }
});
