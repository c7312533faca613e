// The real-time stream (WebSocket /api/v1/events), kept open on its own.
//
// - The token goes in the first frame, never in the URL.
// - Durable events carry a stream position ("pos"). The socket remembers the highest
//   it has seen and, after any drop, reconnects with exponential backoff asking for
//   everything `since` that position: nothing is lost, and a position seen twice (a
//   replay overlapping live delivery) is dropped, so nothing is duplicated either.
// - It presents the same device_id on every reconnect, so the server keeps this
//   tab's ongoing call alive through a short network drop.
// - Frames sent while the socket is down wait in a small queue and go out, in
//   order, right after the next "ready".
// - A DM goes over the open socket ("message.send", answered by "message.ack" or an
//   error naming its txn_id): no HTTP request per message. When the socket is not
//   open, drops, or stays silent, the send fails as a network error and the outbox
//   sends the same txn_id over HTTP, which can never post it twice.
// - It ends for good when the session does: when the server refuses it (4401: signed
//   out or revoked from another device), and when another tab of this browser signs
//   out of the session this tab shares, or the server refused it there (session.js).

import { ApiError } from "./api.js";
import { onSessionEndedElsewhere } from "./session.js";

/** @import { ServerEvent, ReadyEvent, Message, MessageAckEvent, ErrorEvent } from "./types.js" */

/**
 * @typedef {object} PendingSend A message.send waiting for its answer.
 * @property {(message: Message) => void} resolve
 * @property {(error: ApiError) => void} reject
 * @property {number} timer
 */

/** @typedef {"connecting" | "open" | "offline" | "closed"} SocketStatus */

/**
 * @typedef {object} StatusInfo
 * @property {SocketStatus} status
 * @property {number} [retryInMs] When offline: how long until the next attempt.
 * @property {string} [reason] Why the socket is closed for good, or offline other than by the network.
 */

const CLOSE_POLICY = 1008;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_TOO_MANY = 4429; // too many open connections for this account: wait, then retry
const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 15000;
const PING_EVERY_MS = 20000;
const SILENCE_LIMIT_MS = 45000; // no frame (not even a pong) for this long: the socket is dead
const MAX_QUEUED = 200;
const SEND_ANSWER_MS = 10000; // no ack or error for a message.send by then: try HTTP

export class EventSocket {
  /**
   * @param {string} token
   * @param {object} handlers
   * @param {(event: ServerEvent) => void} handlers.onEvent Every frame after "ready".
   * @param {(ready: ReadyEvent, reconnected: boolean) => void} handlers.onReady
   * @param {(info: StatusInfo) => void} handlers.onStatus
   * @param {(reason: string) => void} handlers.onFatal The server refused us for good.
   */
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    /** @type {number | null} Highest durable position seen. */
    this.pos = null;
    /** @type {string | null} Fixed by the first "ready", presented on every reconnect. */
    this.deviceId = null;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.authenticated = false;
    this.stopped = false;
    this.everConnected = false;
    this.backoffMs = BACKOFF_INITIAL_MS;
    /** @type {string[]} */
    this.queue = [];
    /** @type {Map<string, PendingSend>} message.send frames by txn_id, until answered. */
    this.pendingSends = new Map();
    /** @type {number | undefined} */
    this.retryTimer = undefined;
    /** @type {number | undefined} */
    this.pingTimer = undefined;
    this.lastFrameAt = 0;
    /** @type {SocketStatus} */
    this.status = "connecting";
    this.onOnline = () => this.reconnectNow();
    window.addEventListener("online", this.onOnline);
    this.unwatchSession = onSessionEndedElsewhere(token, (replaced) => {
      // The same words as when the server ends it (4401), which often arrives first.
      this.endFor(replaced ? "You signed in again in another tab." : "Your session has ended.");
    });
  }

  start() {
    this.connect();
  }

  /** Close for good (sign-out). */
  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    this.unwatchSession();
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    this.queue = [];
    this.failPendingSends();
    if (ws) ws.close(1000, "signed out");
    this.setStatus({ status: "closed", reason: "signed out" });
  }

  /**
   * Send a frame now, or as soon as the socket is back.
   * @param {object} frame
   */
  send(frame) {
    const data = JSON.stringify(frame);
    if (this.ws && this.authenticated && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(data);
      return;
    }
    if (this.queue.length >= MAX_QUEUED) this.queue.shift();
    this.queue.push(data);
  }

  /**
   * Send a frame only if the socket is open right now; otherwise drop it. For
   * ephemeral notices (typing), which would be stale by the time a queue emptied.
   * @param {object} frame
   * @returns {boolean} Whether it was sent.
   */
  sendIfOpen(frame) {
    if (!this.ws || !this.authenticated || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** @returns {boolean} Whether a frame sent now goes out at once. */
  isOpen() {
    return this.ws !== null && this.authenticated && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Send a DM over the open socket. Resolves with the stored message once the server
   * has committed it; rejects with the server's refusal as an ApiError with the HTTP
   * route's status, code and words, or with a network ApiError (status 0) when the
   * socket is not open, closes first, or no answer comes in time. Nothing is queued:
   * the caller retries the same txn_id over HTTP.
   * @param {string} to
   * @param {string} text
   * @param {string} txnId
   * @returns {Promise<Message>}
   */
  sendMessage(to, text, txnId) {
    return new Promise((resolve, reject) => {
      if (!this.isOpen() || this.pendingSends.has(txnId)) {
        reject(notSent());
        return;
      }
      const timer = window.setTimeout(() => {
        this.pendingSends.delete(txnId);
        reject(notSent());
      }, SEND_ANSWER_MS);
      this.pendingSends.set(txnId, { resolve, reject, timer });
      this.ws?.send(JSON.stringify({ type: "message.send", to, text, txn_id: txnId }));
    });
  }

  /**
   * Settle the message.send this answer is for; false if it answers none.
   * @param {any} frame
   * @returns {boolean}
   */
  settleSend(frame) {
    const isAck = frame.type === "message.ack";
    if (!isAck && !(frame.type === "error" && typeof frame.txn_id === "string")) return false;
    const pending = this.pendingSends.get(frame.txn_id);
    if (!pending) return true; // answered after we gave up on it: HTTP has it by now
    this.pendingSends.delete(frame.txn_id);
    clearTimeout(pending.timer);
    if (isAck) {
      pending.resolve(/** @type {MessageAckEvent} */ (frame).message);
    } else {
      const error = /** @type {ErrorEvent} */ (frame);
      pending.reject(new ApiError(error.status ?? 400, error.error, error.detail, error.retry_after ?? null));
    }
    return true;
  }

  /** The socket is gone: every unanswered send goes over HTTP instead. */
  failPendingSends() {
    const pending = [...this.pendingSends.values()];
    this.pendingSends.clear();
    for (const send of pending) {
      clearTimeout(send.timer);
      send.reject(notSent());
    }
  }

  /** Skip the backoff wait (the browser says it is back online). */
  reconnectNow() {
    if (this.stopped || this.status !== "offline") return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.setStatus({ status: "connecting" });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/v1/events`);
    this.ws = ws;
    this.authenticated = false;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      /** @type {Record<string, unknown>} */
      const auth = { type: "auth", token: this.token };
      if (this.pos !== null) auth.since = this.pos;
      if (this.deviceId !== null) auth.device_id = this.deviceId;
      ws.send(JSON.stringify(auth));
    });
    ws.addEventListener("message", (message) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      if (typeof message.data !== "string") return;
      /** @type {any} */
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return; // not JSON: nothing this client can act on
      }
      if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
      if (!this.authenticated) {
        if (frame.type === "ready") this.onReady(/** @type {ReadyEvent} */ (frame));
        // Anything else before "ready" is the server explaining a refusal; the close
        // code that follows says whether to retry.
        return;
      }
      if (this.settleSend(frame)) return;
      if (typeof frame.pos === "number") {
        if (this.pos !== null && frame.pos <= this.pos) return; // already delivered
        this.pos = frame.pos;
      }
      this.handlers.onEvent(/** @type {ServerEvent} */ (frame));
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.authenticated = false;
      clearInterval(this.pingTimer);
      this.failPendingSends();
      if (this.stopped) return;
      if (event.code === CLOSE_UNAUTHORIZED || event.code === CLOSE_POLICY) {
        this.endFor(event.code === CLOSE_UNAUTHORIZED ? "Your session has ended." : "The server refused the connection.");
        return;
      }
      if (event.code === CLOSE_TOO_MANY) {
        this.backoffMs = BACKOFF_MAX_MS;
        this.scheduleReconnect("Too many tabs or devices are connected to this account. Close one.");
        return;
      }
      this.scheduleReconnect();
    });
  }

  /**
   * Close for good because the session is over, and say why (the app signs out).
   * @param {string} reason
   */
  endFor(reason) {
    if (this.stopped) return;
    this.stop();
    this.setStatus({ status: "closed", reason });
    this.handlers.onFatal(reason);
  }

  /** @param {ReadyEvent} ready */
  onReady(ready) {
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.authenticated = true;
    this.backoffMs = BACKOFF_INITIAL_MS;
    this.deviceId = ready.device_id;
    if (this.pos === null || ready.resync) this.pos = ready.pos;
    this.lastFrameAt = Date.now();
    this.setStatus({ status: "open" });
    this.handlers.onReady(ready, reconnected);
    const queued = this.queue;
    this.queue = [];
    for (const data of queued) this.ws?.send(data);
    clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => this.heartbeat(), PING_EVERY_MS);
  }

  heartbeat() {
    const ws = this.ws;
    if (!ws || !this.authenticated) return;
    if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
      // A half-open connection (laptop lid, NAT timeout): start over rather than wait.
      this.ws = null;
      this.authenticated = false;
      clearInterval(this.pingTimer);
      this.failPendingSends();
      ws.close(4000, "silent");
      this.scheduleReconnect();
      return;
    }
    ws.send(JSON.stringify({ type: "ping" }));
  }

  /** @param {string} [reason] Why, when it is not simply the network. */
  scheduleReconnect(reason) {
    // Jitter in [backoff/2, backoff], so many clients don't return in lockstep.
    const wait = Math.round(this.backoffMs * (0.5 + Math.random() / 2));
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.setStatus(reason ? { status: "offline", retryInMs: wait, reason } : { status: "offline", retryInMs: wait });
    clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), wait);
  }

  /** @param {StatusInfo} info */
  setStatus(info) {
    this.status = info.status;
    this.handlers.onStatus(info);
  }
}

/** A message.send that did not reach the server, or got no answer: retry over HTTP. */
function notSent() {
  return new ApiError(0, "network", "The live connection is not available.");
}
