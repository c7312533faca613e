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
// A push (Web Push, encrypted for this browser) says only what happened: a call's id,
// or a new message's sender. The worker asks the server for the rest (the caller's
// name, a message's text when the person chose to see it) with the session token the
// page left in IndexedDB (notify.js); without one it shows a notification without
// names. The token is only ever sent in an Authorization header, never in a URL.
//
// A visible, focused Ringfence tab rings and shows messages itself: then nothing is
// shown here. An incoming call's notification has Accept and Decline; its tag is the
// call's id, so a repeated push replaces it and `call.ended` closes it.

/**
 * @typedef {ExtendableEvent & { data: { json(): unknown } | null }} PushEvent
 * @typedef {ExtendableEvent & {
 *   action: string,
 *   notification: { data: unknown, tag: string, close(): void },
 * }} NotificationClickEvent
 * @typedef {{ id: string, url: string, focused: boolean, visibilityState: string,
 *   focus(): Promise<unknown>, postMessage(message: unknown): void }} PageClient
 * @typedef {{
 *   showNotification(title: string, options: object): Promise<void>,
 *   getNotifications(filter?: { tag?: string }): Promise<{ close(): void }[]>,
 * }} Registration
 */
const pushScope = /** @type {{
 *   registration: Registration,
 *   clients: {
 *     matchAll(options: object): Promise<PageClient[]>,
 *     openWindow(url: string): Promise<unknown>,
 *   },
 * }} */ (/** @type {unknown} */ (self));

const CALL_ID = /^[A-Za-z0-9_-]{8,64}$/;
const USERNAME = /^[a-z0-9_]{3,32}$/;

worker.addEventListener("push", (/** @type {PushEvent} */ event) => {
  /** @type {unknown} */
  let data = null;
  try {
    data = event.data?.json() ?? null;
  } catch {
    data = null;
  }
  if (typeof data !== "object" || data === null || !("type" in data)) return;
  keepAlive(event, onPush(/** @type {Record<string, unknown>} */ (data)));
});

worker.addEventListener("notificationclick", (/** @type {NotificationClickEvent} */ event) => {
  const notification = event.notification;
  notification.close();
  const data = /** @type {Record<string, unknown> | null} */ (notification.data);
  if (!data || typeof data !== "object") return;
  keepAlive(event, onClick(data, event.action));
});

/**
 * Keep the worker alive until `work` is done. The work runs either way: waitUntil
 * throws for an event the browser did not dispatch (a test's synthetic click).
 * @param {ExtendableEvent} event
 * @param {Promise<unknown>} work
 */
function keepAlive(event, work) {
  const done = work.catch(() => undefined);
  try {
    event.waitUntil(done);
  } catch {
    // not dispatched by the browser: nothing to keep alive
  }
}

/** @param {Record<string, unknown>} data */
async function onPush(data) {
  if (data.type === "call.ended") {
    if (typeof data.call_id !== "string") return;
    for (const shown of await pushScope.registration.getNotifications({ tag: data.call_id })) shown.close();
    return;
  }
  if (await pageInFront()) return;
  const token = await storedToken();
  if (data.type === "call.incoming" && typeof data.call_id === "string" && CALL_ID.test(data.call_id)) {
    await showCall(data.call_id, token);
  } else if (data.type === "message.new" && typeof data.from === "string" && USERNAME.test(data.from)) {
    await showMessage(data, data.from, token);
  }
}

/**
 * @param {string} callId
 * @param {string | null} token
 */
async function showCall(callId, token) {
  let title = "Incoming call";
  let body = "Someone is calling you on Ringfence.";
  if (token) {
    const answer = await api("GET", `/api/v1/push/calls/${encodeURIComponent(callId)}`, token);
    if (answer?.status === 404) return; // answered elsewhere or over already
    const caller = answer?.ok ? /** @type {{ caller?: { username: string, display_name: string } }} */ (await answer.json()).caller : undefined;
    if (caller) {
      title = `Incoming call — ${caller.display_name || caller.username}`;
      body = `@${caller.username} is calling you.`;
    }
  }
  await pushScope.registration.showNotification(title, {
    body,
    tag: callId,
    renotify: true,
    requireInteraction: true,
    icon: "/icons/icon-192.png",
    data: { type: "call", call_id: callId },
    actions: [
      { action: "accept", title: "Accept" },
      { action: "decline", title: "Decline" },
    ],
  });
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} from
 * @param {string | null} token
 */
async function showMessage(data, from, token) {
  let name = `@${from}`;
  let body = "";
  if (token) {
    const list = await api("GET", "/api/v1/conversations", token);
    if (list?.ok) {
      /** @type {{ conversations?: { user: { username: string, display_name: string } }[] }} */
      const found = await list.json();
      const user = found.conversations?.find((c) => c.user.username === from)?.user;
      if (user?.display_name) name = user.display_name;
    }
    if (data.show === "name_and_text" && typeof data.message_id === "number") {
      const history = await api("GET", `/api/v1/conversations/${encodeURIComponent(from)}/messages?limit=20`, token);
      if (history?.ok) {
        /** @type {{ messages?: { id: number, text: string | null }[] }} */
        const page = await history.json();
        const text = page.messages?.find((m) => m.id === data.message_id)?.text ?? "";
        body = text.length > 200 ? `${text.slice(0, 199)}…` : text;
      }
    }
  }
  const title = data.request === true ? `Message request from ${name}` : `New message from ${name}`;
  await pushScope.registration.showNotification(title, {
    body,
    tag: `message:${from}`,
    icon: "/icons/icon-192.png",
    data: { type: "message", from },
  });
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} action
 */
async function onClick(data, action) {
  if (data.type === "call" && typeof data.call_id === "string" && CALL_ID.test(data.call_id)) {
    const callId = data.call_id;
    if (action === "decline") {
      const token = await storedToken();
      if (token) await api("POST", `/api/v1/calls/${encodeURIComponent(callId)}/decline`, token);
      return;
    }
    // Accept, or a click on the notification itself: to the call screen, answering.
    const page = await anyPage();
    if (page) {
      await page.focus().catch(() => undefined);
      page.postMessage({ type: "ringfence:answer", call_id: callId });
    } else {
      await pushScope.clients.openWindow(`/#/answer/${callId}`);
    }
    return;
  }
  if (data.type === "message" && typeof data.from === "string" && USERNAME.test(data.from)) {
    const page = await anyPage();
    if (page) await page.focus().catch(() => undefined);
    else await pushScope.clients.openWindow(`/#/c/${data.from}`);
  }
}

/** Whether a Ringfence tab is visible and focused (it rings and notifies by itself). */
async function pageInFront() {
  const pages = await pushScope.clients.matchAll({ type: "window", includeUncontrolled: true });
  return pages.some((page) => page.visibilityState === "visible" && page.focused);
}

/** @returns {Promise<PageClient | undefined>} */
async function anyPage() {
  const pages = await pushScope.clients.matchAll({ type: "window", includeUncontrolled: true });
  return pages.find((page) => new URL(page.url).origin === location.origin);
}

/**
 * A request to the API with the stored session; null when the network failed.
 * @param {string} method
 * @param {string} path
 * @param {string} token
 * @returns {Promise<Response | null>}
 */
async function api(method, path, token) {
  try {
    return await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    return null;
  }
}

/**
 * The session token the page left for the worker (notify.js), or null.
 * @returns {Promise<string | null>}
 */
function storedToken() {
  return new Promise((resolve) => {
    const request = indexedDB.open("ringfence-worker", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("kv");
    request.onerror = () => resolve(null);
    request.onsuccess = () => {
      const db = request.result;
      try {
        const get = db.transaction("kv", "readonly").objectStore("kv").get("session");
        get.onsuccess = () => {
          db.close();
          const value = /** @type {unknown} */ (get.result);
          const token = typeof value === "object" && value !== null && "token" in value ? value.token : null;
          resolve(typeof token === "string" ? token : null);
        };
        get.onerror = () => {
          db.close();
          resolve(null);
        };
      } catch {
        db.close();
        resolve(null);
      }
    };
  });
}

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
