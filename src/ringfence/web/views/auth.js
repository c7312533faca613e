// Sign up and sign in. One form, two modes; the server's own explanation of a
// refusal (taken username, short password, wrong password) is shown as is.
//
// The session is kept for every tab of this browser, across restarts, unless
// "This is a shared computer" is ticked: then it is kept to this tab only (session.js).
// While the form is on screen, a sign-in in another tab of the browser signs this
// tab in too.

import { ApiError } from "../api.js";
import { h, replace } from "../dom.js";
import { validationText } from "../format.js";
import { keepToThisTab, onSharedSessionChange, sessionToJoin } from "../session.js";
import { setPageTitle } from "../title.js";

/** @import { Api } from "../api.js" */
/** @import { Session } from "../types.js" */
/** @import { StoredSession } from "../session.js" */

/** Stops the last form on screen from following sign-ins in other tabs. */
let stopFollowing = () => {};

/**
 * @param {HTMLElement} root
 * @param {object} options
 * @param {Api} options.api
 * @param {"signin" | "signup"} options.mode
 * @param {string | null} options.notice Shown above the form (e.g. "Your session has ended").
 * @param {(session: Session) => void} options.onSignedIn
 * @param {(mode: "signin" | "signup") => void} options.onSwitch
 */
export function renderAuth(root, { api, mode, notice, onSignedIn, onSwitch }) {
  const signup = mode === "signup";
  setPageTitle(signup ? "Create an account · Ringfence" : "Sign in · Ringfence");
  const error = h("p", { class: "form-error", attrs: { role: "alert", id: "auth-error" } });
  const username = h("input", {
    attrs: {
      id: "auth-username", name: "username", autocomplete: "username", required: true,
      autocapitalize: "none", spellcheck: "false", maxlength: 32,
      pattern: "[a-z0-9_]{3,32}", "aria-describedby": signup ? "username-help" : null,
    },
  });
  const displayName = h("input", { attrs: { id: "auth-display", name: "display_name", autocomplete: "nickname", maxlength: 64 } });
  const password = h("input", {
    attrs: {
      id: "auth-password", name: "password", type: "password", required: true,
      autocomplete: signup ? "new-password" : "current-password", minlength: signup ? 10 : null,
      "aria-describedby": signup ? "password-help" : null,
    },
  });
  const shared = h("input", {
    attrs: { id: "auth-shared", name: "shared_computer", type: "checkbox", "aria-describedby": "auth-shared-help" },
  });
  const submit = h("button", { class: "primary wide", text: signup ? "Create account" : "Sign in", attrs: { type: "submit" } });

  const form = h(
    "form",
    { class: "card auth-form", attrs: { "aria-labelledby": "auth-title", novalidate: true }, on: { submit: onSubmit } },
    h("h1", { text: signup ? "Create your account" : "Sign in", attrs: { id: "auth-title", tabindex: "-1" } }),
    notice ? h("p", { class: "notice", text: notice, attrs: { role: "status" } }) : null,
    h("div", { class: "field" },
      h("label", { text: "Username", attrs: { for: "auth-username" } }),
      username,
      signup ? h("p", { class: "help", text: "3–32 lowercase letters, digits or _. People find you by it.", attrs: { id: "username-help" } }) : null,
    ),
    signup
      ? h("div", { class: "field" },
          h("label", { text: "Display name (optional)", attrs: { for: "auth-display" } }),
          displayName)
      : null,
    h("div", { class: "field" },
      h("label", { text: "Password", attrs: { for: "auth-password" } }),
      password,
      signup ? h("p", { class: "help", text: "At least 10 characters.", attrs: { id: "password-help" } }) : null,
    ),
    h("div", { class: "field shared-computer" },
      h("div", { class: "check" },
        shared,
        h("label", { text: "This is a shared computer", attrs: { for: "auth-shared" } }),
      ),
      h("p", {
        class: "help",
        text: "Keeps you signed in only in this tab, until you close it. Leave it unticked on your own device to stay signed in in every tab, even after a restart.",
        attrs: { id: "auth-shared-help" },
      }),
    ),
    error,
    submit,
    h("p", { class: "switch" },
      signup ? "Already have an account? " : "New to Ringfence? ",
      h("button", {
        class: "link", text: signup ? "Sign in" : "Create an account", attrs: { type: "button" },
        on: { click: () => onSwitch(signup ? "signin" : "signup") },
      }),
    ),
  );

  replace(root, h("section", { class: "auth" },
    h("div", { class: "hero" },
      h("p", { class: "brand-large", text: "Ringfence" }),
      h("p", { class: "tagline", text: "Messages and calls that never tell anyone where you are." }),
    ),
    form,
  ));
  username.focus();

  /** Set once this form has signed the tab in, by its own submit or another tab's sign-in. */
  let done = false;
  /** @param {StoredSession} session */
  const adopt = (session) => {
    if (done || !form.isConnected) return;
    done = true;
    unfollow();
    keepToThisTab(false);
    password.value = "";
    onSignedIn({ token: session.token, user: session.user });
  };
  stopFollowing(); // the form this one replaces
  const unfollow = onSharedSessionChange((session) => {
    if (!form.isConnected) unfollow();
    else if (session) adopt(session);
  });
  stopFollowing = unfollow;
  // Another tab signed in anew just as this one's session ended: join it.
  const existing = sessionToJoin();
  if (existing) queueMicrotask(() => adopt(existing));

  /** @param {SubmitEvent} event */
  async function onSubmit(event) {
    event.preventDefault();
    error.textContent = "";
    const name = username.value.trim().toLowerCase();
    if (!name || !password.value) {
      error.textContent = "Enter a username and a password.";
      (name ? password : username).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = signup ? "Creating account…" : "Signing in…";
    try {
      const session = signup
        ? await api.register(name, password.value, displayName.value.trim() || null)
        : await api.login(name, password.value);
      password.value = "";
      if (done) return; // another tab signed this one in meanwhile
      done = true;
      unfollow();
      keepToThisTab(shared.checked);
      onSignedIn(session);
    } catch (err) {
      const invalid = err instanceof ApiError ? validationText(err, LABELS) : null;
      error.textContent = invalid ? invalid.text
        : err instanceof ApiError ? sentence(err.detail) : "Something went wrong. Try again.";
      submit.disabled = false;
      submit.textContent = signup ? "Create account" : "Sign in";
      // Mark the fields the server refused, and go to the first of them.
      const inputs = { username, password, display_name: displayName };
      for (const [field, input] of Object.entries(inputs)) {
        if (invalid?.fields.includes(field)) {
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-errormessage", "auth-error");
        } else {
          input.removeAttribute("aria-invalid");
          input.removeAttribute("aria-errormessage");
        }
      }
      const first = invalid?.fields.map((f) => inputs[/** @type {keyof typeof inputs} */ (f)]).find(Boolean);
      (first ?? password).focus();
    }
  }
}

/** The form's words for the fields the server may name in a refusal. */
const LABELS = { username: "Username", password: "Password", display_name: "Display name" };

/** @param {string} text */
function sentence(text) {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
