// Sending messages: each send gets a txn_id from crypto.randomUUID() when it is
// written, and keeps it through every retry, automatic or by hand. The server
// returns the original message for a txn_id it has seen, so a retry after a lost
// reply can never post the message twice.
//
// A send goes over the live socket when it is open (one frame, no HTTP request),
// and over HTTP when it is not, or when the socket drops before the ack: the same
// txn_id either way, so a message that reached the server by both is still one.

import { ApiError } from "./api.js";
import { limitText, validationText } from "./format.js";

/** @import { Api } from "./api.js" */
/** @import { EventSocket } from "./events.js" */
/** @import { Store } from "./store.js" */
/** @import { Message } from "./types.js" */

const AUTO_RETRIES = 2;
const RETRY_DELAY_MS = 1000;

export class Outbox {
  /**
   * @param {Api} api
   * @param {Store} store
   */
  constructor(api, store) {
    this.api = api;
    this.store = store;
    /** @type {EventSocket | null} Set by the app: sends use it while it is open. */
    this.socket = null;
  }

  /**
   * @param {string} to
   * @param {string} text
   */
  send(to, text) {
    const txnId = crypto.randomUUID();
    this.store.pending.set(txnId, { txnId, to, text, status: "sending", createdAt: Date.now() });
    this.store.changed();
    void this.attempt(txnId, AUTO_RETRIES);
  }

  /** @param {string} txnId */
  retry(txnId) {
    const item = this.store.pending.get(txnId);
    if (!item || item.status !== "failed") return;
    item.status = "sending";
    delete item.error;
    this.store.changed();
    void this.attempt(txnId, 0);
  }

  /** @param {string} txnId */
  discard(txnId) {
    this.store.pending.delete(txnId);
    this.store.changed();
  }

  /**
   * @param {string} txnId
   * @param {number} retriesLeft Automatic retries for network failures.
   */
  async attempt(txnId, retriesLeft) {
    const item = this.store.pending.get(txnId);
    if (!item) return;
    try {
      const message = await this.deliver(item.to, item.text, txnId);
      if (!this.store.addMessage(message, null)) this.onUnknownConversation();
      this.store.pending.delete(txnId);
      this.store.changed();
    } catch (error) {
      if (!this.store.pending.has(txnId)) return; // discarded meanwhile, or echoed back
      const apiError = error instanceof ApiError ? error : new ApiError(0, "network", String(error));
      if (apiError.isNetwork && retriesLeft > 0) {
        setTimeout(() => void this.attempt(txnId, retriesLeft - 1), RETRY_DELAY_MS * (AUTO_RETRIES - retriesLeft + 1));
        return;
      }
      item.status = "failed";
      item.error = apiError.isNetwork
        ? "Couldn't reach the server."
        : (limitText(apiError) ?? validationText(apiError)?.text ?? apiError.detail);
      this.store.changed();
    }
  }

  /**
   * Over the socket if it is open, else (or if it drops first) over HTTP.
   * @param {string} to
   * @param {string} text
   * @param {string} txnId
   * @returns {Promise<Message>}
   */
  async deliver(to, text, txnId) {
    const socket = this.socket;
    if (socket?.isOpen()) {
      try {
        return await socket.sendMessage(to, text, txnId);
      } catch (error) {
        if (!(error instanceof ApiError) || !error.isNetwork) throw error;
        // Not answered on the socket: HTTP, with the same txn_id, settles it.
      }
    }
    return this.api.sendMessage(to, text, txnId);
  }

  /** Set by the app: reload the conversation list when a send opened a new one. */
  onUnknownConversation() {}
}
