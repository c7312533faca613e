// Where the session token lives, and why there.
//
// Token storage decision: sessionStorage, per tab.
// - Any storage a script can read (localStorage, sessionStorage, IndexedDB, a
//   non-HttpOnly cookie, a JS variable) is readable by an XSS payload running in the
//   page. The server's API only takes bearer tokens (no HttpOnly cookie session), so
//   the token has to be reachable from script; the question is how much damage a
//   theft can do and for how long.
// - sessionStorage is scoped to one tab and is wiped when that tab closes, so a
//   token exists only while the user has Ringfence open. localStorage would keep it
//   on disk indefinitely and share it with every tab, which widens both the window
//   and the blast radius of a theft. A memory-only token would be safest of all but
//   would sign the user out on every reload.
// - Each tab signs in on its own and so gets its own server session: signing out (or
//   revoking) one device never leaves another tab holding a live copy of its token.
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

/** @returns {StoredSession | null} */
export function loadSession() {
  try {
    const raw = window.sessionStorage.getItem(KEY);
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

/** @param {StoredSession} session */
export function saveSession(session) {
  try {
    window.sessionStorage.setItem(KEY, JSON.stringify(session));
  } catch {
    // Storage disabled (private mode quotas): the session still works until reload.
  }
}

export function clearSession() {
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // nothing stored
  }
}
