// What the client knows: conversations, threads, sends in flight, who the user
// follows. Views subscribe and re-render; nothing here touches the DOM.
//
// Messages are keyed by their server id, so the same message arriving twice (in a
// page of history and live over the socket, or as the reply to our own send and
// as its echo) is stored once.
//
// Unread counts start from the server's (each conversation's `unread`) and are kept
// up to date here: a new text message from the other person counts unless it was
// seen as it arrived, and a read position (ours, from any of our devices) lowers
// the count. A message is counted only when it is newer than the conversation's
// last_message, which is exactly what the server's count may not include yet.

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
    /**
     * People whose message request I accepted on this page: their conversation then
     * says whether they can call me, and offers what would let them.
     * @type {Set<string>}
     */
    this.justAccepted = new Set();
    /**
     * My read position in each conversation, by the other person's username, as far
     * as this client knows (from my own reads, conversation.read events, or a list
     * that said nothing was unread).
     * @type {Map<string, number>}
     */
    this.readUpTo = new Map();
    /**
     * How far each person has read my messages, from the list (peer_read_up_to) and
     * message.read events (neither says anything where we don't share read receipts).
     * @type {Map<string, number>}
     */
    this.peerReadUpTo = new Map();
    /**
     * How far my messages have reached one of each person's devices, from the list
     * (peer_delivered_up_to) and message.delivered events; on the same terms.
     * @type {Map<string, number>}
     */
    this.peerDeliveredUpTo = new Map();
    /**
     * The newest message of each person's this client has acknowledged as delivered
     * (see noteDelivered).
     * @type {Map<string, number>}
     */
    this.acknowledged = new Map();
    /** @type {Map<string, number>} When each person last said they were typing to me (ms). */
    this.typing = new Map();
    /** @type {string | null} The conversation on screen (set by its view). */
    this.viewing = null;
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

  /**
   * Take a conversation list from the server, keeping what this client learned while
   * it was on its way: live messages newer than it (and whether they are unread) and
   * reads the list may predate.
   * @param {Conversation[]} list
   */
  reconcile(list) {
    return list.map((c) => {
      const name = c.user.username;
      this.takePeerPositions(name, c);
      const listed = c.last_message?.id ?? 0;
      // Nothing unread: everything up to the listed last message has been read.
      if (c.unread === 0 && listed) this.raiseReadUpTo(name, listed);
      const readUpTo = this.readUpTo.get(name) ?? 0;
      const newer = this.unreadIn(name, Math.max(listed, readUpTo));
      const unread = (readUpTo >= listed ? 0 : (c.unread ?? 0)) + newer;
      const known = this.conversations.get(name)?.last_message;
      const last = known && (!c.last_message || known.id > c.last_message.id) ? known : c.last_message;
      return { ...c, last_message: last, unread };
    });
  }

  /** @param {Conversation} conversation */
  putConversation(conversation) {
    this.conversations.set(conversation.user.username, conversation);
    this.changed();
  }

  /**
   * Someone's profile changed (a new display name): wherever this client holds that
   * person, me included, it now holds the new one. Views re-render from here.
   * @param {User} user
   */
  updateUser(user) {
    let touched = false;
    if (user.username === this.me.username) {
      this.me = { ...this.me, ...user };
      touched = true;
    }
    const conversation = this.conversations.get(user.username);
    if (conversation) {
      this.conversations.set(user.username, { ...conversation, user: { ...conversation.user, ...user } });
      touched = true;
    }
    if (touched) this.changed();
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
   * @param {boolean} [seen] It arrived in the conversation on screen, which reads it.
   */
  addMessage(message, isRequest, seen = false) {
    const peer = this.peerOf(message);
    this.insert(this.thread(peer), message);
    if (message.txn_id) this.pending.delete(message.txn_id);
    if (message.sender === peer) this.typing.delete(peer); // they stopped typing: it's here
    const conversation = this.conversations.get(peer);
    this.changed();
    if (!conversation) return false;
    const last = conversation.last_message?.id ?? 0;
    if (last <= message.id) {
      // Newer than anything the server's count can include: count it here.
      const counts = last < message.id && !seen && this.isUnread(peer, message, this.readUpTo.get(peer) ?? 0);
      this.conversations.set(peer, {
        ...conversation,
        last_message: message,
        is_request: isRequest ?? conversation.is_request,
        updated_at: message.created_at,
        unread: (conversation.unread ?? 0) + (counts ? 1 : 0),
      });
    }
    return true;
  }

  /**
   * My read position with `peer` moved to `upTo` (this device read, or another one
   * did). Returns false when the new count can't be worked out here (the thread isn't
   * loaded back that far): the caller reloads the list.
   * @param {string} peer
   * @param {number} upTo
   */
  applyRead(peer, upTo) {
    this.raiseReadUpTo(peer, upTo);
    const conversation = this.conversations.get(peer);
    if (!conversation) return true;
    const position = this.readUpTo.get(peer) ?? upTo;
    const thread = this.threads.get(peer);
    /** @type {number} */
    let unread;
    if (position >= (conversation.last_message?.id ?? 0)) unread = 0;
    else if (thread?.loaded && (!thread.hasOlder || (thread.messages[0]?.id ?? Infinity) <= position)) {
      unread = this.unreadIn(peer, position);
    } else return false;
    if (unread !== conversation.unread) {
      this.conversations.set(peer, { ...conversation, unread });
      this.changed();
    }
    return true;
  }

  /**
   * `peer` read my messages up to `upTo`.
   * @param {string} peer
   * @param {number} upTo
   */
  applyPeerRead(peer, upTo) {
    if ((this.peerReadUpTo.get(peer) ?? 0) >= upTo) return;
    this.peerReadUpTo.set(peer, upTo);
    this.changed();
  }

  /**
   * One of `peer`'s devices has my messages up to `upTo`.
   * @param {string} peer
   * @param {number} upTo
   */
  applyPeerDelivered(peer, upTo) {
    if ((this.peerDeliveredUpTo.get(peer) ?? 0) >= upTo) return;
    this.peerDeliveredUpTo.set(peer, upTo);
    this.changed();
  }

  /**
   * What a listed conversation says of how far `peer` has read and received my
   * messages (0 where we don't share read receipts). Positions known to be newer, from
   * receipts that came while the list was on its way, are kept.
   * @param {string} peer
   * @param {Conversation} conversation
   */
  takePeerPositions(peer, conversation) {
    const positions = /** @type {const} */ ([
      [this.peerReadUpTo, conversation.peer_read_up_to],
      [this.peerDeliveredUpTo, conversation.peer_delivered_up_to],
    ]);
    for (const [known, listed] of positions) {
      if ((known.get(peer) ?? 0) < listed) known.set(peer, listed);
    }
  }

  /**
   * Whether `peer`'s message `id` is news to the server's idea of what reached this
   * device, as far as this client knows: true once per newer id (it records it).
   * @param {string} peer
   * @param {number} id
   */
  noteDelivered(peer, id) {
    if ((this.acknowledged.get(peer) ?? 0) >= id) return false;
    this.acknowledged.set(peer, id);
    return true;
  }

  /**
   * `peer` is typing to me.
   * @param {string} peer
   * @param {number} now
   */
  setTyping(peer, now) {
    this.typing.set(peer, now);
    this.changed();
  }

  /**
   * @param {string} peer
   * @param {number} upTo
   */
  raiseReadUpTo(peer, upTo) {
    if ((this.readUpTo.get(peer) ?? 0) < upTo) this.readUpTo.set(peer, upTo);
  }

  /** Unread messages across all conversations (requests too). */
  unreadTotal() {
    let total = 0;
    for (const c of this.conversations.values()) total += c.unread ?? 0;
    return total;
  }

  /**
   * Text messages from `peer` in the loaded thread after message `after`.
   * @param {string} peer
   * @param {number} after
   */
  unreadIn(peer, after) {
    const messages = this.threads.get(peer)?.messages ?? [];
    return messages.filter((m) => this.isUnread(peer, m, after)).length;
  }

  /**
   * What the server counts as unread: their text messages past my position.
   * @param {string} peer
   * @param {Message} message
   * @param {number} position
   */
  isUnread(peer, message, position) {
    return message.sender === peer && message.kind === "text" && message.id > position;
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
