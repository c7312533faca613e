// The inbox: conversations, and message requests kept apart from them. A request
// can be accepted, declined, or its sender blocked, right from the list. A
// conversation with unread messages stands out, with their number.

import { ApiError } from "../api.js";
import { requestsCallText } from "../callaccess.js";
import { avatar, h, replace, toast } from "../dom.js";
import { setPageTitle } from "../title.js";
import { DELETED_ACCOUNT_NAME, isDeletedAccount, limitText, preview, time } from "../format.js";

/** @import { AppContext } from "../context.js" */
/** @import { Conversation } from "../types.js" */

/** What a username can be (the server's rule): anything else names no one. */
const USERNAME = /^[a-z0-9_]{3,32}$/;

/**
 * @param {AppContext} ctx
 * @param {HTMLElement} root
 * @returns {() => void} cleanup
 */
export function renderInbox(ctx, root) {
  setPageTitle("Inbox · Ringfence");
  const newError = h("p", { class: "form-error", attrs: { role: "alert", id: "new-chat-error" } });
  const newName = h("input", {
    attrs: {
      id: "new-chat-username", name: "username", autocomplete: "off", autocapitalize: "none",
      spellcheck: "false", placeholder: "username", required: true, "aria-describedby": "new-chat-error",
    },
  });
  const newButton = h("button", { class: "primary", text: "Open", attrs: { type: "submit" } });
  const requestsList = h("ul", { class: "list", attrs: { "aria-labelledby": "requests-title" } });
  const requestsSection = h("section", { class: "panel requests", attrs: { "aria-labelledby": "requests-title" } });
  const chatsList = h("ul", { class: "list", attrs: { "aria-labelledby": "chats-title" } });
  const chatsEmpty = h("p", { class: "empty" });

  replace(root, h("div", { class: "page inbox" },
    h("h1", { text: "Inbox", attrs: { tabindex: "-1" } }),
    h("form", { class: "new-chat", attrs: { "aria-label": "Start a conversation" }, on: { submit: openNew } },
      h("label", { text: "Message someone", attrs: { for: "new-chat-username" } }),
      h("div", { class: "row" }, newName, newButton),
      newError,
    ),
    requestsSection,
    h("section", { class: "panel", attrs: { "aria-labelledby": "chats-title" } },
      h("h2", { text: "Conversations", attrs: { id: "chats-title" } }),
      chatsList,
      chatsEmpty,
    ),
  ));

  function render() {
    const { conversations, requests } = ctx.store.inbox();
    replace(requestsSection,
      h("h2", { attrs: { id: "requests-title" } }, "Message requests ", h("span", { class: "count", text: String(requests.length) })),
      h("p", { class: "help", attrs: { id: "requests-help" }, text: `Messages from people you don't follow wait here. ${requestsCallText(ctx.store.settings)}` }),
      requests.length ? requestsList : h("p", { class: "empty", text: "No message requests." }),
    );
    requestsSection.hidden = requests.length === 0;
    replace(requestsList, requests.map(requestItem));
    replace(chatsList, conversations.map(chatItem));
    chatsEmpty.textContent = !ctx.store.conversationsLoaded
      ? "Loading…"
      : conversations.length ? "" : "No conversations yet. Message someone by their username above.";
    chatsEmpty.hidden = ctx.store.conversationsLoaded && conversations.length > 0;
  }

  /** @param {Conversation} c */
  function summary(c) {
    // A deleted account keeps its conversation, under its name only: its reserved
    // "@deleted_account_…" handle means nothing to anyone.
    const deleted = isDeletedAccount(c.user);
    const name = deleted ? DELETED_ACCOUNT_NAME : c.user.display_name || c.user.username;
    const unread = c.unread ?? 0;
    return h("a", { class: `item-link${unread > 0 ? " unread" : ""}${deleted ? " deleted-account" : ""}`, attrs: { href: `#/c/${encodeURIComponent(c.user.username)}` } },
      avatar(c.user),
      h("span", { class: "item-text" },
        h("span", { class: "item-title" },
          h("span", { class: "name", text: name }),
          c.user.verified ? h("span", { class: "badge-verified", text: "✓", attrs: { title: "Verified", "aria-label": "verified" } }) : null,
          deleted ? null : h("span", { class: "handle", text: `@${c.user.username}` }),
        ),
        h("span", { class: "item-preview", text: c.last_message ? preview(c.last_message, ctx.store.me.username) : "No messages yet" }),
      ),
      h("span", { class: "item-side" },
        h("time", { class: "item-time", text: c.last_message ? time(c.last_message.created_at) : "", attrs: { datetime: c.updated_at } }),
        // The number shows; screen readers hear "3 unread" as part of the link's name.
        unread > 0 ? h("span", { class: "unread-count", text: unread > 99 ? "99+" : String(unread), attrs: { "aria-hidden": "true" } }) : null,
        unread > 0 ? h("span", { class: "visually-hidden", text: `${unread} unread` }) : null,
      ),
    );
  }

  /** @param {Conversation} c */
  function chatItem(c) {
    return h("li", { class: "item" }, summary(c));
  }

  /** @param {Conversation} c */
  function requestItem(c) {
    const name = c.user.display_name || c.user.username;
    return h("li", { class: "item request" },
      summary(c),
      h("div", { class: "actions", attrs: { role: "group", "aria-label": `Request from ${name}` } },
        h("button", { class: "primary small", text: "Accept", attrs: { "aria-label": `Accept request from ${name}` }, on: { click: () => ctx.acceptRequest(c.user.username) } }),
        h("button", { class: "small", text: "Decline", attrs: { "aria-label": `Decline request from ${name}` }, on: { click: () => ctx.declineRequest(c.user.username) } }),
        h("button", { class: "danger small", text: "Block", attrs: { "aria-label": `Block ${name}` }, on: { click: () => ctx.blockUser(c.user.username) } }),
      ),
    );
  }

  /** @param {SubmitEvent} event */
  async function openNew(event) {
    event.preventDefault();
    newError.textContent = "";
    const username = newName.value.trim().replace(/^@/, "").toLowerCase();
    if (!username) {
      newError.textContent = "Enter a username.";
      newName.focus();
      return;
    }
    if (!USERNAME.test(username)) {
      newError.textContent = "That isn't a valid username. Usernames are 3 to 32 letters, digits or underscores (_).";
      newName.focus();
      return;
    }
    if (username === ctx.store.me.username) {
      newError.textContent = "That's you. Enter someone else's username.";
      return;
    }
    newButton.disabled = true;
    try {
      await ctx.api.user(username);
      ctx.navigate(`#/c/${encodeURIComponent(username)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) newError.textContent = `There's no one called @${username}.`;
      else if (err instanceof ApiError) newError.textContent = limitText(err) ?? err.detail;
      else toast("Something went wrong.", "error");
      newName.focus();
    } finally {
      newButton.disabled = false;
    }
  }

  render();
  return ctx.store.subscribe(render);
}
