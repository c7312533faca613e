// The HTTP API: one method per route. The token travels only in the Authorization
// header; every failure becomes an ApiError carrying the server's own error code and
// its explanation, so no view ever has to guess what went wrong.

/** @import { User, Session, Settings, DeviceSession, Conversation, Message, Media, StartedCall } from "./types.js" */

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, or 0 when the server could not be reached.
   * @param {string} code The server's machine-readable error ("call_not_allowed"...).
   * @param {string} detail Human-readable explanation.
   * @param {number | null} [retryAfterS]
   */
  constructor(status, code, detail, retryAfterS = null) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfterS = retryAfterS;
  }

  /** True when the request never got an answer (offline, server down). */
  get isNetwork() {
    return this.status === 0;
  }
}

/** @param {string} value */
const seg = (value) => encodeURIComponent(value);

export class Api {
  /**
   * @param {() => string | null} getToken
   * @param {() => void} onUnauthorized Called when the server no longer accepts the token.
   */
  constructor(getToken, onUnauthorized) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, auth?: boolean, params?: Record<string, string | number | undefined>}} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, { body, auth = true, params } = {}) {
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json" };
    if (auth) {
      const token = this.getToken();
      if (!token) throw new ApiError(401, "unauthorized", "You are signed out.");
      headers.Authorization = `Bearer ${token}`;
    }
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let url = path;
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value !== undefined) query.set(key, String(value));
    }
    if ([...query].length) url += `?${query}`;
    /** @type {Response} */
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit", // bearer tokens only: no ambient cookies to ride on
        cache: "no-store",
        redirect: "error", // a redirect must never carry the token elsewhere
        referrerPolicy: "no-referrer",
      });
    } catch {
      throw new ApiError(0, "network", "Couldn't reach the server. Check your connection.");
    }
    if (response.status === 204) return null;
    /** @type {any} */
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const code = typeof data?.error === "string" ? data.error : `http_${response.status}`;
      const detail =
        typeof data?.detail === "string"
          ? data.detail
          : response.status >= 500
            ? "The server had a problem. Try again in a moment."
            : `The server answered ${response.status}.`;
      const retry = Number(response.headers.get("Retry-After"));
      const error = new ApiError(response.status, code, detail, Number.isFinite(retry) && retry > 0 ? retry : null);
      if (response.status === 401 && auth) this.onUnauthorized();
      throw error;
    }
    return data;
  }

  // --- accounts --------------------------------------------------------------

  /**
   * @param {string} username
   * @param {string} password
   * @param {string | null} displayName
   * @returns {Promise<Session>}
   */
  register(username, password, displayName) {
    /** @type {Record<string, string>} */
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    return this.request("POST", "/api/v1/accounts", { body, auth: false });
  }

  /**
   * @param {string} username
   * @param {string} password
   * @returns {Promise<Session>}
   */
  login(username, password) {
    return this.request("POST", "/api/v1/sessions", { body: { username, password }, auth: false });
  }

  /** @returns {Promise<null>} */
  logout() {
    return this.request("DELETE", "/api/v1/sessions/current");
  }

  /** @returns {Promise<{user: User, settings: Settings}>} */
  me() {
    return this.request("GET", "/api/v1/me");
  }

  /**
   * Change my display name; everyone I talk with is told (user.updated).
   * @param {string} displayName
   * @returns {Promise<User>}
   */
  async rename(displayName) {
    return (await this.request("PATCH", "/api/v1/me", { body: { display_name: displayName } })).user;
  }

  /**
   * Change my password. Every other session of mine is signed out; this one stays.
   * @param {string} currentPassword
   * @param {string} newPassword
   * @returns {Promise<null>}
   */
  changePassword(currentPassword, newPassword) {
    const body = { current_password: currentPassword, new_password: newPassword };
    return this.request("POST", "/api/v1/me/password", { body });
  }

  /** @returns {Promise<DeviceSession[]>} My signed-in devices, oldest sign-in first. */
  async sessions() {
    return (await this.request("GET", "/api/v1/me/sessions")).sessions;
  }

  /**
   * Sign one of my devices out (its socket closes with 4401).
   * @param {number} id
   * @returns {Promise<null>}
   */
  endSession(id) {
    return this.request("DELETE", `/api/v1/me/sessions/${seg(String(id))}`);
  }

  /**
   * @param {Partial<Settings>} changes
   * @returns {Promise<Settings>}
   */
  async updateSettings(changes) {
    return (await this.request("PATCH", "/api/v1/me/settings", { body: changes })).settings;
  }

  /**
   * @param {string} username
   * @returns {Promise<User>}
   */
  async user(username) {
    return (await this.request("GET", `/api/v1/users/${seg(username)}`)).user;
  }

  // --- social ------------------------------------------------------------------

  /** @returns {Promise<User[]>} */
  async following() {
    return (await this.request("GET", "/api/v1/me/following")).users;
  }

  /** @param {string} username */
  follow(username) {
    return this.request("PUT", `/api/v1/me/following/${seg(username)}`);
  }

  /** @param {string} username */
  unfollow(username) {
    return this.request("DELETE", `/api/v1/me/following/${seg(username)}`);
  }

  /** @returns {Promise<User[]>} */
  async blocked() {
    return (await this.request("GET", "/api/v1/me/blocked")).users;
  }

  /** @param {string} username */
  block(username) {
    return this.request("PUT", `/api/v1/me/blocked/${seg(username)}`);
  }

  /** @param {string} username */
  unblock(username) {
    return this.request("DELETE", `/api/v1/me/blocked/${seg(username)}`);
  }

  // --- messages ---------------------------------------------------------------

  /** @returns {Promise<Conversation[]>} */
  async conversations() {
    return (await this.request("GET", "/api/v1/conversations")).conversations;
  }

  /**
   * Send a DM. The txn_id makes a retry of the same send return the original
   * message instead of storing a second one.
   * @param {string} username
   * @param {string} text
   * @param {string} txnId
   * @returns {Promise<Message>}
   */
  async sendMessage(username, text, txnId) {
    const path = `/api/v1/conversations/${seg(username)}/messages`;
    return (await this.request("POST", path, { body: { text, txn_id: txnId } })).message;
  }

  /**
   * A page of history, oldest first, ending just before message `before`.
   * @param {string} username
   * @param {{before?: number, limit?: number}} [page]
   * @returns {Promise<Message[]>}
   */
  async history(username, { before, limit = 50 } = {}) {
    const path = `/api/v1/conversations/${seg(username)}/messages`;
    return (await this.request("GET", path, { params: { before, limit } })).messages;
  }

  /**
   * Mark this person's messages up to message `upTo` as read, on all my devices (and,
   * where we both share read receipts, tell them). Positions only move forward.
   * @param {string} username
   * @param {number} upTo
   * @returns {Promise<null>}
   */
  markRead(username, upTo) {
    return this.request("POST", `/api/v1/conversations/${seg(username)}/read`, { body: { up_to: upTo } });
  }

  /**
   * @param {string} username
   * @returns {Promise<Conversation>}
   */
  async accept(username) {
    return (await this.request("POST", `/api/v1/conversations/${seg(username)}/accept`)).conversation;
  }

  /**
   * @param {string} username
   * @returns {Promise<Conversation>}
   */
  async decline(username) {
    return (await this.request("POST", `/api/v1/conversations/${seg(username)}/decline`)).conversation;
  }

  // --- safety ---------------------------------------------------------------------

  /**
   * Report a user to this server's admins (the reported user is not told).
   * @param {string} username
   * @param {string} reason Optional: what happened, up to 1000 characters.
   * @returns {Promise<{report: {id: number, created_at: string}}>}
   */
  report(username, reason) {
    return this.request("POST", "/api/v1/reports", { body: { username, reason } });
  }

  // --- calls ----------------------------------------------------------------------

  /**
   * Ask the server for a call id and the ICE configuration to use. Every refusal is
   * the same 403 call_not_allowed (or 429), so nothing about the callee leaks.
   * @param {string} to
   * @param {Media} media
   * @returns {Promise<StartedCall>}
   */
  startCall(to, media) {
    return this.request("POST", "/api/v1/calls", { body: { to, media } });
  }

  /**
   * A page of my calls, newest first, all older than message `before`.
   * @param {{before?: number, limit?: number}} [page]
   * @returns {Promise<import("./types.js").CallHistoryItem[]>}
   */
  async calls({ before, limit = 50 } = {}) {
    return (await this.request("GET", "/api/v1/calls", { params: { before, limit } })).calls;
  }

  // --- deleting my account ----------------------------------------------------------

  /**
   * Delete my account for good; the password confirms it (a wrong one is 403
   * wrong_password). Every session of mine ends, this one too (its socket closes
   * with 4401). Messages I sent stay with the people who got them, shown as from
   * "Deleted account".
   * @param {string} password
   * @returns {Promise<null>}
   */
  deleteAccount(password) {
    return this.request("DELETE", "/api/v1/me", { body: { password } });
  }

  // --- Web Push ---------------------------------------------------------------------

  /**
   * The key browsers subscribe with (an uncompressed P-256 point, base64url).
   * @returns {Promise<string>}
   */
  async pushKey() {
    return (await this.request("GET", "/api/v1/push/config", { auth: false })).vapid_public_key;
  }

  /**
   * Register this browser's push subscription for this session (the same endpoint
   * again updates it). 422 for an endpoint the server won't send to.
   * @param {import("./types.js").PushSubscriptionJSON} subscription
   * @returns {Promise<number>} Its id.
   */
  async subscribePush(subscription) {
    const body = {
      endpoint: subscription.endpoint,
      expirationTime: subscription.expirationTime ?? null,
      keys: { p256dh: subscription.keys.p256dh, auth: subscription.keys.auth },
    };
    return (await this.request("POST", "/api/v1/me/push-subscriptions", { body })).id;
  }

  /** @returns {Promise<import("./types.js").PushSubscriptionInfo[]>} */
  async pushSubscriptions() {
    return (await this.request("GET", "/api/v1/me/push-subscriptions")).subscriptions;
  }

  /**
   * @param {number} id
   * @returns {Promise<null>}
   */
  unsubscribePush(id) {
    return this.request("DELETE", `/api/v1/me/push-subscriptions/${seg(String(id))}`);
  }
}
