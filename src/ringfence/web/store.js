// What the client knows: conversations, threads, sends in flight, who the user
// follows. Views subscribe and re-render; nothing here touches the DOM.
//
// Messages are keyed by their server id, so the same message arriving twice (in a
// page of history and live over the socket, or as the reply to our own send and
// as its echo) is stored once.

/** @import { User, Message, Conversation, Settings } from "./types.js" */

/**
 * @typedef {object} Thread
 * @property {Message[]} messages Oldest first, unique by id.
 * @property {boolean} loaded The newest page has been fetched.
 * @property {boolean} hasOlder There may be history before messages[0].
 */

/**
 * @typedef {object} PendingSend
 * @property {string} txnId
 * @property {string} to
 * @property {string} text
 * @property {"sending" | "failed"} status
 * @property {string} [error]
 * @property {number} createdAt
 */

export class Store {
  /** @param {User} me */
  constructor(me) {
    this.me = me;
    /** @type {Settings | null} */
    this.settings = null;
    /** @type {Map<string, Conversation>} */
    this.conversations = new Map();
    this.conversationsLoaded = false;
    /** @type {Map<string, Thread>} */
    this.threads = new Map();
    /** @type {Map<string, PendingSend>} by txn id */
    this.pending = new Map();
    /** @type {Set<string> | null} */
    this.following = null;
    /** @type {Set<() => void>} */
    this.listeners = new Set();
    this.scheduled = false;
  }

  /**
   * @param {() => void} listener
   * @returns {() => void} unsubscribe
   */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tell views, once per task however many changes were made. */
  changed() {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const listener of [...this.listeners]) listener();
    });
  }

  /** @param {Message} message */
  peerOf(message) {
    return message.sender === this.me.username ? message.recipient : message.sender;
  }

  /** @param {string} username */
  thread(username) {
    let thread = this.threads.get(username);
    if (!thread) {
      thread = { messages: [], loaded: false, hasOlder: true };
      this.threads.set(username, thread);
    }
    return thread;
  }

  /** @param {Conversation[]} list */
  setConversations(list) {
    this.conversations = new Map(list.map((c) => [c.user.username, c]));
    this.conversationsLoaded = true;
    this.changed();
  }

  /** @param {Conversation} conversation */
  putConversation(conversation) {
    this.conversations.set(conversation.user.username, conversation);
    this.changed();
  }

  /** @param {string} username */
  removeConversation(username) {
    this.conversations.delete(username);
    this.changed();
  }

  /**
   * Merge a page of history (oldest first).
   * @param {string} username
   * @param {Message[]} page
   * @param {{older: boolean, limit: number}} how
   */
  addPage(username, page, how) {
    const thread = this.thread(username);
    for (const message of page) this.insert(thread, message);
    if (how.older || !thread.loaded) thread.hasOlder = page.length >= how.limit;
    thread.loaded = true;
    this.changed();
  }

  /**
   * A message from the socket or from our own send. Returns false if it was a
   * conversation this client had not heard of (the caller reloads the list).
   * @param {Message} message
   * @param {boolean | null} isRequest The viewer's side of the conversation, if known.
   */
  addMessage(message, isRequest) {
    const peer = this.peerOf(message);
    this.insert(this.thread(peer), message);
    if (message.txn_id) this.pending.delete(message.txn_id);
    const conversation = this.conversations.get(peer);
    this.changed();
    if (!conversation) return false;
    if (!conversation.last_message || conversation.last_message.id <= message.id) {
      this.conversations.set(peer, {
        ...conversation,
        last_message: message,
        is_request: isRequest ?? conversation.is_request,
        updated_at: message.created_at,
      });
    }
    return true;
  }

  /**
   * @param {Thread} thread
   * @param {Message} message
   */
  insert(thread, message) {
    const list = thread.messages;
    let i = list.length;
    while (i > 0 && (list[i - 1]?.id ?? 0) > message.id) i--;
    if (list[i - 1]?.id === message.id) return;
    list.splice(i, 0, message);
  }

  /** Conversations, newest first, split into accepted ones and requests. */
  inbox() {
    const all = [...this.conversations.values()].sort(
      (a, b) => (b.last_message?.id ?? 0) - (a.last_message?.id ?? 0) || b.updated_at.localeCompare(a.updated_at),
    );
    return {
      conversations: all.filter((c) => !c.is_request),
      requests: all.filter((c) => c.is_request),
    };
  }

  /** @param {string} username */
  pendingFor(username) {
    return [...this.pending.values()].filter((p) => p.to === username).sort((a, b) => a.createdAt - b.createdAt);
  }
}
