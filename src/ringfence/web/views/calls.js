// The Calls page: my calls, newest first, each with the other person, which way it
// went, what became of it, audio or video, and when; older ones on demand. Opening
// the page (while it can be seen) clears the missed-call count on its link, and a call
// that ends while it is open shows up at once (calllog.js keeps the list).
//
// "Call back" places the call exactly as a conversation's call buttons do
// (ctx.placeCall), so the server's rules apply the same way, and a refusal is told
// in the same neutral words, saying nothing about the other person's settings.

import { ApiError } from "../api.js";
import { avatar, h, renderKeyed, replace, toast } from "../dom.js";
import { DELETED_ACCOUNT_NAME, callOutcome, dayAndTime, isDeletedAccount } from "../format.js";
import { icon } from "../icons.js";
import { setPageTitle } from "../title.js";

/** @import { AppContext, CallRefusal } from "../context.js" */
/** @import { CallLog } from "../calllog.js" */
/** @import { CallHistoryItem, User } from "../types.js" */

/**
 * @param {AppContext} ctx
 * @param {HTMLElement} root
 * @param {CallLog} log
 * @returns {() => void} cleanup
 */
export function renderCalls(ctx, root, log) {
  setPageTitle("Calls · Ringfence");
  const store = ctx.store;
  // Why a call back wasn't started: the same words, and the same box, as in a conversation.
  const callAlert = h("p", { class: "call-alert", attrs: { role: "alert", id: "call-alert" } });
  const callAlertBox = h("div", { class: "call-alert-box" },
    callAlert,
    h("button", {
      class: "small", text: "Dismiss", attrs: { type: "button", "aria-label": "Dismiss call notice" },
      on: { click: dismissAlert },
    }),
  );
  callAlertBox.hidden = true;
  const heading = h("h1", { text: "Calls", attrs: { tabindex: "-1", id: "calls-title" } });
  const list = h("ul", { class: "list call-list", attrs: { "aria-labelledby": "calls-title" } });
  const status = h("div", { class: "empty calls-status", attrs: { role: "status" } });
  const olderButton = h("button", {
    class: "small older", text: "Load older calls", attrs: { type: "button" }, on: { click: loadOlder },
  });
  replace(root, h("div", { class: "page calls" },
    heading,
    callAlertBox,
    h("div", { class: "panel" }, list, status, olderButton),
  ));

  let alive = true;
  /** @type {boolean} A call back is being placed: the buttons wait. */
  let placing = false;
  /** @type {HTMLElement | null} The button whose call was refused (focus returns there). */
  let alertFrom = null;
  /** @type {{username: string, since: number} | null} Whom the refusal was about, and their latest call then. */
  let alertAbout = null;
  /** @type {number | undefined} */
  let alertTimer;
  /** @type {Map<number, {sig: string, el: HTMLElement}>} */
  const rendered = new Map();

  function render() {
    const now = new Date();
    const items = log.list();
    renderKeyed(
      list,
      rendered,
      items.map((item) => {
        const peer = personOf(item);
        const when = dayAndTime(item.created_at, now);
        // Rebuilt only when what it shows changes, so a focused button keeps its focus.
        const sig = `${peer.display_name}|${peer.verified}|${when}`;
        return { key: item.message_id, sig, build: () => row(item, peer, when) };
      }),
    );
    for (const button of list.querySelectorAll("button.call-back")) {
      if (button instanceof HTMLButtonElement) button.disabled = placing;
    }
    list.hidden = items.length === 0;
    showStatus(items.length);
    olderButton.hidden = !log.loaded || !log.hasOlder || items.length === 0;
    if (alertAbout && latestWith(alertAbout.username) > alertAbout.since) {
      // A call with them since (they called, say): the refusal may no longer hold.
      setCallAlert(null);
    }
    markSeen();
  }

  /** @type {string | null} What the status line says now (it is a live region: rewritten only when that changes). */
  let statusKey = null;

  /** Loading, an error, or the empty state; nothing once there are calls. @param {number} count */
  function showStatus(count) {
    const key = log.error && !log.loaded ? `error:${log.error}` : !log.loaded ? "loading" : count === 0 ? "empty" : "";
    if (key === statusKey) return;
    statusKey = key;
    status.hidden = key === "";
    if (key === "") {
      replace(status);
    } else if (key === "loading") {
      replace(status, "Loading calls…");
    } else if (key === "empty") {
      replace(status,
        h("p", { text: "No calls yet." }),
        h("p", {
          class: "help",
          text: "The calls you make and receive will be listed here, newest first, with the ones you missed. "
            + "To call someone, open your conversation with them and use the audio or video call button.",
        }),
      );
    } else {
      replace(status,
        `Couldn't load your calls: ${log.error} `,
        h("button", { class: "link", text: "Try again", attrs: { type: "button" }, on: { click: () => void log.load() } }),
      );
    }
  }

  /**
   * The person of a call, with the name this client holds now.
   * @param {CallHistoryItem} item
   * @returns {User}
   */
  function personOf(item) {
    return store.conversations.get(item.peer.username)?.user ?? item.peer;
  }

  /**
   * @param {CallHistoryItem} item
   * @param {User} peer
   * @param {string} when
   */
  function row(item, peer, when) {
    const outgoing = item.direction === "outgoing";
    // A deleted account can't be called: its calls stay listed, without "Call back".
    const deleted = isDeletedAccount(peer);
    const name = deleted ? DELETED_ACCOUNT_NAME : peer.display_name || peer.username;
    const missed = log.isMissed(item);
    const what = `${outgoing ? "Outgoing" : "Incoming"} ${item.call.media} call`;
    const callBack = deleted ? null : h("button", {
      class: "small call-back",
      attrs: { type: "button", "aria-label": `Call back ${name} (${item.call.media} call)`, title: item.call.media === "video" ? "Video call" : "Audio call" },
      on: { click: (/** @type {MouseEvent} */ event) => void callBackTo(peer, item, /** @type {HTMLElement} */ (event.currentTarget)) },
    }, icon(item.call.media === "video" ? "video" : "phone"), h("span", { text: "Call back" }));
    return h("li", { class: `item call-entry${missed ? " missed" : ""}`, attrs: { "data-message-id": item.message_id } },
      h("a", { class: "item-link", attrs: { href: `#/c/${encodeURIComponent(peer.username)}` } },
        avatar(peer),
        h("span", { class: "item-text" },
          h("span", { class: "item-title" },
            h("span", { class: "name", text: name }),
            peer.verified ? h("span", { class: "badge-verified", text: "✓", attrs: { title: "Verified", "aria-label": "verified" } }) : null,
            deleted ? null : h("span", { class: "handle", text: `@${peer.username}` }),
          ),
          h("span", { class: "item-preview call-detail" },
            h("span", { class: "call-direction", text: outgoing ? "↗" : "↙", attrs: { "aria-hidden": "true" } }),
            h("span", { class: "call-what", text: what }),
            " · ",
            h("span", { class: "call-outcome", text: callOutcome(item.call, outgoing) }),
          ),
        ),
        h("span", { class: "item-side" },
          h("time", { class: "item-time", text: when, attrs: { datetime: item.created_at } }),
        ),
      ),
      callBack,
    );
  }

  /**
   * @param {Pick<User, "username" | "display_name">} peer
   * @param {CallHistoryItem} item
   * @param {HTMLElement} button
   */
  async function callBackTo(peer, item, button) {
    setCallAlert(null);
    placing = true;
    render();
    try {
      const refusal = await ctx.placeCall(peer, item.call.media);
      if (refusal && alive) {
        alertFrom = button;
        setCallAlert(refusal, peer.username);
      }
    } finally {
      placing = false;
      if (alive) render();
    }
  }

  /**
   * Show (or clear) why a call back wasn't started. It goes when dismissed, when
   * another call is tried, when a newer call with that person appears, and for a
   * rate limit, once the wait is over.
   * @param {CallRefusal | null} refusal
   * @param {string} [username]
   */
  function setCallAlert(refusal, username) {
    clearTimeout(alertTimer);
    callAlert.textContent = refusal?.text ?? "";
    callAlertBox.hidden = !refusal;
    alertAbout = refusal && username ? { username, since: latestWith(username) } : null;
    if (!refusal) alertFrom = null;
    if (refusal?.retryAfterS) {
      alertTimer = window.setTimeout(() => setCallAlert(null), refusal.retryAfterS * 1000);
    }
  }

  /** Dismissed: the keyboard goes back to the button that was refused. */
  function dismissAlert() {
    const back = alertFrom?.isConnected ? alertFrom : heading;
    setCallAlert(null);
    back.focus();
  }

  /** @param {string} username The id of the latest call with them in the list (0: none). */
  function latestWith(username) {
    let latest = 0;
    for (const item of log.entries.values()) {
      if (item.peer.username === username) latest = Math.max(latest, item.message_id);
    }
    return latest;
  }

  /** Everything on the page has been seen, if the page can be seen. */
  function markSeen() {
    if (alive && document.visibilityState === "visible") log.markSeen();
  }

  async function loadOlder() {
    const hadFocus = document.activeElement === olderButton;
    olderButton.disabled = true;
    const shown = list.children.length;
    try {
      await log.loadOlder();
      render();
      // Take the keyboard on to the first call it added (the button may be gone:
      // nothing older), as a "load more" list should.
      if (alive && hadFocus) list.children[shown]?.querySelector("a")?.focus();
    } catch (err) {
      toast(`Couldn't load older calls: ${err instanceof ApiError ? err.detail : "unknown error"}`, "error");
    } finally {
      olderButton.disabled = false;
    }
  }

  render();
  const unsubscribe = [log.subscribe(render), store.subscribe(render)];
  document.addEventListener("visibilitychange", markSeen);
  void log.load(); // what the server holds now, in case anything was missed
  return () => {
    alive = false;
    for (const stop of unsubscribe) stop();
    clearTimeout(alertTimer);
    document.removeEventListener("visibilitychange", markSeen);
  };
}
