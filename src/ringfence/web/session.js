// Where the session token lives, and why there.
//
// Token storage decision: localStorage, shared by every tab of this browser, unless
// the person says at sign-in that "This is a shared computer"; then sessionStorage,
// kept to the one tab and wiped when it closes.
// - Any storage a script can read (localStorage, sessionStorage, IndexedDB, a
//   non-HttpOnly cookie, a JS variable) is readable by an XSS payload running in the
//   page. The server's API only takes bearer tokens (no HttpOnly cookie session, so
//   no ambient credential and nothing for CSRF to ride on), so the token has to be
//   reachable from script; the question is how much damage a theft can do and for
//   how long.
// - On one's own device, people expect to stay signed in across tabs and restarts,
//   as with every messenger; the cost is that the token sits on disk in the browser
//   profile until sign-out (or until the server ends the session: 30 days unused,
//   180 days at most). On a shared computer that cost is not worth it, so the token
//   stays in the tab, as before.
// - Every tab of the browser uses the one shared session, and they stay in step
//   through the `storage` event: signing in in one tab signs in the others that show
//   the sign-in page (views/auth.js), and signing out in one, or the server refusing
//   the token (401, or the socket's 4401 when the session is revoked from another
//   device), clears it from storage, which ends the session in every tab
//   (events.js). A tab-only session takes no part in any of this.
// - What stops XSS from running at all is the server's CSP (script-src 'self', no
//   inline script, no eval) and this client never building markup from strings (see
//   dom.js). What stops a stolen token from being sent out is connect-src 'self'
//   and img-src limited to self/data/blob. The token itself is never put in a URL
//   (not even the WebSocket's: it goes in the first frame) or logged.

/** @import { User } from "./types.js" */

const KEY = "ringfence.session";

/**
 * @typedef {object} StoredSession
 * @property {string} token
 * @property {User} user
 */

/** @typedef {"device" | "tab"} Scope "device": every tab, across restarts; "tab": this tab only. */

/** @type {Scope} Where this tab's session is (or the next sign-in will be) kept. */
let scope = "device";
/** @type {string | null} The token this tab signed in with, or loaded. */
let mine = null;
/** Whether the last session this tab ended was its own ("This is a shared computer"). */
let endedTabOnly = false;

/**
 * @param {Scope} where
 * @returns {Storage | null}
 */
function storage(where) {
  try {
    return where === "tab" ? window.sessionStorage : window.localStorage;
  } catch {
    return null; // storage disabled by the browser's settings
  }
}

/**
 * @param {Scope} where
 * @returns {StoredSession | null}
 */
function read(where) {
  try {
    const raw = storage(where)?.getItem(KEY);
    if (!raw) return null;
    /** @type {unknown} */
    const data = JSON.parse(raw);
    if (
      typeof data === "object" && data !== null &&
      "token" in data && typeof data.token === "string" &&
      "user" in data && typeof data.user === "object" && data.user !== null
    ) {
      return /** @type {StoredSession} */ (data);
    }
  } catch {
    // Storage disabled or garbled: treat as signed out.
  }
  return null;
}

/**
 * @param {Scope} where
 * @param {(store: Storage) => void} action
 */
function write(where, action) {
  try {
    const store = storage(where);
    if (store) action(store);
  } catch {
    // Storage disabled (private mode quotas): the session still works until reload.
  }
}

/**
 * This tab's session: its own (a shared computer's), else the browser's.
 * @returns {StoredSession | null}
 */
export function loadSession() {
  const own = read("tab");
  if (own) {
    scope = "tab";
    mine = own.token;
    return own;
  }
  const shared = read("device");
  scope = "device";
  mine = shared?.token ?? null;
  return shared;
}

/**
 * The session every tab of this browser shares, for a tab on the sign-in form to join
 * at once; none after this tab's own session (a shared computer's) was signed out,
 * when the person is shown the form they asked for.
 * @returns {StoredSession | null}
 */
export function sessionToJoin() {
  return endedTabOnly ? null : read("device");
}

/**
 * Where the next sign-in is kept: in this tab only ("This is a shared computer"), or
 * for every tab, across restarts. Called by the sign-in form just before it signs in.
 * @param {boolean} tabOnly
 */
export function keepToThisTab(tabOnly) {
  scope = tabOnly ? "tab" : "device";
}

/**
 * Whether this tab's session is kept on this device (every tab, across restarts), as
 * opposed to a shared computer's, kept to the tab. Only a kept session hands its token
 * to the service worker for notifications (notify.js).
 */
export function sessionKept() {
  return scope === "device";
}

/** @param {StoredSession} session */
export function saveSession(session) {
  if (scope === "device" && session.token === mine) {
    // An update (my new name) of a session that another tab has since replaced by
    // signing in anew: the newer one is the browser's session, keep it.
    const stored = read("device");
    if (stored && stored.token !== mine) return;
  }
  mine = session.token;
  endedTabOnly = false;
  write(scope, (store) => store.setItem(KEY, JSON.stringify(session)));
}

export function clearSession() {
  write("tab", (store) => store.removeItem(KEY));
  if (scope === "device") {
    // Only this tab's own token: never one another tab has signed in with since.
    const stored = read("device");
    if (!stored || stored.token === mine) write("device", (store) => store.removeItem(KEY));
  }
  endedTabOnly = scope === "tab";
  scope = "device";
  mine = null;
}

/**
 * Call `listener` with the browser's shared session whenever another tab changes it
 * (signs in, signs out, or the server ended it there), and when this page comes back
 * from the back/forward cache, which may have missed a change.
 * @param {(shared: StoredSession | null) => void} listener
 * @returns {() => void} Stops listening.
 */
export function onSharedSessionChange(listener) {
  /** @param {StorageEvent} event */
  const onStorage = (event) => {
    if (event.key !== KEY && event.key !== null) return; // null: storage cleared
    if (event.storageArea !== storage("device")) return;
    listener(read("device"));
  };
  /** @param {PageTransitionEvent} event */
  const onShow = (event) => {
    if (event.persisted) listener(read("device"));
  };
  window.addEventListener("storage", onStorage);
  window.addEventListener("pageshow", onShow);
  return () => {
    window.removeEventListener("storage", onStorage);
    window.removeEventListener("pageshow", onShow);
  };
}

/**
 * Call `onEnded` once, when the shared session this tab is signed in with ends in
 * another tab: it was signed out there (or refused by the server), or replaced by a
 * new sign-in. Nothing happens for a tab-only session.
 * @param {string} token This tab's token.
 * @param {(replaced: boolean) => void} onEnded
 * @returns {() => void} Stops watching.
 */
export function onSessionEndedElsewhere(token, onEnded) {
  if (scope !== "device" || mine !== token) return () => undefined;
  const stop = onSharedSessionChange((shared) => {
    if (shared?.token === token) return; // still ours (maybe a new name was saved)
    stop();
    onEnded(shared !== null);
  });
  return stop;
}
