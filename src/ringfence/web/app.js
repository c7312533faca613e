// Ringfence's web client: wiring and routing. The pieces live in their own modules:
// api.js (HTTP), events.js (the WebSocket), store.js (state), outbox.js (sending),
// call.js (WebRTC), and one module per screen in views/.

import { Api, ApiError } from "./api.js";
import { CallManager } from "./callmanager.js";
import { CallLog } from "./calllog.js";
import { byId, h, replace, toast } from "./dom.js";
import { EventSocket } from "./events.js";
import { Outbox } from "./outbox.js";
import { notificationBanner, onWorkerAnswer, signedIn as notifySignedIn, signedOut as notifySignedOut } from "./notify.js";
import { clearSession, loadSession, saveSession, sessionKept } from "./session.js";
import { Store } from "./store.js";
import { setMissedCalls, setUnreadCount } from "./title.js";
import { renderAuth } from "./views/auth.js";
import { CallView } from "./views/call.js";
import { renderAccount } from "./views/account.js";
import { renderCalls } from "./views/calls.js";
import { renderConversation } from "./views/conversation.js";
import { renderInbox } from "./views/inbox.js";
import { renderSettings } from "./views/settings.js";

/** @import { AppContext } from "./context.js" */
/** @import { Session, ServerEvent, ReadyEvent, Media, User } from "./types.js" */
/** @import { StatusInfo } from "./events.js" */

const main = byId("main", HTMLElement);
const topbar = byId("topbar", HTMLElement);
const connection = byId("connection", HTMLElement);
const callLayer = byId("call", HTMLElement);
const signOutButton = byId("signout", HTMLButtonElement);
const inboxCount = byId("inbox-count", HTMLElement);
const inboxLink = byId("nav-inbox", HTMLAnchorElement);
const callsCount = byId("calls-count", HTMLElement);
const callsLink = byId("nav-calls", HTMLAnchorElement);
/** Screens of their own (not the inbox, not a conversation), by their address. */
const PAGES = new Set(["#/calls", "#/settings", "#/account"]);

/** @type {string | null} */
let token = null;
const api = new Api(() => token, () => endSession("Your session has ended. Sign in again."));

/**
 * Everything that exists while signed in.
 * @typedef {object} Live
 * @property {AppContext} ctx
 * @property {EventSocket} events
 * @property {CallView} callView
 * @property {CallLog} callLog My calls, for the Calls page and its missed-call count.
 */
/** @type {Live | null} */
let live = null;
/** @type {(() => void) | null} */
let cleanupView = null;
/** @type {"signin" | "signup"} */
let authMode = "signin";
/** @type {string | null} */
let authNotice = null;
/**
 * A call to answer as soon as it rings here: a notification's Accept opened or
 * focused this page (#/answer/<call id>, or a message from the service worker).
 * @type {string | null}
 */
let answerCall = null;
/** @type {HTMLElement | null} The offer to turn on notifications. */
let banner = null;

// --- signing in and out ----------------------------------------------------------

/** @param {Session} session */
function signedIn(session) {
  saveSession({ token: session.token, user: session.user });
  authNotice = null;
  start(session.token, session.user);
  if (!location.hash.startsWith("#/c/") && !PAGES.has(location.hash)) navigate("#/inbox");
  else route();
}

/**
 * @param {string} sessionToken
 * @param {User} me
 */
function start(sessionToken, me) {
  token = sessionToken;
  const store = new Store(me);
  const outbox = new Outbox(api, store);
  outbox.onUnknownConversation = () => void reloadConversations();
  const events = new EventSocket(sessionToken, {
    onEvent: (event) => onEvent(event),
    onReady: (ready, reconnected) => onReady(ready, reconnected),
    onStatus: (info) => showConnection(info),
    onFatal: (reason) => endSession(reason),
  });
  outbox.socket = events;
  const calls = new CallManager(api, events, (session) => {
    live?.callView.update(session);
    answerIfAsked();
  });
  const callView = new CallView(callLayer, calls, (open) => {
    main.inert = open;
    topbar.inert = open;
  });
  const callLog = new CallLog(api, store);
  live = { ctx: context(store, outbox, calls, events), events, callView, callLog };
  store.subscribe(() => showUnread(store.unreadTotal()));
  callLog.subscribe(() => showMissed(callLog.missedCount()));
  topbar.hidden = false;
  byId("me-name", HTMLElement).textContent = `@${me.username}`;
  events.start();
  const kept = sessionKept();
  void notifySignedIn(api, sessionToken, kept);
  banner = notificationBanner(api, () => token, kept);
  if (banner) main.before(banner);
  void reloadConversations();
  void callLog.load();
  void api.me().then((data) => {
    setMe(store, data.user);
    store.settings = data.settings;
    store.changed(); // what the screens say about calls depends on them
  }).catch(() => undefined);
}

async function signOut() {
  signOutButton.disabled = true;
  let detail = null;
  try {
    await api.logout();
  } catch (err) {
    // The session may still be valid on the server: say so rather than pretend.
    if (!(err instanceof ApiError && err.status === 401)) {
      detail = "Signed out on this device, but the server couldn't be reached to end the session.";
    }
  } finally {
    signOutButton.disabled = false;
  }
  endSession(detail);
}

/**
 * @param {Store} store
 * @param {User} me What the server says I am now.
 */
function setMe(store, me) {
  store.me = me;
  remember(me);
}

/**
 * Keep the stored session's copy of me current, so a reload starts from my real name.
 * @param {User} me
 */
function remember(me) {
  if (token) saveSession({ token, user: me });
}

/** @param {string | null} notice */
function endSession(notice) {
  if (!live && !token) return;
  live?.ctx.calls.stop();
  deliveries.clear();
  live?.events.stop();
  live?.callView.update(null);
  live?.callLog.stop();
  live = null;
  token = null;
  banner?.remove();
  banner = null;
  void notifySignedOut();
  clearSession();
  showUnread(0);
  showMissed(0);
  topbar.hidden = true;
  authMode = "signin";
  authNotice = notice;
  navigate("#/signin");
}

// --- the event stream --------------------------------------------------------------

/**
 * @param {ReadyEvent} ready
 * @param {boolean} reconnected
 */
function onReady(ready, reconnected) {
  if (!live) return;
  setMe(live.ctx.store, ready.user);
  if (reconnected && ready.resync) {
    // The server's stream was reset (e.g. a restored database): start from scratch.
    live.ctx.store.threads.clear();
    void reloadConversations();
    live.callLog.reset();
    route();
  }
}

/** @param {ServerEvent} event */
function onEvent(event) {
  if (!live) return;
  const { store, calls } = live.ctx;
  switch (event.type) {
    case "message.new": {
      // A message that arrives in the conversation on screen, while the page can be
      // seen, is read as it arrives (the view marks it read); any other one is unread.
      const peer = store.peerOf(event.message);
      const seen = store.viewing === peer && document.visibilityState === "visible";
      if (!store.addMessage(event.message, event.is_request, seen)) void reloadConversations();
      if (event.message.sender === peer) acknowledge(peer, event.message.id);
      live.callLog.addMessage(event.message); // a call record is one more call on the Calls page
      break;
    }
    case "conversation.updated":
      // Only the list knows whether it was accepted or declined (declined ones leave it).
      void reloadConversations();
      break;
    case "conversation.read":
      // I read this conversation on some device (this one too): recount, or ask the
      // server when this client doesn't hold the messages to count.
      if (!store.applyRead(event.user, event.up_to)) void reloadConversations();
      break;
    case "message.read":
      store.applyPeerRead(event.user, event.up_to);
      break;
    case "message.delivered":
      store.applyPeerDelivered(event.user, event.up_to);
      break;
    case "user.updated":
      // A new display name, mine (from any device) or of someone I talk with: every
      // screen shows it from the store, and a reload starts from it too.
      store.updateUser(event.user);
      live.callLog.updateUser(event.user);
      calls.updateUser(event.user);
      if (event.user.username === store.me.username) remember(store.me);
      break;
    case "typing":
      store.setTyping(event.user, Date.now());
      break;
    case "call.incoming":
    case "call.answer":
    case "call.candidate":
    case "call.ended":
    case "call.transport":
    case "call.reoffer":
    case "call.reanswer":
    case "call.media":
      calls.handle(event);
      break;
    case "error":
      if (event.call_id) calls.handle(event);
      else console.warn(`server: ${event.error}: ${event.detail}`);
      break;
    default:
      break;
  }
}

/**
 * The count on the Inbox link, and in the tab's title.
 * @param {number} total Unread messages in all conversations.
 */
function showUnread(total) {
  const text = total > 99 ? "99+" : String(total);
  inboxCount.hidden = total === 0;
  if (inboxCount.textContent !== text) inboxCount.textContent = text;
  // The number is hidden from screen readers, which hear "Inbox, 3 unread" instead.
  if (total > 0) inboxLink.setAttribute("aria-label", `Inbox, ${total} unread`);
  else inboxLink.removeAttribute("aria-label");
  setUnreadCount(total);
}

/**
 * The count on the Calls link (missed calls since Calls was last opened in this
 * browser), also counted in the tab's title.
 * @param {number} missed
 */
function showMissed(missed) {
  const text = missed > 99 ? "99+" : String(missed);
  callsCount.hidden = missed === 0;
  if (callsCount.textContent !== text) callsCount.textContent = text;
  if (missed > 0) callsLink.setAttribute("aria-label", `Calls, ${missed} missed`);
  else callsLink.removeAttribute("aria-label");
  setMissedCalls(missed);
}

/** @param {StatusInfo} info */
function showConnection(info) {
  connection.dataset.state = info.status;
  switch (info.status) {
    case "open":
    case "closed":
      connection.textContent = "";
      connection.hidden = true;
      return;
    case "connecting":
      // Brief on a good network, so not worth a banner; after a drop the offline
      // banner stays until the connection is back.
      return;
    case "offline": {
      const retry = h("button", {
        class: "link", text: "Retry now", attrs: { type: "button" },
        on: { click: () => live?.events.reconnectNow() },
      });
      replace(connection, `${info.reason ?? "Offline: can't reach the server."} Reconnecting… `, retry);
      break;
    }
  }
  connection.hidden = false;
}

let reloading = false;
let reloadAgain = false;

/** @type {Map<string, number>} Delivery receipts waiting to go, by sender. */
const deliveries = new Map();
/** @type {number | undefined} */
let deliveryTimer;

/**
 * Tell the server that `peer`'s messages up to `id` reached this device, so that
 * they see "Delivered" (where we both share read receipts; the server decides).
 * Receipts wait a moment and go one per sender, so that a burst of messages, or a
 * reconnect that replays many, costs a frame per person rather than one each.
 * @param {string} peer
 * @param {number} id
 */
function acknowledge(peer, id) {
  if (!live || !live.ctx.store.noteDelivered(peer, id)) return;
  deliveries.set(peer, id);
  deliveryTimer ??= window.setTimeout(() => {
    deliveryTimer = undefined;
    for (const [user, upTo] of deliveries) live?.events.send({ type: "message.delivered", user, up_to: upTo });
    deliveries.clear();
  }, 250);
}

/** Reload the conversation list; calls made while one is in flight coalesce into one more. */
async function reloadConversations() {
  if (reloading) {
    reloadAgain = true;
    return;
  }
  reloading = true;
  try {
    do {
      reloadAgain = false;
      const current = live;
      if (!current) return;
      try {
        const list = await api.conversations();
        if (live !== current) return;
        const store = current.ctx.store;
        // A message that arrived live while the list was loading may be newer than it,
        // and a read may have happened meanwhile: the store merges what it knows.
        store.setConversations(store.reconcile(list));
        // What the list brought that I haven't read may not have reached any device
        // of mine before: this one has it now.
        for (const c of list) {
          const last = c.last_message;
          if (c.unread && last && last.sender === c.user.username) acknowledge(last.sender, last.id);
        }
      } catch (err) {
        if (err instanceof ApiError && err.isNetwork) toast("Couldn't load your conversations: can't reach the server.", "error");
        else if (err instanceof ApiError && err.status !== 401) toast(`Couldn't load your conversations: ${err.detail}`, "error");
      }
    } while (reloadAgain);
  } finally {
    reloading = false;
  }
}

// --- shared actions -------------------------------------------------------------------

/**
 * @param {Store} store
 * @param {Outbox} outbox
 * @param {CallManager} calls
 * @param {EventSocket} events
 * @returns {AppContext}
 */
function context(store, outbox, calls, events) {
  /** @type {AppContext} */
  const ctx = {
    api,
    store,
    outbox,
    calls,
    navigate,
    signOut,
    async acceptRequest(username) {
      try {
        const accepted = await api.accept(username);
        store.justAccepted.add(username);
        store.putConversation(accepted);
        toast("Request accepted. You can reply now.");
        // Accepting is choosing to talk: from the inbox, open the conversation (but
        // not if the person has moved on to another screen meanwhile).
        const onInbox = !location.hash.startsWith("#/c/") && !PAGES.has(location.hash);
        if (onInbox) navigate(`#/c/${encodeURIComponent(username)}`);
      } catch (err) {
        toast(`Couldn't accept the request: ${describe(err)}`, "error");
      }
    },
    async declineRequest(username) {
      try {
        await api.decline(username);
        store.removeConversation(username);
        toast("Request declined.");
        if (location.hash.startsWith("#/c/")) navigate("#/inbox");
      } catch (err) {
        toast(`Couldn't decline the request: ${describe(err)}`, "error");
      }
    },
    async blockUser(username) {
      try {
        await api.block(username);
      } catch (err) {
        toast(`Couldn't block @${username}: ${describe(err)}`, "error");
        return;
      }
      store.following?.delete(username);
      if (store.conversations.get(username)?.is_request) {
        // Blocking the sender of a request also clears the request away.
        await api.decline(username).catch(() => undefined);
        store.removeConversation(username);
      }
      store.changed();
      toast(`Blocked @${username}. You can unblock them in Privacy settings.`);
      if (location.hash.startsWith("#/c/")) navigate("#/inbox");
    },
    async loadThread(username) {
      const limit = 50;
      const page = await api.history(username, { limit });
      store.addPage(username, page, { older: false, limit });
    },
    async loadOlder(username) {
      const limit = 50;
      const oldest = store.thread(username).messages[0];
      if (!oldest) return;
      const page = await api.history(username, { before: oldest.id, limit });
      store.addPage(username, page, { older: true, limit });
    },
    async markRead(username, upTo) {
      await api.markRead(username, upTo);
      if (!store.applyRead(username, upTo)) void reloadConversations();
    },
    sendTyping(username) {
      // Ephemeral: if the socket is down, the notice is simply not sent.
      events.sendIfOpen({ type: "typing", to: username });
    },
    async loadFollowing() {
      const users = await api.following();
      store.following = new Set(users.map((u) => u.username));
      store.changed();
    },
    async placeCall(peer, media) {
      try {
        await calls.start(peer, media);
        return null;
      } catch (err) {
        return {
          text: refusal(err, peer.display_name || peer.username, media),
          retryAfterS: err instanceof ApiError && err.status === 429 ? (err.retryAfterS ?? 60) : null,
        };
      }
    },
  };
  return ctx;
}

/**
 * The neutral words for a refused call: the server gives every refusal the same
 * answer so nobody can probe someone's settings, and so does the client.
 * @param {unknown} err
 * @param {string} name
 * @param {Media} media
 */
function refusal(err, name, media) {
  if (!(err instanceof ApiError)) return `The ${media} call couldn't be started.`;
  if (err.isNetwork) return "Couldn't reach the server. Check your connection and try again.";
  if (err.status === 403) return `${name} can't be called right now.`;
  if (err.status === 429) {
    const wait = err.retryAfterS ? ` Try again in ${Math.ceil(err.retryAfterS)} seconds.` : " Try again in a minute.";
    return `${name} can't be called right now.${wait}`;
  }
  if (err.code === "already_in_call") return err.detail;
  return `The call couldn't be started: ${err.detail}`;
}

/** @param {unknown} err */
function describe(err) {
  return err instanceof ApiError ? err.detail : "unknown error";
}

// --- routing ----------------------------------------------------------------------

/** @param {string} hash */
function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** Answer the call a notification's Accept asked for, once it rings in this tab. */
function answerIfAsked() {
  const session = live?.ctx.calls.current;
  if (!answerCall || !session || session.callId !== answerCall) return;
  if (session.state !== "incoming") {
    if (!session.active) answerCall = null; // over before it could be answered
    return;
  }
  answerCall = null;
  void session.accept();
}

/** @param {string} callId */
function answerWhenRinging(callId) {
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(callId)) return;
  answerCall = callId;
  answerIfAsked();
}

function route() {
  const answer = location.hash.match(/^#\/answer\/(.+)$/);
  if (answer) {
    // Not a screen: remember the call, and show the inbox while it rings in.
    answerWhenRinging(answer[1] ?? "");
    history.replaceState(null, "", "#/inbox");
  }
  cleanupView?.();
  cleanupView = null;
  const hash = location.hash;
  for (const link of topbar.querySelectorAll("nav a")) {
    const here = link.getAttribute("href") === hash || (hash.startsWith("#/c/") && link.getAttribute("href") === "#/inbox");
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.classList.toggle("fill", live !== null && hash.startsWith("#/c/"));
  if (!live) {
    renderAuth(main, {
      api,
      mode: hash === "#/signup" ? "signup" : authMode,
      notice: authNotice,
      onSignedIn: signedIn,
      onSwitch: (mode) => {
        authMode = mode;
        authNotice = null;
        navigate(`#/${mode}`);
      },
    });
    return;
  }
  const ctx = live.ctx;
  if (hash.startsWith("#/c/")) {
    let username = "";
    try {
      username = decodeURIComponent(hash.slice(4));
    } catch {
      username = "";
    }
    if (/^[a-z0-9_]{3,32}$/.test(username)) {
      cleanupView = renderConversation(ctx, main, username);
      return;
    }
    replace(main, h("p", { class: "page empty", text: "That conversation doesn't exist." }));
    return;
  }
  if (hash === "#/calls") {
    cleanupView = renderCalls(ctx, main, live.callLog);
  } else if (hash === "#/settings") {
    cleanupView = renderSettings(ctx, main);
  } else if (hash === "#/account") {
    cleanupView = renderAccount(ctx, main);
  } else {
    cleanupView = renderInbox(ctx, main);
  }
  main.querySelector("h1")?.focus();
}

window.addEventListener("hashchange", route);
window.addEventListener("pagehide", () => live?.ctx.calls.leave());
callLayer.addEventListener("keydown", (event) => {
  // Escape closes the screen of a call that has ended (never an active one).
  if (event.key === "Escape") live?.ctx.calls.dismiss();
});
signOutButton.addEventListener("click", () => void signOut());
onWorkerAnswer(answerWhenRinging);

const saved = loadSession();
if (saved) start(saved.token, saved.user);
route();
