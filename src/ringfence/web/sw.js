// Ringfence's service worker, served by the server at /sw.js (scope: the whole app).
//
// What it does:
// - Keeps a copy of the app shell (the static files of ringfence/web, listed by the
//   server) so that Ringfence opens without a network and says it is offline, instead
//   of the browser's error page.
// - Nothing else is ever stored: the worker answers only GET requests for shell files
//   and page loads of the app, and leaves everything else to the network untouched:
//   the API (/api/...), the WebSocket, /healthz, anything carrying Authorization,
//   anything from another origin. It never writes a response it fetched into a cache,
//   so no API answer and nothing personal can end up in one.
// - Network first: online, every shell file comes from the server as without a worker
//   (the browser's HTTP cache and ETags still apply); the copy is used only when the
//   network fails. A new release is never hidden behind a stale copy.
//
// The server fills in SHELL_VERSION (a hash of the shell files and of this worker) and
// SHELL_FILES at start-up. A release that changes any shell file changes this file's
// bytes, so the browser installs the new worker, which caches the new shell under a new
// name and deletes the old caches.
//
// It also tells a page when the network failed for it, so that offline.js can say
// "You're offline" even where the browser believes it is online (a network without
// internet, a server that is down): a page started from the copy learns it when it
// asks (see "message"), and a page whose request for a shell file failed is told.

/** @type {string} */
const SHELL_VERSION = "__RINGFENCE_SHELL_VERSION__";
/** @type {string[]} */
const SHELL_FILES = ["__RINGFENCE_SHELL_FILES__"];

const CACHE_PREFIX = "ringfence-shell-";
const CACHE_NAME = `${CACHE_PREFIX}${SHELL_VERSION}`;
const SHELL = new Set(SHELL_FILES);
const INDEX = "/";

// The types of a worker's global scope are not in the DOM library the rest of the
// client is checked against; these are the few this file uses.
/**
 * @typedef {Event & { waitUntil(promise: Promise<unknown>): void }} ExtendableEvent
 * @typedef {ExtendableEvent & {
 *   request: Request,
 *   clientId: string,
 *   resultingClientId: string,
 *   respondWith(response: Promise<Response> | Response): void,
 * }} FetchEvent
 * @typedef {ExtendableEvent & { data: unknown, source: WindowClient | null }} MessageFromPage
 * @typedef {{ id: string, postMessage(message: unknown): void }} WindowClient
 * @typedef {object} WorkerScope
 * @property {() => Promise<void>} skipWaiting
 * @property {{ claim(): Promise<void>, get(id: string): Promise<WindowClient | undefined> }} clients
 * @property {(type: string, listener: (event: any) => void) => void} addEventListener
 */
const worker = /** @type {WorkerScope} */ (/** @type {unknown} */ (self));

/** @typedef {{ type: "ringfence:network", online: boolean }} NetworkMessage */

/**
 * Pages (by client id) that started from the copy because the network failed.
 * @type {Set<string>}
 */
const startedOffline = new Set();

worker.addEventListener("install", (/** @type {ExtendableEvent} */ event) => {
  event.waitUntil(precache().then(() => worker.skipWaiting()));
});

worker.addEventListener("activate", (/** @type {ExtendableEvent} */ event) => {
  event.waitUntil(dropOldCaches().then(() => worker.clients.claim()));
});

worker.addEventListener("fetch", (/** @type {FetchEvent} */ event) => {
  const request = event.request;
  if (!isShellRequest(request)) return; // the network, exactly as without a worker
  event.respondWith(networkFirst(event));
});

worker.addEventListener("message", (/** @type {MessageFromPage} */ event) => {
  // A page that starts asks whether it started from the copy (offline.js).
  const data = event.data;
  const page = event.source;
  if (!page || typeof data !== "object" || data === null || !("type" in data)) return;
  if (data.type === "ringfence:network?") {
    const online = !startedOffline.delete(page.id);
    page.postMessage(/** @type {NetworkMessage} */ ({ type: "ringfence:network", online }));
  }
});

// --- push and notifications -------------------------------------------------------
// The `push` and `notificationclick` handlers (issue 11, Web Push: incoming calls and
// messages while no tab is open) go here.

// --- the shell cache --------------------------------------------------------------

async function precache() {
  const cache = await caches.open(CACHE_NAME);
  // cache: "reload" skips the HTTP cache, so the copy is this release's files.
  await cache.addAll(SHELL_FILES.map((url) => new Request(url, { cache: "reload", credentials: "omit" })));
}

async function dropOldCaches() {
  for (const name of await caches.keys()) {
    if (name.startsWith(CACHE_PREFIX) && name !== CACHE_NAME) await caches.delete(name);
  }
}

/**
 * A page load of the app, or one of the shell's files: nothing else.
 * @param {Request} request
 */
function isShellRequest(request) {
  if (request.method !== "GET") return false;
  if (request.headers.has("Authorization")) return false;
  const url = new URL(request.url);
  if (url.origin !== location.origin) return false;
  if (url.pathname === "/api" || url.pathname.startsWith("/api/")) return false;
  if (request.mode === "navigate") return url.pathname === INDEX || url.pathname === "/index.html";
  return SHELL.has(url.pathname) && url.search === "";
}

/**
 * The network's answer; the cached copy only when the network fails.
 * @param {FetchEvent} event
 * @returns {Promise<Response>}
 */
async function networkFirst(event) {
  const request = event.request;
  const navigation = request.mode === "navigate";
  try {
    // A page load always asks the server (a conditional request, cheap with the
    // ETag), so a release is seen at once and a failure means the server is out of
    // reach, not that the HTTP cache had no copy.
    return await (navigation ? fetch(request, { cache: "no-cache" }) : fetch(request));
  } catch (err) {
    const cache = await caches.open(CACHE_NAME);
    const copy = await cache.match(navigation ? INDEX : new URL(request.url).pathname);
    if (!copy) throw err; // not cached (the first visit was offline): the browser's own error
    if (navigation) startedOffline.add(event.resultingClientId);
    else tellOffline(event.clientId).catch(() => undefined);
    return copy;
  }
}

/**
 * Tell a page that one of its requests couldn't reach the server.
 * @param {string} clientId
 */
async function tellOffline(clientId) {
  const page = clientId ? await worker.clients.get(clientId) : undefined;
  page?.postMessage(/** @type {NetworkMessage} */ ({ type: "ringfence:network", online: false }));
}
