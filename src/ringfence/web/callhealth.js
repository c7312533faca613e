// A call's connection over time: the deadline for connecting at all, the grace an
// early failure gets, a drop mid-call, its restart through the relay, and giving up.
// This module decides when; the call (call.js) does what it is told, and the
// transport switch (callswitch.js) carries the restart.

import * as text from "./calltext.js";

/** @import { TransportSwitch, SwitchRefusal } from "./callswitch.js" */
/** @import { CallState } from "./callstates.js" */

const CONNECT_TIMEOUT_MS = 30000;
// Mid-call, "disconnected" for this long (the callee waits longer, so that usually
// only one side asks) means the path is gone: restart it through the relay.
const DROP_RESTART_MS = 2000;
const CALLEE_RESTART_DELAY_MS = 2000;
// A restart that has not carried the call by then has failed: the call ends.
const RECOVERY_MS = 20000;
// A restart refused because a switch was under way is asked for again after this long.
const RESTART_RETRY_MS = 4000;
// While connecting, ICE may report "failed" because every pair tried so far failed
// (the relay refuses to reach a peer's host candidate) although the peer's relay
// candidates are still on their way; it recovers when they arrive.
const EARLY_FAILURE_GRACE_MS = 5000;

/**
 * What the health of a call needs from the call.
 * @typedef {object} HealthHost
 * @property {string} callId
 * @property {"outgoing" | "incoming"} direction
 * @property {(state: CallState) => boolean} is
 * @property {() => boolean} active The call has not ended.
 * @property {() => RTCPeerConnectionState | undefined} linkState The state of the connection that carries the call.
 * @property {TransportSwitch} transport
 * @property {(warning: string | null) => void} warn Show (or clear) a transient problem.
 * @property {() => void} connected Media connected for the first time.
 * @property {(message: string) => void} fail End the call with this message, offering to place it again.
 * @property {() => void} changed
 */

export class CallHealth {
  /** @param {HealthHost} host */
  constructor(host) {
    this.host = host;
    /** The connection dropped mid-call and is being restarted through the relay. */
    this.recovering = false;
    /** @type {number | undefined} */
    this.connectTimer = undefined;
    /** @type {number | undefined} */
    this.failTimer = undefined;
    /** @type {number | undefined} */
    this.dropTimer = undefined;
    /** @type {number | undefined} */
    this.recoveryTimer = undefined;
    /** @type {number | undefined} */
    this.reaskTimer = undefined;
  }

  /** SDP is exchanged: media must connect within CONNECT_TIMEOUT_MS. */
  startConnectTimer() {
    clearTimeout(this.connectTimer);
    this.connectTimer = window.setTimeout(() => {
      if (this.host.is("connecting")) this.host.fail(text.CONNECT_TIMEOUT);
    }, CONNECT_TIMEOUT_MS);
  }

  /** @param {RTCPeerConnectionState} state The connection carrying the call moved. */
  onConnectionState(state) {
    const host = this.host;
    if (state !== "failed") {
      clearTimeout(this.failTimer);
      this.failTimer = undefined;
    }
    if (state !== "disconnected") {
      clearTimeout(this.dropTimer);
      this.dropTimer = undefined;
    }
    if (state === "connected") {
      if (!this.recovering) host.warn(null);
      if (host.is("connecting")) {
        clearTimeout(this.connectTimer);
        host.connected();
      } else if (this.recovering && host.transport.idle) {
        this.recovered(); // the old path came back before any restart got going
      } else {
        host.changed();
      }
    } else if (state === "disconnected" && host.is("connected")) {
      host.warn(text.INTERRUPTED);
      if (!this.recovering && this.dropTimer === undefined) {
        const wait = DROP_RESTART_MS + (host.direction === "incoming" ? CALLEE_RESTART_DELAY_MS : 0);
        this.dropTimer = window.setTimeout(() => {
          this.dropTimer = undefined;
          if (host.linkState() !== "connected") this.recover();
        }, wait);
      }
      host.changed();
    } else if (state === "failed" && host.is("connecting")) {
      if (this.failTimer === undefined) {
        this.failTimer = window.setTimeout(() => {
          this.failTimer = undefined;
          if (host.is("connecting") && host.linkState() === "failed") host.fail(text.RELAY_FAILED);
        }, EARLY_FAILURE_GRACE_MS);
      }
    } else if (state === "failed" && host.is("connected")) {
      this.recover();
    }
  }

  /**
   * The connection dropped mid-call (a network change, a relay hiccup): restart it
   * through the relay, as a switch to the relay does (a new connection with fresh
   * relay credentials and the same certificate). The call ends only if that fails.
   */
  recover() {
    const host = this.host;
    if (!host.is("connected") || this.recovering) return;
    console.warn(`call ${host.callId}: the connection dropped; restarting it through the relay`);
    this.recovering = true;
    host.warn(text.RECONNECTING);
    clearTimeout(this.recoveryTimer);
    this.recoveryTimer = window.setTimeout(() => this.recoveryFailed(text.NOT_RESTORED), RECOVERY_MS);
    // Unless a switch is under way already (the other side may be restarting it).
    if (host.transport.idle) host.transport.ask("relay");
    host.changed();
  }

  /**
   * The server refused the restart's call.transport.
   * @param {SwitchRefusal} code
   */
  restartRefused(code) {
    const transport = this.host.transport;
    const ours = transport.target === "relay";
    transport.cancel();
    if (code === "call_rate_limited") {
      this.recoveryFailed(text.DROPPED_TOO_OFTEN);
    } else if (code === "call_state") {
      // A switch is already under way: usually the other side restarting the
      // connection too, whose offer comes next. If nothing comes of it (a switch left
      // unfinished blocks the next one on the server for a while), ask again.
      clearTimeout(this.reaskTimer);
      this.reaskTimer = window.setTimeout(() => {
        if (this.recovering && this.host.active() && transport.idle) transport.ask("relay");
      }, RESTART_RETRY_MS);
      this.host.changed();
    } else if (!ours) {
      transport.ask("relay"); // it was the user's own switch to direct that was refused
      this.host.changed();
    }
  }

  /** A switch moved the call to a new connection: a restart, if one was going, worked. */
  moved() {
    if (this.recovering) this.recovered();
  }

  recovered() {
    console.info(`call ${this.host.callId}: reconnected`);
    this.recovering = false;
    clearTimeout(this.recoveryTimer);
    clearTimeout(this.reaskTimer);
    this.recoveryTimer = undefined;
    this.host.warn(null);
    this.host.changed();
  }

  /** @param {string} message */
  recoveryFailed(message) {
    if (!this.recovering || !this.host.active()) return;
    this.host.fail(message);
  }

  /** The call ended: nothing more to watch. */
  stop() {
    for (const timer of [this.connectTimer, this.failTimer, this.dropTimer, this.recoveryTimer, this.reaskTimer]) {
      clearTimeout(timer);
    }
    // Whatever was being tried is over: the error (if any) says how it ended.
    this.recovering = false;
  }
}
