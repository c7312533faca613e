// Notifications and Web Push, the page's side: asking for permission, subscribing this
// browser, and handing the service worker (sw.js) what it needs to act on a push.
//
// - Permission is asked only when the person presses "Turn on notifications" (on the
//   banner this module makes, or in Settings), never on page load: a prompt out of
//   the blue is refused by most people and some browsers then stop asking for good.
// - Then the browser subscribes with the server's VAPID key and the subscription is
//   registered for this session (POST /api/v1/me/push-subscriptions). The server ends
//   it with the session: signing out removes it there; here the browser's
//   subscription is dropped too.
// - The worker wakes without a page, and a worker can't read localStorage, so the
//   session's token is copied into IndexedDB, which it can. Only for a session kept
//   on this device: a shared computer's session stays in its tab, and gets no pushes.
//   The copy is deleted at sign-out. (docs/security.md: the trade-off.)
// - A push carries only what happened (a call's id, a sender's username); the worker
//   asks the server for the rest with that token.

/** @import { Api } from "./api.js" */

const DB_NAME = "ringfence-worker";
const DB_STORE = "kv";
const SESSION_KEY = "session";
/** localStorage: this browser's notifications are on ("1"), and its subscription's id. */
const ON_KEY = "ringfence.notifications";
const ID_KEY = "ringfence.push-id";
/** localStorage: the banner was dismissed. */
const DISMISSED_KEY = "ringfence.notifications-banner";

/** @typedef {"unsupported" | "blocked" | "off" | "on"} NotifyState */

/** Web Push and notifications work here (a secure context with a service worker). */
export function pushSupported() {
  return window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** @returns {NotifyState} */
export function notifyState() {
  if (!pushSupported()) return "unsupported";
  if (Notification.permission === "denied") return "blocked";
  return Notification.permission === "granted" && readLocal(ON_KEY) === "1" ? "on" : "off";
}

/**
 * Ask for permission (only ever from a click), subscribe and register the
 * subscription. Returns the state it ends in; throws on a refused registration.
 * @param {Api} api
 * @param {string} token This session's token, for the worker.
 * @returns {Promise<NotifyState>}
 */
export async function turnOn(api, token) {
  if (!pushSupported()) return "unsupported";
  const permission = await Notification.requestPermission();
  if (permission !== "granted") return permission === "denied" ? "blocked" : "off";
  await subscribe(api, token);
  writeLocal(ON_KEY, "1");
  return "on";
}

/**
 * Turn this browser's notifications off: unsubscribe and forget the worker's copy.
 * @param {Api} api
 */
export async function turnOff(api) {
  writeLocal(ON_KEY, null);
  const id = Number(readLocal(ID_KEY));
  writeLocal(ID_KEY, null);
  await dropLocal();
  if (id > 0) await api.unsubscribePush(id).catch(() => undefined);
}

/**
 * Signed in (or started with a kept session): where notifications are on, register
 * this browser's subscription for this session and give the worker the token.
 * @param {Api} api
 * @param {string} token
 * @param {boolean} kept The session is kept on this device (not a shared computer's).
 */
export async function signedIn(api, token, kept) {
  if (!kept || notifyState() !== "on") return;
  try {
    await subscribe(api, token);
  } catch (err) {
    console.warn(`Notifications couldn't be set up for this session: ${err}`);
  }
}

/** Signed out: the server dropped the subscription with the session; drop ours. */
export async function signedOut() {
  writeLocal(ON_KEY, null);
  writeLocal(ID_KEY, null);
  await dropLocal();
}

/**
 * The banner that offers notifications, or null where it has nothing to offer (on
 * already, blocked, unsupported, dismissed, or a shared computer's session).
 * @param {Api} api
 * @param {() => string | null} token
 * @param {boolean} kept
 * @returns {HTMLElement | null}
 */
export function notificationBanner(api, token, kept) {
  if (!kept || notifyState() !== "off" || readLocal(DISMISSED_KEY) === "1") return null;
  const banner = document.createElement("div");
  banner.className = "notify-banner";
  banner.setAttribute("role", "region");
  banner.setAttribute("aria-label", "Notifications");
  const text = document.createElement("p");
  text.textContent = "Get notified of calls and messages when Ringfence is in the background or closed.";
  const on = document.createElement("button");
  on.type = "button";
  on.textContent = "Turn on notifications";
  const later = document.createElement("button");
  later.type = "button";
  later.className = "link";
  later.textContent = "Not now";
  later.addEventListener("click", () => {
    writeLocal(DISMISSED_KEY, "1");
    banner.remove();
  });
  on.addEventListener("click", async () => {
    const current = token();
    if (!current) return;
    on.disabled = true;
    try {
      const state = await turnOn(api, current);
      if (state === "on") banner.remove();
      else if (state === "blocked") text.textContent = "Notifications are blocked for Ringfence in this browser's site settings.";
    } catch (err) {
      text.textContent = `Notifications couldn't be turned on: ${err instanceof Error ? err.message : err}`;
    } finally {
      on.disabled = false;
    }
  });
  banner.append(text, on, later);
  return banner;
}

/**
 * Call `onAnswer(callId)` when the worker asks an open page to answer a call (the
 * Accept of a notification, with a Ringfence tab already open).
 * @param {(callId: string) => void} onAnswer
 */
export function onWorkerAnswer(onAnswer) {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.addEventListener("message", (event) => {
    /** @type {unknown} */
    const data = event.data;
    if (typeof data !== "object" || data === null || !("type" in data) || data.type !== "ringfence:answer") return;
    if ("call_id" in data && typeof data.call_id === "string") onAnswer(data.call_id);
  });
}

// --- internals ---------------------------------------------------------------------

/** How long the browser's push service may take to give a subscription. */
const SUBSCRIBE_TIMEOUT_MS = 20_000;

/**
 * @param {Api} api
 * @param {string} token
 */
async function subscribe(api, token) {
  const registration = await navigator.serviceWorker.ready;
  /** @type {PushSubscription | null} */
  let subscription = await registration.pushManager.getSubscription();
  if (!subscription) {
    const key = await api.pushKey();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("this browser's push service didn't answer")), SUBSCRIBE_TIMEOUT_MS);
    });
    try {
      subscription = /** @type {PushSubscription} */ (await Promise.race([
        registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromBase64Url(key) }),
        late,
      ]));
    } finally {
      clearTimeout(timer);
    }
  }
  await registerSubscription(api, token, /** @type {import("./types.js").PushSubscriptionJSON} */ (subscription.toJSON()));
}

/**
 * Register a browser's subscription for this session, and give the worker the token
 * it needs to act on the pushes.
 * @param {Api} api
 * @param {string} token
 * @param {import("./types.js").PushSubscriptionJSON} subscription
 */
export async function registerSubscription(api, token, subscription) {
  const id = await api.subscribePush(subscription);
  writeLocal(ID_KEY, String(id));
  await storeLocal(token);
}

/** @param {string} text */
function fromBase64Url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/**
 * @param {string} key
 * @returns {string | null}
 */
function readLocal(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * @param {string} key
 * @param {string | null} value null removes it.
 */
function writeLocal(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch {
    // storage disabled: notifications then last until reload
  }
}

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(DB_STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * @param {(store: IDBObjectStore) => void} action
 * @returns {Promise<void>}
 */
async function inDb(action) {
  const db = await openDb();
  try {
    await new Promise((resolve, reject) => {
      const tx = db.transaction(DB_STORE, "readwrite");
      action(tx.objectStore(DB_STORE));
      tx.oncomplete = () => resolve(undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** @param {string} token */
function storeLocal(token) {
  return inDb((store) => store.put({ token }, SESSION_KEY));
}

/** Forget the worker's copy of the token, and this browser's push subscription. */
async function dropLocal() {
  try {
    await inDb((store) => store.delete(SESSION_KEY));
  } catch {
    // no IndexedDB here: nothing was stored
  }
  try {
    const registration = await navigator.serviceWorker?.getRegistration();
    const subscription = await registration?.pushManager.getSubscription();
    await subscription?.unsubscribe();
  } catch {
    // no worker or push here: nothing to drop
  }
}
