// Privacy and safety settings (calls, read receipts and typing indicators, direct
// connections, blocked people). Every change is saved at once and either confirmed
// or reported as failed with the server's reason. The controls always show what
// the server holds: after a failed save they are reset to the server's value (read
// back from it), never left showing what the user wished for.
//
// Choices can't contradict each other: who can call is one radio group (the server
// takes lists, but "people you follow, everyone" is just everyone), it is really
// disabled while calls are off, and "Silence unknown callers" is offered only where
// someone can be outside the audience.

import { ApiError } from "../api.js";
import { AUDIENCE_OPTIONS, audienceChoice, directWords } from "../callaccess.js";
import { avatar, h, replace } from "../dom.js";
import { validationText } from "../format.js";
import { notifyState, turnOff, turnOn } from "../notify.js";
import { sessionKept } from "../session.js";
import { setPageTitle } from "../title.js";

/** @import { AppContext } from "../context.js" */
/** @import { Settings, DirectConnections, MessageNotifications, User } from "../types.js" */

/** @type {{value: DirectConnections, label: string}[]} */
const DIRECT = [
  { value: "nobody", label: "Nobody: always use the relay" },
  { value: "following", label: "People you follow" },
  { value: "everyone", label: "Everyone" },
];

/** @type {{value: MessageNotifications, label: string}[]} */
const MESSAGE_NOTIFICATIONS = [
  { value: "name_only", label: "Who wrote: \u201cNew message from Alex\u201d" },
  { value: "name_and_text", label: "Who wrote, and what they wrote" },
  { value: "off", label: "Nothing: don't notify me of messages" },
];

/**
 * @param {AppContext} ctx
 * @param {HTMLElement} root
 * @returns {() => void} cleanup
 */
export function renderSettings(ctx, root) {
  setPageTitle("Privacy and safety · Ringfence");
  let alive = true;

  const callsSwitch = h("input", {
    attrs: { type: "checkbox", role: "switch", id: "calls-enabled", "aria-describedby": "calls-enabled-help" },
  });
  const callsStatus = statusLine("calls-enabled-status");
  const directSummary = h("p", { class: "direct-summary", attrs: { id: "direct-summary" } });
  const directChange = h("button", {
    class: "link", text: "Change", attrs: { type: "button", "aria-label": "Change direct connections" },
    on: { click: () => (directRadios.find((r) => r.checked) ?? directRadios[0])?.focus() },
  });
  const audienceRadios = AUDIENCE_OPTIONS.map(({ choice }) =>
    h("input", { attrs: { type: "radio", id: `audience-${choice}`, name: "call_audience", value: choice } }),
  );
  const audienceNone = h("p", { class: "help", attrs: { id: "audience-none" }, text: "Right now nobody can call you: choose who can." });
  const audienceSet = h("fieldset", { class: "options", attrs: { "aria-describedby": "audience-help audience-none" } },
    h("legend", { text: "Who can call you" }),
    h("p", { class: "help", attrs: { id: "audience-help" }, text: "Only these people can ring you, and only in a conversation you have accepted." }),
    AUDIENCE_OPTIONS.map(({ choice, label }, i) =>
      h("div", { class: "check" }, audienceRadios[i], h("label", { text: label, attrs: { for: `audience-${choice}` } })),
    ),
    audienceNone,
  );
  const audienceStatus = statusLine("audience-status");
  const silenceSwitch = h("input", {
    attrs: { type: "checkbox", role: "switch", id: "silence-unknown", "aria-describedby": "silence-unknown-help" },
  });
  const silenceStatus = statusLine("silence-unknown-status");
  const silenceRow = h("div", { class: "switch-row" },
    h("label", { text: "Silence unknown callers", attrs: { for: "silence-unknown" } }),
    silenceSwitch,
  );
  const silenceHelp = h("p", { class: "help", attrs: { id: "silence-unknown-help" }, text: "Calls from people you have talked with but who are not allowed above won't ring: they show up as missed calls instead of being refused." });
  const receiptsSwitch = h("input", {
    attrs: { type: "checkbox", role: "switch", id: "read-receipts", "aria-describedby": "read-receipts-help" },
  });
  const receiptsStatus = statusLine("read-receipts-status");
  const typingSwitch = h("input", {
    attrs: { type: "checkbox", role: "switch", id: "typing-indicators", "aria-describedby": "typing-indicators-help" },
  });
  const typingStatus = statusLine("typing-indicators-status");
  const directRadios = DIRECT.map(({ value }) =>
    h("input", { attrs: { type: "radio", id: `direct-${value}`, name: "direct_connections", value } }),
  );
  const directWarning = h("p", {
    class: "warning", attrs: { id: "direct-warning", role: "note" },
    text: "Direct calls happen only when you both allow it; then you can see each other's IP address, and with it your approximate locations.",
  });
  const directSet = h("fieldset", { class: "options", attrs: { "aria-describedby": "direct-help direct-warning" } },
    h("legend", { text: "Direct connections" }),
    h("p", { class: "help", attrs: { id: "direct-help" }, text: "Calls go through Ringfence's relay, so the other person never learns your address. Choose here whom you allow a direct connection, which can sound a little better. A call is only direct if the other person allows it with you too." }),
    DIRECT.map(({ value, label }, i) =>
      h("div", { class: "check" }, directRadios[i], h("label", { text: label, attrs: { for: `direct-${value}` } })),
    ),
    directWarning,
  );
  const directStatus = statusLine("direct-status");
  const notifyLine = h("p", { class: "help", attrs: { id: "notify-help" } });
  const notifyButton = h("button", { attrs: { type: "button", id: "notify-toggle", "aria-describedby": "notify-help" } });
  const notifyStatus = statusLine("notify-status");
  const messageRadios = MESSAGE_NOTIFICATIONS.map(({ value }) =>
    h("input", { attrs: { type: "radio", id: `message-notifications-${value}`, name: "message_notifications", value } }),
  );
  const messageSet = h("fieldset", { class: "options", attrs: { "aria-describedby": "message-notifications-help" } },
    h("legend", { text: "What a message notification shows" }),
    h("p", { class: "help", attrs: { id: "message-notifications-help" }, text: "When Ringfence is in the background or closed. The notification's words are fetched by this browser from Ringfence; the push service that wakes it learns only that something happened." }),
    MESSAGE_NOTIFICATIONS.map(({ value, label }, i) =>
      h("div", { class: "check" }, messageRadios[i], h("label", { text: label, attrs: { for: `message-notifications-${value}` } })),
    ),
  );
  const messageStatus = statusLine("message-notifications-status");
  const blockedList = h("ul", { class: "list blocked", attrs: { "aria-labelledby": "blocked-title" } });
  const blockedEmpty = h("p", { class: "empty", text: "You haven't blocked anyone.", attrs: { hidden: true } });
  const blockedStatus = statusLine("blocked-status");
  const loadError = h("p", { class: "form-error", attrs: { role: "alert" } });

  replace(root, h("div", { class: "page settings" },
    h("h1", { text: "Privacy and safety", attrs: { tabindex: "-1" } }),
    loadError,
    h("section", { class: "panel", attrs: { "aria-labelledby": "calls-title" } },
      h("h2", { text: "Calls", attrs: { id: "calls-title" } }),
      h("div", { class: "switch-row" },
        h("label", { text: "Allow calls", attrs: { for: "calls-enabled" } }),
        callsSwitch,
      ),
      h("p", { class: "help", attrs: { id: "calls-enabled-help" }, text: "When this is off nobody can call you, and callers are only told that you can't be called right now." }),
      callsStatus,
      h("p", { class: "direct-line" }, directSummary, " ", directChange),
      audienceSet,
      audienceStatus,
      silenceRow,
      silenceHelp,
      silenceStatus,
    ),
    h("section", { class: "panel", attrs: { "aria-labelledby": "messages-title" } },
      h("h2", { text: "Messages", attrs: { id: "messages-title" } }),
      h("div", { class: "switch-row" },
        h("label", { text: "Read receipts", attrs: { for: "read-receipts" } }),
        receiptsSwitch,
      ),
      h("p", { class: "help", attrs: { id: "read-receipts-help" }, text: "Let people see when their messages have reached you and when you've read them. If you turn this off, you won't see other people's either." }),
      receiptsStatus,
      h("div", { class: "switch-row" },
        h("label", { text: "Typing indicators", attrs: { for: "typing-indicators" } }),
        typingSwitch,
      ),
      h("p", { class: "help", attrs: { id: "typing-indicators-help" }, text: "Let people see when you're typing to them. If you turn this off, you won't see other people's either." }),
      typingStatus,
    ),
    h("section", { class: "panel", attrs: { "aria-labelledby": "notify-title" } },
      h("h2", { text: "Notifications", attrs: { id: "notify-title" } }),
      notifyLine,
      notifyButton,
      notifyStatus,
      messageSet,
      messageStatus,
    ),
    h("section", { class: "panel", attrs: { "aria-labelledby": "direct-title" } },
      h("h2", { text: "Your address", attrs: { id: "direct-title" } }),
      directSet,
      directStatus,
    ),
    h("section", { class: "panel", attrs: { "aria-labelledby": "blocked-title" } },
      h("h2", { text: "Blocked people", attrs: { id: "blocked-title" } }),
      h("p", { class: "help", text: "People you block can't message or call you, and you can't message or call them." }),
      blockedList,
      blockedEmpty,
      blockedStatus,
    ),
  ));

  /** @type {Settings | null} The server's value, as last read or saved. */
  let server = ctx.store.settings;
  const controls = [callsSwitch, silenceSwitch, receiptsSwitch, typingSwitch, ...audienceRadios, ...directRadios, ...messageRadios];

  /** This browser's notifications: on, off, blocked or not possible here. */
  function showNotify() {
    const state = sessionKept() ? notifyState() : "unsupported";
    const words = {
      on: "Notifications are on in this browser: calls ring and messages notify even when Ringfence is closed.",
      off: "Notifications are off in this browser.",
      blocked: "Notifications are blocked for Ringfence in this browser's site settings.",
      unsupported: sessionKept()
        ? "This browser can't show Ringfence's notifications."
        : "Not on a shared computer: notifications need you to stay signed in on this device.",
    };
    notifyLine.textContent = words[state];
    notifyButton.textContent = state === "on" ? "Turn off notifications" : "Turn on notifications";
    notifyButton.hidden = state === "blocked" || state === "unsupported";
  }

  notifyButton.addEventListener("click", async () => {
    const token = ctx.api.getToken();
    notifyButton.disabled = true;
    try {
      if (notifyState() === "on") {
        await turnOff(ctx.api);
        setLine(notifyStatus, "Notifications are off in this browser.", "ok");
      } else if (token) {
        const state = await turnOn(ctx.api, token);
        setLine(notifyStatus, state === "on" ? "Notifications are on." : "Notifications were not allowed.", state === "on" ? "ok" : "error");
      }
    } catch (err) {
      setLine(notifyStatus, `Notifications couldn't be changed: ${reason(err)}`, "error");
    } finally {
      notifyButton.disabled = false;
      if (alive) showNotify();
    }
  });

  /** Show exactly what the server holds. */
  function show() {
    for (const control of controls) control.disabled = server === null;
    directSummary.textContent = server ? directWords(server) : "";
    directChange.hidden = server === null;
    if (!server) return;
    callsSwitch.checked = server.calls_enabled;
    silenceSwitch.checked = server.silence_unknown_callers;
    receiptsSwitch.checked = server.read_receipts;
    typingSwitch.checked = server.typing_indicators;
    const choice = audienceChoice(server.call_audience);
    AUDIENCE_OPTIONS.forEach((option, i) => {
      const radio = audienceRadios[i];
      if (radio) radio.checked = option.choice === choice;
    });
    audienceNone.hidden = choice !== "nobody";
    DIRECT.forEach(({ value }, i) => {
      const radio = directRadios[i];
      if (radio) radio.checked = server?.direct_connections === value;
    });
    directWarning.hidden = server.direct_connections === "nobody";
    MESSAGE_NOTIFICATIONS.forEach(({ value }, i) => {
      const radio = messageRadios[i];
      if (radio) radio.checked = server?.message_notifications === value;
    });
    // While calls are off, who can call doesn't apply: the group is really disabled
    // (not just greyed), and so is silencing.
    audienceSet.disabled = !server.calls_enabled;
    audienceSet.classList.toggle("dimmed", !server.calls_enabled);
    silenceSwitch.disabled = !server.calls_enabled;
    // With everyone in the audience nobody is "unknown": there is nothing to silence.
    const silenceApplies = choice !== "everyone";
    silenceRow.hidden = silenceHelp.hidden = !silenceApplies;
    silenceStatus.hidden = !silenceApplies;
  }

  async function load() {
    try {
      const me = await ctx.api.me();
      server = ctx.store.settings = me.settings;
      loadError.textContent = "";
    } catch (err) {
      loadError.textContent = `Couldn't load your settings: ${reason(err)}`;
    }
    if (alive) show();
  }

  /**
   * Save one change; confirm it, or report the failure and show the real value.
   * @param {Partial<Settings>} change
   * @param {HTMLElement} line
   * @param {string} saved What to confirm.
   */
  async function save(change, line, saved) {
    for (const control of controls) control.disabled = true;
    setLine(line, "Saving…", "pending");
    try {
      server = ctx.store.settings = await ctx.api.updateSettings(change);
      setLine(line, `Saved. ${saved}`, "ok");
    } catch (err) {
      setLine(line, `Not saved: ${reason(err)} Showing your current setting.`, "error");
      // Ask the server what it really holds; if it can't be reached either, the
      // last value it confirmed is still the truth as far as anyone knows.
      try {
        server = ctx.store.settings = (await ctx.api.me()).settings;
      } catch {
        // keep the last confirmed value
      }
    }
    if (alive) show();
  }

  callsSwitch.addEventListener("change", () => {
    const on = callsSwitch.checked;
    void save({ calls_enabled: on }, callsStatus, on ? "Calls are on." : "Calls are off: nobody can call you.");
  });
  silenceSwitch.addEventListener("change", () => {
    const on = silenceSwitch.checked;
    void save(
      { silence_unknown_callers: on },
      silenceStatus,
      on ? "Unknown callers are silenced and shown as missed calls." : "Unknown callers are refused.",
    );
  });
  receiptsSwitch.addEventListener("change", () => {
    const on = receiptsSwitch.checked;
    void save(
      { read_receipts: on },
      receiptsStatus,
      on ? "People you talk with can see when you've read their messages, as you can see theirs." : "Read receipts are off, yours and other people's.",
    );
  });
  typingSwitch.addEventListener("change", () => {
    const on = typingSwitch.checked;
    void save(
      { typing_indicators: on },
      typingStatus,
      on ? "People you talk with can see when you're typing, as you can see theirs." : "Typing indicators are off, yours and other people's.",
    );
  });
  audienceRadios.forEach((radio, i) => {
    radio.addEventListener("change", () => {
      const option = AUDIENCE_OPTIONS[i];
      if (!radio.checked || !option) return;
      const summary = option.choice === "everyone"
        ? "Everyone you've accepted a conversation with can call you."
        : `Only ${option.who} can call you.`;
      void save({ call_audience: option.audience }, audienceStatus, summary);
    });
  });
  directRadios.forEach((radio, i) => {
    radio.addEventListener("change", () => {
      const value = DIRECT[i]?.value;
      if (!radio.checked || !value) return;
      const summary = value === "nobody" ? "Your address stays hidden behind the relay." : "Direct connections are allowed where the other person allows them too.";
      void save({ direct_connections: value }, directStatus, summary);
    });
  });

  messageRadios.forEach((radio, i) => {
    radio.addEventListener("change", () => {
      const value = MESSAGE_NOTIFICATIONS[i]?.value;
      if (!radio.checked || !value) return;
      const summary = value === "off"
        ? "Messages won't notify you while Ringfence is in the background."
        : value === "name_only" ? "Message notifications say who wrote." : "Message notifications show who wrote and what.";
      void save({ message_notifications: value }, messageStatus, summary);
    });
  });

  async function loadBlocked() {
    try {
      const users = await ctx.api.blocked();
      if (!alive) return;
      replace(blockedList, users.map(blockedItem));
      blockedEmpty.hidden = users.length > 0;
    } catch (err) {
      setLine(blockedStatus, `Couldn't load the people you've blocked: ${reason(err)}`, "error");
    }
  }

  /** @param {User} user */
  function blockedItem(user) {
    const name = user.display_name || user.username;
    const button = h("button", { class: "small", text: "Unblock", attrs: { type: "button", "aria-label": `Unblock ${name}` } });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await ctx.api.unblock(user.username);
        setLine(blockedStatus, `Unblocked ${name}.`, "ok");
      } catch (err) {
        setLine(blockedStatus, `Couldn't unblock ${name}: ${reason(err)}`, "error");
      }
      await loadBlocked();
    });
    return h("li", { class: "item" },
      h("span", { class: "item-link static" }, avatar(user), h("span", { class: "item-text" },
        h("span", { class: "name", text: name }), h("span", { class: "handle", text: `@${user.username}` }))),
      button,
    );
  }

  show();
  showNotify();
  void load();
  void loadBlocked();
  return () => {
    alive = false;
  };
}

/** @param {string} id */
function statusLine(id) {
  return h("p", { class: "save-status", attrs: { id, role: "status", "aria-live": "polite" } });
}

/**
 * @param {HTMLElement} line
 * @param {string} text
 * @param {"ok" | "error" | "pending" | "none"} tone
 */
function setLine(line, text, tone) {
  line.textContent = text;
  line.dataset.tone = tone;
}

/** @param {unknown} err */
function reason(err) {
  if (!(err instanceof ApiError)) return "an unexpected error.";
  const invalid = validationText(err);
  if (invalid) return invalid.text;
  const text = err.detail.trim();
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
