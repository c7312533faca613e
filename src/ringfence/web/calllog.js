// My calls, for the Calls page and the missed-call count on its link.
//
// The list starts from GET /api/v1/calls (newest first, paged by message id) and is
// kept current from the event stream: every finished call reaches both people as a
// call record in their conversation (message.new), and each call record is one entry
// here. So the page and the count change live, without asking the server again.
//
// "Missed since I last opened Calls": the id of the newest call shown on the Calls
// page is kept in localStorage, under a key that names the account. It is a
// per-browser convenience, not an account setting: another browser or device keeps
// its own, and it holds a message id and nothing else (no names, no numbers of
// calls). A browser that has none yet counts the missed calls of the newest page,
// since none of them has been looked at here.

import { callResult } from "./format.js";

/** @import { Api } from "./api.js" */
/** @import { Store } from "./store.js" */
/** @import { CallHistoryItem, Message, User } from "./types.js" */

/** Calls per page (the server allows up to 100). */
export const CALLS_PAGE = 50;

export class CallLog {
  /**
   * @param {Api} api
   * @param {Store} store Who I am, and the people I talk with (their current names).
   */
  constructor(api, store) {
    this.api = api;
    this.store = store;
    /** @type {Map<number, CallHistoryItem>} by message id */
    this.entries = new Map();
    /** The newest page has been fetched. */
    this.loaded = false;
    /** There may be calls before the oldest entry. */
    this.hasOlder = false;
    /** @type {string | null} Why the newest page couldn't be fetched. */
    this.error = null;
    /** @type {Promise<void> | null} */
    this.loading = null;
    /** @type {number | null} The newest call seen on the Calls page, in this browser. */
    this.seen = this.readSeen();
    /** @type {Set<() => void>} */
    this.listeners = new Set();
    this.scheduled = false;
    this.stopped = false;
    /** Another tab of this browser opened Calls (or I did, signed in as someone else). @param {StorageEvent} event */
    this.onStorage = (event) => {
      if (event.key !== this.key()) return;
      this.seen = this.readSeen();
      this.changed();
    };
    window.addEventListener("storage", this.onStorage);
  }

  /** Sign-out: no more updates. */
  stop() {
    this.stopped = true;
    window.removeEventListener("storage", this.onStorage);
    this.listeners.clear();
  }

  /**
   * @param {() => void} listener
   * @returns {() => void} unsubscribe
   */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const listener of [...this.listeners]) listener();
    });
  }

  /** Calls, newest first. */
  list() {
    return [...this.entries.values()].sort((a, b) => b.message_id - a.message_id);
  }

  /**
   * Fetch the newest page and merge it in (a second call while one is on its way
   * waits for that one). Failures are kept in `error` for the page to show.
   * @returns {Promise<void>}
   */
  load() {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const page = await this.api.calls({ limit: CALLS_PAGE });
        if (this.stopped) return;
        for (const item of page) this.entries.set(item.message_id, item);
        // Older pages already here stay: only the first load says what lies beyond.
        if (!this.loaded) this.hasOlder = page.length >= CALLS_PAGE;
        this.loaded = true;
        this.error = null;
      } catch (err) {
        this.error = err instanceof Error ? err.message : "unknown error";
      } finally {
        this.loading = null;
        this.changed();
      }
    })();
    return this.loading;
  }

  /** The page before the oldest entry. Throws what the server said. */
  async loadOlder() {
    let oldest = Infinity;
    for (const id of this.entries.keys()) oldest = Math.min(oldest, id);
    if (oldest === Infinity) return;
    const page = await this.api.calls({ before: oldest, limit: CALLS_PAGE });
    if (this.stopped) return;
    for (const item of page) this.entries.set(item.message_id, item);
    this.hasOlder = page.length >= CALLS_PAGE;
    this.changed();
  }

  /** The server's stream started over (a restored database): forget, then load again. */
  reset() {
    this.entries.clear();
    this.loaded = false;
    this.hasOlder = false;
    void this.load();
  }

  /**
   * A message from the event stream: a call record is one more call.
   * @param {Message} message
   */
  addMessage(message) {
    if (message.kind !== "call" || !message.call || this.entries.has(message.id)) return;
    const me = this.store.me.username;
    const outgoing = message.sender === me;
    const username = outgoing ? message.recipient : message.sender;
    this.entries.set(message.id, {
      message_id: message.id,
      call: message.call,
      peer: this.knownUser(username),
      direction: outgoing ? "outgoing" : "incoming",
      created_at: message.created_at,
    });
    this.changed();
  }

  /**
   * Someone's profile changed (user.updated): their entries show the new name.
   * @param {User} user
   */
  updateUser(user) {
    let touched = false;
    for (const [id, item] of this.entries) {
      if (item.peer.username !== user.username) continue;
      this.entries.set(id, { ...item, peer: { ...item.peer, ...user } });
      touched = true;
    }
    if (touched) this.changed();
  }

  /**
   * The freshest copy of a person this client holds: from their conversation (kept
   * current by user.updated), else from an earlier call, else just their username.
   * @param {string} username
   * @returns {User}
   */
  knownUser(username) {
    const fromConversation = this.store.conversations.get(username)?.user;
    if (fromConversation) return fromConversation;
    for (const item of this.entries.values()) if (item.peer.username === username) return item.peer;
    return { id: 0, username, display_name: username, verified: false, deleted: false };
  }

  /**
   * Whether this entry is a call that rang here and was never answered.
   * @param {CallHistoryItem} item
   */
  isMissed(item) {
    return callResult(item.call, item.direction === "outgoing") === "missed";
  }

  /**
   * Missed calls newer than the last one seen on the Calls page, among the calls
   * loaded (the newest page at least: more than that many unseen is not counted).
   */
  missedCount() {
    const seen = this.seen ?? 0;
    let count = 0;
    for (const item of this.entries.values()) if (item.message_id > seen && this.isMissed(item)) count++;
    return count;
  }

  /** The Calls page is being looked at: every call in it has been seen. */
  markSeen() {
    let newest = 0;
    for (const id of this.entries.keys()) newest = Math.max(newest, id);
    if (newest <= (this.seen ?? 0)) return;
    this.seen = newest;
    try {
      localStorage.setItem(this.key(), String(newest));
    } catch {
      // Storage refused (private mode, full): the count clears for this page only.
    }
    this.changed();
  }

  /** The storage key: per account, so two people sharing a browser keep their own. */
  key() {
    return `ringfence.calls-seen.${this.store.me.username}`;
  }

  /** @returns {number | null} */
  readSeen() {
    try {
      const value = Number(localStorage.getItem(this.key()));
      return Number.isSafeInteger(value) && value > 0 ? value : null;
    } catch {
      return null;
    }
  }
}
