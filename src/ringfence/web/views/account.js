// The account page: my display name, my password, the devices signed in to my
// account, and deleting the account. The server is the judge of every change (what a
// display name may be, the current password); the page only says, in plain words,
// what it decided. The checks done here first (the new password typed twice alike,
// and long enough; the username typed out before a deletion) are ones the person can
// fix before anything is sent.

import { ApiError } from "../api.js";
import { h, replace } from "../dom.js";
import { characters, limitText, tryAgain, validationText } from "../format.js";
import { setPageTitle } from "../title.js";

/** @import { AppContext } from "../context.js" */
/** @import { DeviceSession } from "../types.js" */

/** The server's shortest new password (services/accounts.py). */
const MIN_PASSWORD = 10;
const NAME_RULE = "Use 1 to 64 visible characters, on one line.";
/** What the sign-in page says once this tab's account has been deleted. */
export const DELETED_NOTICE =
  "Your account has been deleted, and every device of yours is signed out. Messages you sent stay with the people who got them, from \u201cDeleted account\u201d.";

/**
 * @param {AppContext} ctx
 * @param {HTMLElement} root
 * @returns {() => void} cleanup
 */
export function renderAccount(ctx, root) {
  setPageTitle("Account · Ringfence");
  let alive = true;

  // --- display name ---------------------------------------------------------------
  const nameInput = h("input", {
    attrs: {
      id: "display-name", name: "display_name", autocomplete: "nickname",
      "aria-describedby": "display-name-help display-name-error",
    },
  });
  nameInput.value = ctx.store.me.display_name;
  const nameError = h("p", { class: "form-error", attrs: { id: "display-name-error", role: "alert" } });
  const nameStatus = statusLine("display-name-status");
  const nameSave = h("button", { class: "primary", text: "Save", attrs: { type: "submit" } });
  const nameForm = h("form", { attrs: { "aria-labelledby": "name-title", novalidate: true }, on: { submit: onRename } },
    h("div", { class: "field" },
      h("label", { text: "Display name", attrs: { for: "display-name" } }),
      h("div", { class: "row" }, nameInput, nameSave),
      h("p", { class: "help", attrs: { id: "display-name-help" }, text: "What people you talk with see beside your username. They see a new one at once." }),
      nameError,
    ),
    nameStatus,
  );
  /** What the field showed when it was last filled from the server: edits since then are the person's. */
  let nameShown = nameInput.value;

  // --- password -------------------------------------------------------------------
  /**
   * @param {string} id
   * @param {string} label
   * @param {"current-password" | "new-password"} autocomplete
   * @param {string | null} help
   */
  const passwordField = (id, label, autocomplete, help) => {
    const input = h("input", {
      attrs: {
        id, type: "password", autocomplete, required: true,
        minlength: autocomplete === "new-password" ? MIN_PASSWORD : null,
        "aria-describedby": [help ? `${id}-help` : "", "password-error"].join(" ").trim(),
      },
    });
    const field = h("div", { class: "field" },
      h("label", { text: label, attrs: { for: id } }),
      input,
      help ? h("p", { class: "help", text: help, attrs: { id: `${id}-help` } }) : null,
    );
    return { input, field };
  };
  const current = passwordField("current-password", "Current password", "current-password", null);
  const fresh = passwordField("new-password", "New password", "new-password", `At least ${MIN_PASSWORD} characters.`);
  const repeat = passwordField("repeat-password", "Repeat the new password", "new-password", null);
  const passwordError = h("p", { class: "form-error", attrs: { id: "password-error", role: "alert" } });
  const passwordStatus = statusLine("password-status");
  const passwordSave = h("button", { class: "primary", text: "Change password", attrs: { type: "submit" } });
  const passwordForm = h("form", { attrs: { "aria-labelledby": "password-title", novalidate: true }, on: { submit: onChangePassword } },
    // A hidden username lets password managers file the new password under the right account.
    h("input", { attrs: { type: "text", name: "username", autocomplete: "username", value: ctx.store.me.username, hidden: true, readonly: true } }),
    current.field,
    fresh.field,
    repeat.field,
    passwordError,
    passwordSave,
    passwordStatus,
  );

  // --- sessions -------------------------------------------------------------------
  const sessionsTitle = h("h2", { text: "Signed-in devices", attrs: { id: "sessions-title", tabindex: "-1" } });
  const sessionsList = h("ul", { class: "list sessions", attrs: { "aria-labelledby": "sessions-title" } });
  const sessionsStatus = statusLine("sessions-status");

  // --- deleting the account ---------------------------------------------------------
  const me = ctx.store.me.username;
  const deletePassword = h("input", {
    attrs: {
      id: "delete-password", type: "password", autocomplete: "current-password", required: true,
      "aria-describedby": "delete-error",
    },
  });
  const deleteConfirm = h("input", {
    attrs: {
      id: "delete-confirm", name: "confirm_username", autocomplete: "off", autocapitalize: "none",
      spellcheck: "false", required: true, "aria-describedby": "delete-confirm-help delete-error",
    },
  });
  const deleteError = h("p", { class: "form-error", attrs: { id: "delete-error", role: "alert" } });
  const deleteStatus = statusLine("delete-status");
  const deleteButton = h("button", { class: "danger", text: "Delete my account", attrs: { type: "submit" } });
  const deleteForm = h("form", { attrs: { "aria-labelledby": "delete-title", novalidate: true }, on: { submit: onDelete } },
    h("div", { class: "field" },
      h("label", { text: "Your password", attrs: { for: "delete-password" } }),
      deletePassword,
    ),
    h("div", { class: "field" },
      h("label", { text: "Type your username to confirm", attrs: { for: "delete-confirm" } }),
      deleteConfirm,
      h("p", { class: "help", text: `Your username is ${me}.`, attrs: { id: "delete-confirm-help" } }),
    ),
    deleteError,
    deleteButton,
    deleteStatus,
  );

  replace(root, h("div", { class: "page account" },
    h("h1", { text: "Account", attrs: { tabindex: "-1" } }),
    h("section", { class: "panel", attrs: { "aria-labelledby": "name-title" } },
      h("h2", { text: "Your name", attrs: { id: "name-title" } }),
      nameForm,
    ),
    h("section", { class: "panel", attrs: { "aria-labelledby": "password-title" } },
      h("h2", { text: "Change password", attrs: { id: "password-title" } }),
      h("p", { class: "help", text: "Your other devices are signed out when you change it; this one stays signed in." }),
      passwordForm,
    ),
    h("section", { class: "panel", attrs: { "aria-labelledby": "sessions-title" } },
      sessionsTitle,
      h("p", { class: "help", text: "Where you're signed in now. If you don't recognise a device, sign it out and change your password." }),
      sessionsList,
      sessionsStatus,
    ),
    h("section", { class: "panel danger-zone", attrs: { "aria-labelledby": "delete-title" } },
      h("h2", { text: "Delete account", attrs: { id: "delete-title" } }),
      h("p", { class: "warning", attrs: { id: "delete-warning" } },
        "This can't be undone. Every device of yours is signed out at once, and your settings, ",
        "the people you follow and block, and who follows you are deleted. Messages you sent ",
        "stay with the people who got them, shown as from \u201cDeleted account\u201d. ",
        "Nobody can take your username for a while.",
      ),
      deleteForm,
    ),
  ));

  // --- display name: saving ---------------------------------------------------------

  /** @param {SubmitEvent} event */
  async function onRename(event) {
    event.preventDefault();
    setFieldError(nameInput, nameError, "");
    setLine(nameStatus, "Saving…", "pending");
    nameSave.disabled = true;
    try {
      const user = await ctx.api.rename(nameInput.value);
      ctx.store.updateUser(user); // the event that follows says the same
      nameInput.value = nameShown = user.display_name;
      setLine(nameStatus, `Saved. People you talk with now see you as ${user.display_name}.`, "ok");
    } catch (err) {
      setLine(nameStatus, "", "none");
      const still = ctx.store.me.display_name || ctx.store.me.username;
      setFieldError(nameInput, nameError, `${renameProblem(err)} Your display name is still ${still}.`);
      nameInput.focus();
    } finally {
      nameSave.disabled = false;
    }
  }

  // A rename from another device shows here too, unless the person is mid-edit.
  const unsubscribe = ctx.store.subscribe(() => {
    const name = ctx.store.me.display_name;
    if (name === nameShown) return;
    if (nameInput.value === nameShown) nameInput.value = name;
    nameShown = name;
  });

  // --- password: changing -------------------------------------------------------------

  /** @param {SubmitEvent} event */
  async function onChangePassword(event) {
    event.preventDefault();
    clearPasswordErrors();
    setLine(passwordStatus, "", "none");
    if (!current.input.value) return passwordProblem(current.input, "Enter your current password.");
    if (characters(fresh.input.value) < MIN_PASSWORD) {
      return passwordProblem(fresh.input, `Your new password needs at least ${MIN_PASSWORD} characters.`);
    }
    if (repeat.input.value !== fresh.input.value) {
      return passwordProblem(repeat.input, "The two new passwords don't match. Type the new one again in both.");
    }
    passwordSave.disabled = true;
    setLine(passwordStatus, "Changing your password…", "pending");
    try {
      await ctx.api.changePassword(current.input.value, fresh.input.value);
      for (const input of [current.input, fresh.input, repeat.input]) input.value = "";
      setLine(passwordStatus, "Password changed. Your other devices have been signed out.", "ok");
      void loadSessions();
    } catch (err) {
      setLine(passwordStatus, "", "none");
      if (err instanceof ApiError && err.status === 403) {
        passwordProblem(current.input, "That isn't your current password.");
      } else if (err instanceof ApiError && err.status === 429) {
        passwordProblem(current.input, `Too many tries at your password. ${tryAgain(err.retryAfterS)}`);
      } else if (err instanceof ApiError && err.status === 422) {
        passwordProblem(fresh.input, `That new password can't be used. ${validationText(err)?.text ?? sentence(err.detail)}`);
      } else {
        passwordProblem(current.input, `Your password wasn't changed: ${problem(err)}`);
      }
    } finally {
      passwordSave.disabled = false;
    }
    return undefined;
  }

  function clearPasswordErrors() {
    passwordError.textContent = "";
    for (const input of [current.input, fresh.input, repeat.input]) input.removeAttribute("aria-invalid");
  }

  /**
   * @param {HTMLInputElement} input The field to fix.
   * @param {string} text
   */
  function passwordProblem(input, text) {
    passwordError.textContent = text;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  // --- deleting the account: asking, then signing out -------------------------------

  /** @param {SubmitEvent} event */
  async function onDelete(event) {
    event.preventDefault();
    clearDeleteErrors();
    setLine(deleteStatus, "", "none");
    if (!deletePassword.value) return deleteProblem(deletePassword, "Enter your password.");
    if (deleteConfirm.value.trim().replace(/^@/, "") !== me) {
      return deleteProblem(deleteConfirm, `Type your username, ${me}, to confirm.`);
    }
    deleteButton.disabled = true;
    setLine(deleteStatus, "Deleting your account…", "pending");
    try {
      await ctx.api.deleteAccount(deletePassword.value);
    } catch (err) {
      deleteButton.disabled = false;
      setLine(deleteStatus, "", "none");
      if (err instanceof ApiError && err.status === 403) {
        deleteProblem(deletePassword, "That isn't your password. Your account was not deleted.");
      } else if (err instanceof ApiError && err.status === 429) {
        deleteProblem(deletePassword, `Too many tries at your password. ${tryAgain(err.retryAfterS)} Your account was not deleted.`);
      } else {
        deleteProblem(deletePassword, `Your account was not deleted: ${problem(err)}`);
      }
      return undefined;
    }
    deletePassword.value = "";
    // The server has ended every session already (this tab's socket may have closed
    // first): sign this tab out, and say on the sign-in page what happened.
    announceOnSignIn(root, DELETED_NOTICE);
    await ctx.signOut();
    return undefined;
  }

  function clearDeleteErrors() {
    deleteError.textContent = "";
    for (const input of [deletePassword, deleteConfirm]) input.removeAttribute("aria-invalid");
  }

  /**
   * @param {HTMLInputElement} input The field to fix.
   * @param {string} text
   */
  function deleteProblem(input, text) {
    deleteError.textContent = text;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  // --- sessions: listing and signing out --------------------------------------------

  async function loadSessions() {
    try {
      const sessions = await ctx.api.sessions();
      if (!alive) return;
      replace(sessionsList, sessions.map((s) => sessionItem(s, sessions)));
    } catch (err) {
      if (alive) setLine(sessionsStatus, `Couldn't load your signed-in devices: ${problem(err)}`, "error");
    }
  }

  /**
   * @param {DeviceSession} session
   * @param {DeviceSession[]} all
   */
  function sessionItem(session, all) {
    // Two devices may look alike ("Chrome on Linux"): then their sign-in time tells
    // their buttons apart.
    const alike = all.some((other) => other.id !== session.id && other.device === session.device);
    const label = session.current
      ? `Sign out ${session.device} (this device)`
      : alike ? `Sign out ${session.device}, signed in ${when(session.created_at)}` : `Sign out ${session.device}`;
    const button = h("button", { class: "small", text: "Sign out", attrs: { type: "button", "aria-label": label } });
    const item = h("li", { class: "item session", attrs: { "data-current": session.current ? "true" : null } },
      h("div", { class: "item-text" },
        h("span", { class: "item-title" },
          h("span", { class: "name", text: session.device }),
          session.current ? h("span", { class: "this-device", text: "This device" }) : null,
        ),
        h("span", { class: "session-times" },
          "Signed in ", h("time", { text: when(session.created_at), attrs: { datetime: session.created_at } }),
          " · Last used ", h("time", { text: when(session.last_seen_at), attrs: { datetime: session.last_seen_at } }),
        ),
      ),
      button,
    );
    button.addEventListener("click", async () => {
      if (session.current) {
        // The same as the bar's Sign out: this tab ends its own session.
        await ctx.signOut();
        return;
      }
      button.disabled = true;
      try {
        await ctx.api.endSession(session.id);
        setLine(sessionsStatus, `Signed out ${session.device}.`, "ok");
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          setLine(sessionsStatus, `${session.device} was already signed out.`, "ok");
        } else {
          button.disabled = false;
          setLine(sessionsStatus, `Couldn't sign out ${session.device}: ${problem(err)}`, "error");
          return;
        }
      }
      if (!alive) return;
      item.remove();
      sessionsTitle.focus(); // the button that had focus is gone
      void loadSessions();
    });
    return item;
  }

  void loadSessions();
  return () => {
    alive = false;
    unsubscribe();
  };
}

/**
 * Put `text` in the sign-in page's notice once the app shows it in `root` (at once if
 * it does already: a closed socket may have signed this tab out first). The app
 * renders that page itself, after the sign-out, with its own words for a session that
 * ended; these replace them. Watches for a few seconds only.
 * @param {HTMLElement} root
 * @param {string} text
 */
function announceOnSignIn(root, text) {
  const put = () => {
    const form = root.querySelector("form.auth-form");
    if (!form) return;
    let notice = form.querySelector(".notice");
    if (notice?.textContent === text) return;
    if (!notice) {
      notice = h("p", { class: "notice", attrs: { role: "status" } });
      const title = form.querySelector("h1");
      if (title) title.after(notice);
      else form.prepend(notice);
    }
    notice.textContent = text;
  };
  put();
  const watch = new MutationObserver(put);
  watch.observe(root, { childList: true, subtree: true });
  setTimeout(() => watch.disconnect(), 5000);
}

/**
 * Why a new display name was refused, in plain words.
 * @param {unknown} err
 */
function renameProblem(err) {
  if (!(err instanceof ApiError)) return "Something went wrong.";
  if (err.status === 422) return NAME_RULE;
  if (err.status === 429) return limitText(err) ?? `You've changed your display name too often. ${tryAgain(err.retryAfterS)}`;
  return problem(err);
}

/**
 * A date and time people read: "6 Dec 2026, 07:41".
 * @param {string} iso
 */
function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "unknown";
  return date.toLocaleString([], { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
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

/**
 * @param {HTMLInputElement} input
 * @param {HTMLElement} error
 * @param {string} text Empty: no error.
 */
function setFieldError(input, error, text) {
  error.textContent = text;
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** This page's words for the fields the server may name in a refusal. */
const LABELS = {
  display_name: "Display name", password: "Password",
  current_password: "Current password", new_password: "New password",
};

/** @param {unknown} err */
function problem(err) {
  if (!(err instanceof ApiError)) return "something went wrong.";
  if (err.isNetwork) return "can't reach the server. Check your connection and try again.";
  return validationText(err, LABELS)?.text ?? sentence(err.detail);
}

/** @param {string} text */
function sentence(text) {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}
