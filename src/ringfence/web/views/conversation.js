// One conversation: the thread (text and call records, with a separator where the
// day changes), older history on demand, sends that are pending or failed, the
// composer (which refuses a message over the server's limit instead of cutting it),
// and the audio and video call buttons.
//
// While it is on screen and the page can be seen, the other person's messages are
// marked read as they arrive. Under my latest message it says "Sent", "Delivered"
// once one of their devices has it, or "Read" once they have read it (when we both
// share read receipts); below the thread, that they are typing (when we both share
// typing indicators).
//
// What it says about calls is true: a request says whether accepting would let them
// call (by my own settings), a request I just accepted says whether they now can and
// offers the one tap that would let them, and a refused call's notice can be
// dismissed and goes when it may no longer hold, never saying why it was refused.

import { ApiError } from "../api.js";
import { callAccess, takesCallsFrom } from "../callaccess.js";
import { avatar, h, renderKeyed, replace, toast } from "../dom.js";
import { DELETED_ACCOUNT_NAME, callLabel, characters, clock, dayKey, dayLabel, isDeletedAccount, limitText } from "../format.js";
import { icon } from "../icons.js";
import { setPageTitle } from "../title.js";

/** @import { AppContext, CallRefusal } from "../context.js" */
/** @import { Message, Media, User } from "../types.js" */
/** @import { PendingSend } from "../store.js" */

/** The server's limit on a message (max_length of the send body), in characters. */
const MAX_CHARS = 10_000;
/** From this many characters the composer shows how close the text is to the limit. */
const COUNT_FROM = 9_000;
/** A message longer than this, in characters or lines, shows collapsed. */
const LONG_CHARS = 1_000;
const LONG_LINES = 12;
/** Reads are posted this long after the thread changes, so a burst makes one post. */
const READ_DELAY_MS = 300;
/** At most one typing notice this often (the server drops more than 30 a minute). */
const TYPING_EVERY_MS = 3_000;
/** "… is typing" shows this long after their last notice (they send one every 3 s). */
const TYPING_SHOWN_MS = 5_000;

/**
 * @param {AppContext} ctx
 * @param {HTMLElement} root
 * @param {string} username
 * @returns {() => void} cleanup
 */
export function renderConversation(ctx, root, username) {
  const store = ctx.store;
  /** @type {Pick<User, "username" | "display_name" | "verified" | "deleted">} */
  let peer = store.conversations.get(username)?.user ?? { username, display_name: username, verified: false, deleted: false };
  // A deleted account is "Deleted account", never its reserved @deleted_account_… handle.
  const peerName = () => (isDeletedAccount(peer) ? DELETED_ACCOUNT_NAME : peer.display_name || peer.username);
  setPageTitle(`${peerName()} · Ringfence`);

  const title = h("h1", { class: "conv-name", attrs: { tabindex: "-1" } });
  const headerAvatar = h("span", { class: "conv-avatar" });
  // Why a call wasn't started: the same words whatever the reason.
  const callAlert = h("p", { class: "call-alert", attrs: { role: "alert", id: "call-alert" } });
  const callAlertBox = h("div", { class: "call-alert-box" },
    callAlert,
    h("button", {
      class: "small", text: "Dismiss", attrs: { type: "button", "aria-label": "Dismiss call notice" },
      on: { click: () => { setCallAlert(null); audioButton.focus(); } },
    }),
  );
  callAlertBox.hidden = true;
  // After I accept their request: whether they can call me now, and what would let them.
  const accessText = h("p", { class: "call-access-text", attrs: { id: "call-access-text", role: "status", "aria-live": "polite" } });
  const accessNote = h("p", { class: "call-access-note help", attrs: { id: "call-access-note" } });
  const accessActions = h("div", { class: "actions" });
  const accessBox = h("section", { class: "call-access", attrs: { "aria-describedby": "call-access-note" } },
    accessText, accessNote, accessActions);
  accessBox.hidden = true;
  const audioButton = h("button", {
    class: "icon-button", attrs: { type: "button", "aria-label": "Audio call", title: "Audio call" },
    on: { click: () => call("audio") },
  }, icon("phone"));
  const videoButton = h("button", {
    class: "icon-button", attrs: { type: "button", "aria-label": "Video call", title: "Video call" },
    on: { click: () => call("video") },
  }, icon("video"));
  const followButton = h("button", { class: "small", attrs: { type: "button", "aria-pressed": "false" }, on: { click: toggleFollow } });
  const blockButton = h("button", {
    class: "small danger-text", text: "Block", attrs: { type: "button" },
    on: { click: () => void ctx.blockUser(username) },
  });
  // Reporting: a disclosure next to Block. Opening it shows what a report is and an
  // optional reason; nothing is sent until "Send report" (the confirmation).
  const isMe = username === store.me.username;
  const reportReason = h("textarea", {
    attrs: { id: "report-reason", name: "reason", rows: 3, maxlength: 1000, autocomplete: "off" },
  });
  const reportSend = h("button", { class: "danger small", text: "Send report", attrs: { type: "submit" } });
  const reportForm = h("form", {
    class: "report-form", attrs: { id: "report-form", "aria-label": `Report @${username}` },
    on: { submit: onReport },
  },
    h("p", { class: "report-note", text: `Your report goes to this server's admins. @${username} is not told.` }),
    h("label", { text: "What happened? (optional)", attrs: { for: "report-reason" } }),
    reportReason,
    h("div", { class: "actions" },
      reportSend,
      h("button", { class: "small", text: "Cancel", attrs: { type: "button" }, on: { click: () => closeReport(true) } }),
    ),
  );
  reportForm.hidden = true;
  const reportResult = h("p", { class: "report-result", attrs: { role: "status" } });
  const reportButton = h("button", {
    class: "small danger-text", text: "Report",
    attrs: { type: "button", "aria-expanded": "false", "aria-controls": "report-form" },
    on: { click: () => (reportForm.hidden ? openReport() : closeReport(true)) },
  });
  reportButton.hidden = isMe;
  const requestBanner = h("div", { class: "request-banner", attrs: { role: "region", "aria-label": "Message request" } });
  const olderButton = h("button", { class: "small older", text: "Load older messages", attrs: { type: "button" }, on: { click: loadOlder } });
  const list = h("ol", { class: "messages", attrs: { role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Messages" } });
  const scroller = h("div", { class: "thread", attrs: { tabindex: "0", "aria-label": "Conversation history" } }, olderButton, list);
  const status = h("p", { class: "thread-status", attrs: { role: "status" } });
  const typingNote = h("p", { class: "typing-note", attrs: { role: "status", "aria-live": "polite" } });
  // Moved under my latest message as the thread grows: one status, like Signal's.
  const receipt = h("p", { class: "meta receipt", attrs: { role: "status", "aria-live": "polite" } });
  // No maxlength: it would cut a long paste silently. The counter and the refusal
  // below say what is wrong instead, and the text stays for the writer to shorten.
  const input = h("textarea", {
    attrs: {
      id: "composer", name: "text", rows: 1, placeholder: "Write a message", autocomplete: "off",
      "aria-describedby": "composer-count composer-limit",
    },
    on: { keydown: onKey, input: onInput },
  });
  const counter = h("p", { class: "composer-count", attrs: { id: "composer-count" } });
  counter.hidden = true;
  // Polite and always in the page, so its words are read out when they appear. They
  // change only when the text crosses the limit, not with every keystroke.
  const limitNote = h("p", { class: "composer-limit", attrs: { id: "composer-limit", role: "status", "aria-live": "polite" } });
  const sendButton = h("button", { class: "primary", text: "Send", attrs: { type: "submit" } });
  const composerLabel = h("label", { class: "visually-hidden", text: `Message ${peerName()}`, attrs: { for: "composer" } });
  // In place of the composer once their account is deleted: nothing can reach them.
  const deletedNote = h("p", {
    class: "deleted-note", text: "This account was deleted. You can still read your conversation.",
    attrs: { id: "deleted-note", role: "status" },
  });
  deletedNote.hidden = true;
  const handle = h("p", { class: "handle", text: `@${username}` });
  const callGroup = h("div", { class: "conv-calls", attrs: { role: "group", "aria-label": "Call" } }, audioButton, videoButton);
  // On a phone the header is one row: the call buttons and "⋯", a menu holding every
  // action of the header and the row below it (which then shows only notices and the
  // report form). Each item does exactly what its button does: it clicks it.
  const moreButton = h("button", {
    class: "icon-button more",
    text: "⋯",
    attrs: {
      type: "button", id: "conv-more", "aria-label": "More actions", title: "More actions",
      "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": "conv-menu",
    },
    on: { click: () => (menu.hidden ? openMenu(0) : closeMenu(true)), keydown: onMoreKey },
  });
  const menu = h("ul", {
    class: "conv-menu", attrs: { id: "conv-menu", role: "menu", "aria-labelledby": "conv-more" },
    on: { keydown: onMenuKey, focusout: onMenuFocusOut },
  });
  menu.hidden = true;
  const more = h("div", { class: "conv-more" }, moreButton, menu);
  const tools = h("div", { class: "conv-tools" }, followButton, blockButton, reportButton, callAlertBox, reportResult, isMe ? null : reportForm);
  const composer = h("form", { class: "composer", attrs: { "aria-label": "Send a message" }, on: { submit: onSend } },
    composerLabel,
    counter,
    limitNote,
    input,
    sendButton,
  );

  replace(root, h("div", { class: "page conversation" },
    h("header", { class: "conv-header" },
      h("a", { class: "icon-button back", attrs: { href: "#/inbox", "aria-label": "Back to inbox", title: "Inbox" } }, icon("back")),
      headerAvatar,
      h("div", { class: "conv-title" }, title, handle),
      callGroup,
      more,
    ),
    tools,
    requestBanner,
    accessBox,
    scroller,
    typingNote,
    status,
    deletedNote,
    composer,
  ));
  store.viewing = username;
  let alive = true;

  /** @type {Map<string, {sig: string, el: HTMLElement}>} */
  const rendered = new Map();
  let stickToBottom = true;
  scroller.addEventListener("scroll", () => {
    stickToBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  });

  function render() {
    const conversation = store.conversations.get(username);
    if (conversation) peer = conversation.user;
    if (composerLabel.textContent !== `Message ${peerName()}`) {
      // A new display name (user.updated) shows everywhere at once.
      composerLabel.textContent = `Message ${peerName()}`;
      setPageTitle(`${peerName()} · Ringfence`);
    }
    title.replaceChildren(peerName());
    if (peer.verified) title.append(h("span", { class: "badge-verified", text: "✓", attrs: { title: "Verified", "aria-label": "verified" } }));
    replace(headerAvatar, avatar(peer));
    // Their account is deleted: what they sent stays readable, but nothing can reach
    // them, so nothing here offers to write, call, follow, block or report.
    const deleted = isDeletedAccount(peer);
    handle.hidden = deleted;
    callGroup.hidden = tools.hidden = composer.hidden = more.hidden = deleted;
    if (deleted && !menu.hidden) closeMenu(false);
    deletedNote.hidden = !deleted;
    const following = store.following?.has(username) ?? false;
    followButton.textContent = following ? "Following" : "Follow";
    followButton.setAttribute("aria-pressed", String(following));
    followButton.hidden = store.following === null;
    followButton.title = following
      ? "You follow this person: their messages reach your inbox, and if your settings allow, they can call you."
      : "Follow to let their messages reach your inbox, and to let them call you if your settings allow it.";

    requestBanner.hidden = !conversation?.is_request || deleted;
    if (conversation?.is_request && !deleted) {
      replace(requestBanner,
        h("p", {},
          h("strong", { text: peerName() }),
          ` (@${username}) wants to message you. ${requestCallText()}`,
        ),
        h("div", { class: "actions" },
          h("button", { class: "primary small", text: "Accept", on: { click: () => void ctx.acceptRequest(username) } }),
          h("button", { class: "small", text: "Decline", on: { click: () => void ctx.declineRequest(username) } }),
          h("button", { class: "danger small", text: "Block", attrs: { "aria-label": `Block ${peerName()}` }, on: { click: () => void ctx.blockUser(username) } }),
        ),
      );
    }

    showAccess(conversation?.is_request === false && !deleted);
    if (!callAlertBox.hidden) {
      // Something changed on their side (they wrote): the refusal may no longer hold.
      if (alertSince === null) alertSince = latestFromPeer();
      else if ((latestFromPeer() ?? 0) > alertSince) setCallAlert(null);
    }

    const thread = store.thread(username);
    olderButton.hidden = !thread.loaded || !thread.hasOlder || thread.messages.length === 0;
    const pending = store.pendingFor(username);
    /** @type {{key: string, sig: string, build: () => HTMLElement}[]} */
    const items = [];
    const now = new Date();
    let day = "";
    /** A separator before the first message of each local day. @param {Date} date */
    const dayBreak = (date) => {
      if (Number.isNaN(date.getTime()) || dayKey(date) === day) return;
      const thisDay = (day = dayKey(date));
      const label = dayLabel(date, now);
      // Clocks of different servers may disagree around midnight: keys stay unique.
      let key = `d${thisDay}`;
      while (items.some((item) => item.key === key)) key += "+";
      items.push({ key, sig: label, build: () => daySeparator(thisDay, label) });
    };
    for (const m of thread.messages) {
      dayBreak(new Date(m.created_at));
      // Their messages name them (for screen readers): rebuilt when their name changes.
      const sig = m.sender === store.me.username ? "" : peerName();
      items.push({ key: `m${m.id}`, sig, build: () => messageItem(m) });
    }
    for (const p of pending) {
      dayBreak(new Date(p.createdAt));
      items.push({ key: `p${p.txnId}`, sig: `${p.status}:${p.error ?? ""}`, build: () => pendingItem(p) });
    }
    const before = list.lastElementChild;
    // Move only what moved, so a focused Retry button keeps its focus.
    renderKeyed(list, rendered, items);
    if (!thread.loaded) status.textContent = "Loading messages…";
    else if (!thread.messages.length && !pending.length) status.textContent = conversation ? "No messages yet." : `Say hello to ${peerName()}.`;
    else status.textContent = "";
    const grew = list.lastElementChild !== before;
    const mineLast = list.lastElementChild?.classList.contains("mine") ?? false;
    showReceipt(thread.messages, pending.length > 0);
    showTyping();
    if (grew && (stickToBottom || mineLast)) scroller.scrollTop = scroller.scrollHeight;
    scheduleRead();
  }

  /**
   * What a request says about calls, from my own settings: accepting lets them call
   * only if those settings admit them too.
   */
  function requestCallText() {
    const settings = store.settings;
    const access = callAccess(settings, store.following, peer);
    switch (access.kind) {
      case "allowed":
        return "They can't call you, or see that you've read this, unless you accept.";
      case "unknown":
        return "They can't call you, or see that you've read this, while this is a request.";
      case "off":
        return "They can't see that you've read this unless you accept. Your calls are off, so they can't call you either way.";
      case "follow":
      case "audience":
        return `They can't see that you've read this unless you accept. Accepting alone doesn't let them call you. ${settings ? takesCallsFrom(settings) : ""}`.trim();
    }
  }

  /** @type {string | null} */
  let accessKey = null;
  /** @type {string | null} Why "Let … call you" didn't work. */
  let accessError = null;
  let accessBusy = false;
  let focusAccess = false;

  /**
   * After I accept their request: say whether they can call me now (by my settings
   * and follows), and offer what would let them, in one tap where one tap does it.
   * @param {boolean} accepted
   */
  function showAccess(accepted) {
    const settings = store.settings;
    const access = accepted && !isMe && store.justAccepted.has(username) && settings
      ? callAccess(settings, store.following, peer)
      : null;
    if (!settings || !access || access.kind === "unknown") {
      accessBox.hidden = true;
      accessKey = null;
      return;
    }
    const name = peerName();
    const key = [access.kind, access.silenced, settings.direct_connections, settings.call_audience.join(), name, accessError, accessBusy].join("|");
    accessBox.hidden = false;
    if (key === accessKey) return; // unchanged: don't rebuild a button under the user's finger
    accessKey = key;
    accessBox.setAttribute("aria-label", `Calls from ${name}`);
    const missed = access.silenced ? ` Calls from ${name} show up as missed calls instead of ringing.` : "";
    /** @type {HTMLElement[]} */
    const actions = [];
    let note = "";
    let text = "";
    const settingsLink = h("a", { class: "small-link", text: "Change this in Privacy and safety", attrs: { href: "#/settings" } });
    switch (access.kind) {
      case "allowed":
        text = `${name} can call you now.`;
        actions.push(h("button", { class: "small", text: "OK", attrs: { type: "button", "aria-label": "OK, close this" }, on: { click: dismissAccess } }));
        break;
      case "off":
        text = `Your calls are off, so ${name} can't call you.`;
        actions.push(settingsLink, h("button", { class: "small", text: "OK", attrs: { type: "button", "aria-label": "OK, close this" }, on: { click: dismissAccess } }));
        break;
      case "audience":
        text = `${name} can't call you. ${takesCallsFrom(settings)}${missed}`;
        actions.push(settingsLink, h("button", { class: "small", text: "OK", attrs: { type: "button", "aria-label": "OK, close this" }, on: { click: dismissAccess } }));
        break;
      case "follow": {
        text = `${name} can't call you yet. ${takesCallsFrom(settings)}${missed}`;
        note = `This follows ${name}.`;
        if (settings.direct_connections === "following") {
          note += ` Following also allows a direct connection with ${name} when they allow it with you too; then you can see each other's IP address.`;
        }
        const letCall = h("button", {
          class: "primary small", text: `Let ${name} call you`,
          attrs: { type: "button", "aria-describedby": "call-access-note" },
          on: { click: () => void followToLetCall() },
        });
        letCall.disabled = accessBusy;
        actions.push(letCall, h("button", { class: "small", text: "Not now", attrs: { type: "button" }, on: { click: dismissAccess } }));
        break;
      }
    }
    if (accessError) text = `${text} ${accessError}`;
    if (accessText.textContent !== text) accessText.textContent = text;
    accessNote.textContent = note;
    accessNote.hidden = !note;
    replace(accessActions, actions);
    if (focusAccess) {
      focusAccess = false;
      actions[actions.length - 1]?.focus();
    }
  }

  /** Follow them: with "people you follow" in my audience, that lets them call me. */
  async function followToLetCall() {
    accessBusy = true;
    accessError = null;
    render();
    try {
      await ctx.api.follow(username);
      store.following?.add(username);
      focusAccess = true; // the button goes: keep the keyboard in the box
    } catch (err) {
      const why = err instanceof ApiError ? (limitText(err) ?? err.detail) : "unknown error";
      accessError = `Couldn't follow ${peerName()}: ${why}`;
    } finally {
      accessBusy = false;
      store.changed();
    }
  }

  function dismissAccess() {
    store.justAccepted.delete(username);
    accessBox.hidden = true;
    accessKey = null;
    input.focus();
  }

  /** @type {number | null} Their latest message when the call notice appeared (null: not loaded yet). */
  let alertSince = null;
  /** @type {number | undefined} */
  let alertTimer;

  /** The id of their latest message here, or null while the thread is loading. */
  function latestFromPeer() {
    const thread = store.thread(username);
    if (!thread.loaded) return null;
    let latest = 0;
    for (const m of thread.messages) if (m.sender === username) latest = Math.max(latest, m.id);
    return latest;
  }

  /**
   * Show (or clear) why a call wasn't started. It goes when dismissed, when a new
   * call is tried, when their next message arrives (things may have changed on their
   * side; the client can't know their settings, and mustn't), and for a rate limit,
   * once the wait is over.
   * @param {CallRefusal | null} refusal
   */
  function setCallAlert(refusal) {
    clearTimeout(alertTimer);
    callAlert.textContent = refusal?.text ?? "";
    callAlertBox.hidden = !refusal;
    alertSince = refusal ? latestFromPeer() : null;
    if (refusal?.retryAfterS) {
      alertTimer = window.setTimeout(() => setCallAlert(null), refusal.retryAfterS * 1000);
    }
  }

  /**
   * "Sent", "Delivered" or "Read" under my latest message (none while a send is on
   * its way: that one says "Sending…"), from the positions the conversation list
   * gave and the receipts that came since.
   * @param {Message[]} messages
   * @param {boolean} sending
   */
  function showReceipt(messages, sending) {
    /** @type {Message | undefined} */
    let latest;
    for (let i = messages.length - 1; i >= 0 && !latest; i--) {
      const m = messages[i];
      if (m && m.sender === store.me.username && m.kind === "text") latest = m;
    }
    const item = latest && !sending && !isMe ? rendered.get(`m${latest.id}`)?.el : undefined;
    if (!latest || !item) {
      receipt.remove();
      return;
    }
    const read = latest.id <= (store.peerReadUpTo.get(username) ?? 0);
    const delivered = read || latest.id <= (store.peerDeliveredUpTo.get(username) ?? 0);
    const text = read ? "Read" : delivered ? "Delivered" : "Sent";
    if (receipt.textContent !== text) receipt.textContent = text;
    receipt.classList.toggle("read", read);
    receipt.classList.toggle("delivered", delivered && !read);
    if (receipt.parentElement !== item) item.append(receipt);
  }

  /** @type {number | undefined} */
  let typingTimer;
  /** "NAME is typing…" until a few seconds after their last notice, or their message. */
  function showTyping() {
    clearTimeout(typingTimer);
    const at = store.typing.get(username);
    const left = at === undefined ? 0 : at + TYPING_SHOWN_MS - Date.now();
    const text = left > 0 ? `${peerName()} is typing…` : "";
    if (typingNote.textContent !== text) typingNote.textContent = text;
    if (left > 0) typingTimer = window.setTimeout(showTyping, left + 50);
  }

  /** @type {number | undefined} */
  let readTimer;
  let readPosted = 0;
  function scheduleRead(delayMs = READ_DELAY_MS) {
    if (readTimer !== undefined || isMe) return;
    readTimer = window.setTimeout(() => {
      readTimer = undefined;
      void markRead();
    }, delayMs);
  }

  /** Mark their messages read up to the latest, if it is new and the page can be seen. */
  async function markRead() {
    if (!alive || document.visibilityState !== "visible") return;
    const thread = store.thread(username);
    // Not before the newest page is in (its latest message is what gets read), nor
    // without a conversation (there is nothing to mark: the server would say 404).
    if (!thread.loaded || !store.conversations.has(username)) return;
    let latest = 0;
    for (const m of thread.messages) if (m.sender === username) latest = Math.max(latest, m.id);
    if (latest <= Math.max(readPosted, store.readUpTo.get(username) ?? 0)) return;
    readPosted = latest;
    try {
      await ctx.markRead(username, latest);
    } catch (err) {
      // Unreachable: try again with the next change. Busy for a moment (503): try again
      // when the server says to, or the conversation stays unread. Refused: don't keep
      // asking.
      if (err instanceof ApiError && (err.isNetwork || err.status === 503)) {
        readPosted = 0;
        if (err.status === 503) scheduleRead((err.retryAfterS ?? 1) * 1000);
      }
    }
  }

  function onVisibility() {
    if (document.visibilityState === "visible") scheduleRead();
  }
  document.addEventListener("visibilitychange", onVisibility);

  let typingSentAt = -Infinity;
  let lastTyped = "";
  /** @type {number | undefined} */
  let typingLater;
  function onInput() {
    checkLength();
    // Tell them I'm typing: only for text that changed, at most every few seconds,
    // and only where it can reach them (an accepted conversation; my setting on).
    const text = input.value;
    if (!text.trim() || text === lastTyped) return;
    lastTyped = text;
    const conversation = store.conversations.get(username);
    if (isMe || !conversation || conversation.is_request || store.settings?.typing_indicators === false) return;
    const wait = typingSentAt + TYPING_EVERY_MS - Date.now();
    if (wait <= 0) sendTyping();
    // Typed again too soon: say so when the wait is over, unless it was sent by then
    // (a short burst right after a send would otherwise never be announced).
    else if (typingLater === undefined) {
      typingLater = window.setTimeout(() => {
        typingLater = undefined;
        if (alive && input.value.trim()) sendTyping();
      }, wait);
    }
  }

  function sendTyping() {
    typingSentAt = Date.now();
    ctx.sendTyping(username);
  }

  /**
   * @param {string} key The local day, "2025-03-09".
   * @param {string} label "Today", "Yesterday" or the date.
   */
  function daySeparator(key, label) {
    return h("li", { class: "day-separator" },
      h("h2", { class: "day-label" }, h("time", { text: label, attrs: { datetime: key } })));
  }

  /** @param {Message} m */
  function messageItem(m) {
    const mine = m.sender === store.me.username;
    const when = h("time", { class: "meta", text: clock(m.created_at), attrs: { datetime: m.created_at } });
    if (m.kind === "call" && m.call) {
      // A call that was answered but never connected failed for both people alike.
      const failed = m.call.outcome === "not_connected";
      const missed = !mine && !failed && m.call.outcome !== "completed";
      const tone = failed ? " not-connected" : missed ? " missed" : "";
      return h("li", { class: `call-record${tone}`, attrs: { "data-message-id": m.id } },
        icon(m.call.media === "video" ? "video" : "phone"),
        h("span", { class: "call-label", text: callLabel(m.call, mine) }),
        when,
      );
    }
    return h("li", { class: `msg ${mine ? "mine" : "theirs"}`, attrs: { "data-message-id": m.id } },
      h("span", { class: "visually-hidden", text: mine ? "You: " : `${peerName()}: ` }),
      messageText(m.text, `message-${m.id}-text`),
      when,
    );
  }

  /** @param {PendingSend} p */
  function pendingItem(p) {
    const failed = p.status === "failed";
    return h("li", { class: `msg mine pending${failed ? " failed" : ""}`, attrs: { "aria-busy": failed ? null : "true" } },
      messageText(p.text, `pending-${p.txnId}-text`),
      failed
        ? h("p", { class: "meta send-failed", attrs: { role: "alert" } },
            `Not sent: ${p.error ?? "unknown error"} `,
            h("button", { class: "link", text: "Retry", attrs: { type: "button" }, on: { click: () => ctx.outbox.retry(p.txnId) } }),
            " · ",
            h("button", { class: "link", text: "Discard", attrs: { type: "button" }, on: { click: () => ctx.outbox.discard(p.txnId) } }))
        : h("p", { class: "meta", text: "Sending…" }),
    );
  }

  /**
   * A message's text. A long one shows its first lines, with a button to show it all
   * (and to fold it again); screen readers read all of it either way.
   * @param {string} text
   * @param {string} id Unique in the page, for the button's aria-controls.
   * @returns {HTMLElement[]}
   */
  function messageText(text, id) {
    const bubble = h("p", { class: "bubble", text, attrs: { id } });
    if (characters(text) <= LONG_CHARS && text.split("\n").length <= LONG_LINES) return [bubble];
    bubble.classList.add("collapsed");
    const toggle = h("button", {
      class: "link show-more", text: "Show more",
      attrs: { type: "button", "aria-expanded": "false", "aria-controls": id },
    });
    toggle.addEventListener("click", () => {
      const collapsed = bubble.classList.toggle("collapsed");
      toggle.textContent = collapsed ? "Show more" : "Show less";
      toggle.setAttribute("aria-expanded", String(!collapsed));
      if (collapsed) bubble.scrollIntoView({ block: "nearest" }); // don't leave the reader far below it
    });
    return [bubble, toggle];
  }

  /**
   * Show how close the text is to the limit, and refuse to send it while it is over.
   * @returns {boolean} The text may be sent.
   */
  function checkLength() {
    // Characters are never more than UTF-16 units: a short text needs no counting.
    const count = input.value.length < COUNT_FROM ? 0 : characters(input.value);
    const over = count > MAX_CHARS;
    counter.hidden = count < COUNT_FROM;
    counter.textContent = counter.hidden ? "" : `${count.toLocaleString()} / ${MAX_CHARS.toLocaleString()}`;
    counter.classList.toggle("over", over);
    const note = over
      ? `This message is too long to send. Shorten it to ${MAX_CHARS.toLocaleString()} characters or fewer.`
      : "";
    if (limitNote.textContent !== note) limitNote.textContent = note;
    if (over) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    sendButton.disabled = over;
    return !over;
  }

  /** @param {KeyboardEvent} event */
  function onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  }

  /** @param {SubmitEvent} event */
  function onSend(event) {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || !checkLength()) return; // over the limit: the text stays, as it was
    input.value = "";
    lastTyped = "";
    clearTimeout(typingLater);
    typingLater = undefined;
    checkLength();
    stickToBottom = true;
    ctx.outbox.send(username, text);
    input.focus();
  }

  async function loadOlder() {
    olderButton.disabled = true;
    const height = scroller.scrollHeight;
    try {
      await ctx.loadOlder(username);
      scroller.scrollTop += scroller.scrollHeight - height; // keep the view where it was
    } catch (err) {
      toast(`Couldn't load older messages: ${err instanceof ApiError ? err.detail : "unknown error"}`, "error");
    } finally {
      olderButton.disabled = false;
    }
  }

  /** @param {Media} media */
  async function call(media) {
    setCallAlert(null);
    audioButton.disabled = videoButton.disabled = true;
    try {
      const refusal = await ctx.placeCall(peer, media);
      if (refusal && alive) setCallAlert(refusal);
    } finally {
      audioButton.disabled = videoButton.disabled = false;
    }
  }

  /** The buttons the menu stands for, in order, as they are now. */
  function menuActions() {
    return [audioButton, videoButton, followButton, blockButton, reportButton].filter(
      (button) => !button.hidden && !button.disabled && !(button.closest("[hidden]")),
    );
  }

  /** @param {number} index Which item gets focus (-1: the last). */
  function openMenu(index) {
    const items = menuActions().map((button) => {
      const item = h("button", {
        class: "menu-item",
        text: button.getAttribute("aria-label") ?? button.textContent ?? "",
        attrs: { type: "button", role: "menuitem", tabindex: "-1" },
        on: {
          click: () => {
            closeMenu(true);
            button.click();
          },
        },
      });
      const pressed = button.getAttribute("aria-pressed");
      if (pressed !== null) {
        item.setAttribute("role", "menuitemcheckbox");
        item.setAttribute("aria-checked", pressed);
      }
      return h("li", { attrs: { role: "none" } }, item);
    });
    replace(menu, items);
    menu.hidden = false;
    moreButton.setAttribute("aria-expanded", "true");
    menuItems().at(index)?.focus();
  }

  /** @param {boolean} refocus */
  function closeMenu(refocus) {
    if (menu.hidden) return;
    menu.hidden = true;
    moreButton.setAttribute("aria-expanded", "false");
    if (refocus) moreButton.focus();
  }

  function menuItems() {
    return /** @type {HTMLButtonElement[]} */ ([...menu.querySelectorAll("button")]);
  }

  /** @param {KeyboardEvent} event Arrow keys on "⋯" open the menu at the first or last item. */
  function onMoreKey(event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    event.preventDefault();
    openMenu(event.key === "ArrowDown" ? 0 : -1);
  }

  /** @param {KeyboardEvent} event The keys of a menu (WAI-ARIA menu button pattern). */
  function onMenuKey(event) {
    const items = menuItems();
    const at = items.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
    /** @type {Record<string, number>} */
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 };
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenu(true);
    } else if (event.key === "Tab") {
      closeMenu(false);
    } else if (event.key in moves && items.length) {
      event.preventDefault();
      const next = ((moves[event.key] ?? 0) + items.length) % items.length;
      items[next]?.focus();
    }
  }

  /** @param {FocusEvent} event Focus left the menu (a click elsewhere): it closes. */
  function onMenuFocusOut(event) {
    const to = /** @type {Node | null} */ (event.relatedTarget);
    if (!to || (!menu.contains(to) && to !== moreButton)) closeMenu(false);
  }

  function openReport() {
    reportResult.textContent = "";
    reportResult.removeAttribute("data-tone");
    reportForm.hidden = false;
    reportButton.setAttribute("aria-expanded", "true");
    reportReason.focus();
  }

  /** @param {boolean} refocus */
  function closeReport(refocus) {
    reportForm.hidden = true;
    reportButton.setAttribute("aria-expanded", "false");
    // On a phone the Report button is in the "⋯" menu: focus goes back to that.
    if (refocus) (reportButton.offsetParent !== null ? reportButton : moreButton).focus();
  }

  /** @param {SubmitEvent} event */
  async function onReport(event) {
    event.preventDefault();
    reportSend.disabled = true;
    try {
      await ctx.api.report(username, reportReason.value.trim());
      reportReason.value = "";
      closeReport(true);
      reportResult.dataset.tone = "ok";
      reportResult.textContent = "Reported. Thank you.";
    } catch (err) {
      reportResult.dataset.tone = "error";
      reportResult.textContent = reportFailure(err);
    } finally {
      reportSend.disabled = false;
    }
  }

  async function toggleFollow() {
    const following = store.following?.has(username) ?? false;
    followButton.disabled = true;
    try {
      if (following) await ctx.api.unfollow(username);
      else await ctx.api.follow(username);
      if (following) store.following?.delete(username);
      else store.following?.add(username);
      store.changed();
      toast(following ? `You no longer follow ${peerName()}.` : `You now follow ${peerName()}.`);
    } catch (err) {
      const why = err instanceof ApiError ? (limitText(err) ?? err.detail) : "unknown error";
      toast(`Couldn't ${following ? "unfollow" : "follow"}: ${why}`, "error");
    } finally {
      followButton.disabled = false;
    }
  }

  render();
  const unsubscribe = store.subscribe(render);
  void ctx.loadThread(username).catch((err) => {
    status.textContent = `Couldn't load messages: ${err instanceof ApiError ? err.detail : "unknown error"}`;
  });
  if (store.following === null) void ctx.loadFollowing().catch(() => undefined);
  scroller.scrollTop = scroller.scrollHeight;
  // On a touch screen, focus would pop the on-screen keyboard up over the thread the
  // person came to read; there they tap the composer when they want to write.
  if (!matchMedia("(pointer: coarse)").matches) input.focus();
  return () => {
    alive = false;
    unsubscribe();
    clearTimeout(readTimer);
    clearTimeout(typingTimer);
    clearTimeout(typingLater);
    clearTimeout(alertTimer);
    document.removeEventListener("visibilitychange", onVisibility);
    store.justAccepted.delete(username);
    if (store.viewing === username) store.viewing = null;
  };
}

/**
 * Why a report was not sent, in words for the reporter.
 * @param {unknown} err
 */
function reportFailure(err) {
  if (!(err instanceof ApiError)) return "Couldn't send the report. Try again.";
  if (err.code === "report_rate_limited" || err.status === 429) {
    return "You've sent several reports recently. Please try again later.";
  }
  if (err.status === 404) return "Couldn't send the report: this account no longer exists.";
  return `Couldn't send the report: ${err.detail}`;
}
