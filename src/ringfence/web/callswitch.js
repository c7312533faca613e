// Switching a call's transport mid-call: to the relay ("hide my address") or back to
// a direct connection where both users allow it, and restarting a dropped connection
// through the relay.
//
// Either side asks the server (call.transport). The server decides and hands both
// devices their new ICE servers and policy; the device that asked then renegotiates
// (call.reoffer / call.reanswer). The call and its verification words go on.
//
// To direct: an ICE restart of the running connection would do, since the new direct
// pairs outrank the relay pair. To the relay it is not enough: the working direct pair
// outranks every relay pair, so the browser keeps using it (libwebrtc prunes the relay
// pairs without checking them, and does not revive them when the direct pair dies).
// The device that asked therefore builds a second peer connection under the new
// policy, with the same DTLS certificate (so the fingerprints, and the verification
// words, stay the same), and sends its offer as the call.reoffer. The media moves over
// once it connects; then the old connection is closed, and its path with it. Both
// directions work this way, and so does every client: the Python client does exactly
// this, so a browser and a Python client can switch a call between them either way.

import { LOST_WHILE_SWITCHING, RESTART_FAILED, SWITCH_NEXT_FAILED, SWITCH_REFUSED, SWITCH_TIMED_OUT, movedByPeer, routeNotReached, switchBroke } from "./calltext.js";

/** @import { PeerLink, Route } from "./peer.js" */
/** @import { CallTransportEvent, TransportFrame, ReofferFrame, ReanswerFrame } from "./callframes.js" */

/**
 * A switch in flight. asked: call.transport is out, the server has not answered;
 * negotiating: the server agreed, the offer/answer is under way; settling: negotiated,
 * waiting for the new route to carry the call.
 * @typedef {"asked" | "negotiating" | "settling"} SwitchPhase
 */

/** The server's refusals of a call.transport: the call goes on as it was. */
const REFUSALS = /** @type {const} */ (["direct_not_allowed", "call_rate_limited", "call_state"]);
/** @typedef {typeof REFUSALS[number]} SwitchRefusal */

/**
 * @param {string} code An error frame's code.
 * @returns {code is SwitchRefusal}
 */
export function isSwitchRefusal(code) {
  return /** @type {readonly string[]} */ (REFUSALS).includes(code);
}

const SWITCH_REPLY_MS = 10000; // the server answers a call.transport with this long
const SWITCH_SETTLE_MS = 30000; // from its answer to the new route being in use

/**
 * What a switch needs from the call it switches, and tells it.
 * @typedef {object} SwitchHost
 * @property {() => boolean} active The call has not ended.
 * @property {() => boolean} inCall Connecting or connected: the transport may be switched.
 * @property {() => boolean} recovering The connection dropped and is being restarted.
 * @property {() => string} peerName
 * @property {() => MediaStream | null} localStream What this side sends.
 * @property {(frame: TransportFrame | ReofferFrame | ReanswerFrame) => void} send
 * @property {() => void} changed Something the screen shows changed.
 * @property {() => void} moved The call moved to the new connection.
 * @property {(message: string) => void} recoveryFailed The restart of a dropped connection failed.
 * @property {(message: string) => void} abort Nothing is left to go on with: end the call.
 */

export class TransportSwitch {
  /**
   * @param {string} callId
   * @param {PeerLink} link The call's connections.
   * @param {boolean} directAllowed
   * @param {SwitchHost} host
   */
  constructor(callId, link, directAllowed, host) {
    this.callId = callId;
    this.link = link;
    this.host = host;
    /** Whether the server would let this call switch to direct (both users allow it). */
    this.directAllowed = directAllowed;
    /** @type {Route | null} The transport a switch in flight is moving the call to. */
    this.target = null;
    /** @type {SwitchPhase | null} */
    this.phase = null;
    /**
     * @type {string | null} What became of the last switch, in one sentence: why it
     * didn't happen, or that the other person moved the call.
     */
    this.notice = null;
    /** Whether the switch in flight was asked for by the other person (or their settings). */
    this.byPeer = false;
    /** @type {number | undefined} */
    this.timer = undefined;
  }

  /** A call.transport is out and the server has not answered it. */
  get asked() {
    return this.phase === "asked";
  }

  /** No switch is asked for, under way, or expected from the other side. */
  get idle() {
    return this.target === null && !this.link.next && !this.link.awaitingRemote;
  }

  /**
   * The user's ask to move the call to the relay or back to a direct connection. The
   * server decides; its call.transport (or a refusal) follows.
   * @param {Route} transport
   */
  request(transport) {
    if (!this.host.inCall() || !this.link.pc || this.target !== null) return;
    this.ask(transport);
    this.host.changed();
  }

  /**
   * Send the call.transport (a restart of a dropped connection asks for "relay").
   * @param {Route} transport
   */
  ask(transport) {
    this.notice = null;
    this.target = transport;
    this.phase = "asked";
    this.arm(SWITCH_REPLY_MS);
    this.host.send({ type: "call.transport", call_id: this.callId, transport });
  }

  /**
   * The server switched the call's transport: take the new ICE servers and policy,
   * and if this device asked, make the offer of the connection that replaces this one.
   * @param {CallTransportEvent} event
   */
  async onTransport(event) {
    if (!this.link.pc || !this.host.inCall()) return;
    this.link.dropNext(); // an unfinished earlier switch gives way to this one
    this.directAllowed = event.direct_allowed === true;
    this.link.configure(event.ice_servers, event.ice_transport_policy);
    this.target = event.transport;
    this.byPeer = !event.restart;
    this.phase = "negotiating";
    this.notice = null;
    this.arm(SWITCH_SETTLE_MS);
    this.host.changed();
    if (!event.restart) {
      // The other device offers the new connection; candidates that arrive before its
      // offer are its new connection's, and wait for it.
      this.link.awaitingRemote = true;
      return;
    }
    const next = this.link.startNext();
    try {
      this.link.attach(next, this.host.localStream());
      this.link.receiveAsNow(next);
      await next.setLocalDescription(await next.createOffer());
      if (next !== this.link.next || !this.host.active()) return;
      this.host.send({ type: "call.reoffer", call_id: this.callId, sdp: next.localDescription?.sdp ?? "" });
      this.link.releaseLocalCandidates();
    } catch (error) {
      this.fail(switchBroke(error));
    }
  }

  /**
   * The other device's offer for the switch: the connection that replaces this one,
   * answered with a new connection of ours.
   * @param {string} sdp
   */
  async onReoffer(sdp) {
    if (!this.link.pc || !this.host.inCall()) return;
    this.link.dropNext();
    const next = this.link.startNext();
    this.link.holdForNext();
    try {
      await next.setRemoteDescription({ type: "offer", sdp });
      this.link.attach(next, this.host.localStream());
      await next.setLocalDescription(await next.createAnswer());
      if (next !== this.link.next || !this.host.active()) return;
      this.host.send({ type: "call.reanswer", call_id: this.callId, sdp: next.localDescription?.sdp ?? "" });
      this.link.releaseLocalCandidates();
      await this.link.releaseNextCandidates(next);
      this.negotiated();
    } catch (error) {
      this.fail(switchBroke(error));
    }
  }

  /**
   * The answer to this device's offer for the switch.
   * @param {string} sdp
   */
  async onReanswer(sdp) {
    const next = this.link.next;
    if (!this.host.active() || !this.link.pc) return;
    try {
      if (!next || next.signalingState !== "have-local-offer") return;
      await next.setRemoteDescription({ type: "answer", sdp });
      await this.link.releaseNextCandidates(next);
      this.negotiated();
    } catch (error) {
      this.fail(switchBroke(error));
    }
  }

  /**
   * Offer and answer are set: the switch is done once the new connection carries the
   * call and its route is the one asked for.
   */
  negotiated() {
    if (!this.host.active()) return;
    if (this.target !== null) this.phase = "settling";
    this.host.changed();
  }

  /**
   * The new connection is up: the call moves to it and the old one is closed.
   * @param {RTCPeerConnection} next
   */
  promote(next) {
    if (!this.host.active() || !this.link.promote(next)) return;
    console.info(`call ${this.callId}: moved to the new connection`);
    this.host.moved();
  }

  /**
   * Whether the route just read completes the switch: the new connection carries the
   * call and its route is the one asked for.
   * @param {Route} route
   */
  settlesOn(route) {
    return this.phase === "settling" && !this.link.next && route === this.target;
  }

  /**
   * The switch is done. If the other person moved the call, say who did what, by name.
   * @param {Route} route
   */
  finish(route) {
    this.stop(this.byPeer ? movedByPeer(this.host.peerName(), route) : null);
  }

  /**
   * The server refused the call.transport: the call goes on as it was; say why.
   * @param {SwitchRefusal} code
   */
  refused(code) {
    this.stop(SWITCH_REFUSED[code]);
  }

  /** The new connection failed to come up. */
  nextFailed() {
    this.fail(SWITCH_NEXT_FAILED);
  }

  /** @param {number} ms */
  arm(ms) {
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.onTimeout(), ms);
  }

  onTimeout() {
    if (!this.host.active() || this.target === null) return;
    if (this.phase === "settling" && !this.link.next) {
      // On the new connection, but the route never became what was asked.
      this.stop(routeNotReached(this.target));
      return;
    }
    this.fail(SWITCH_TIMED_OUT);
  }

  /**
   * The switch went wrong: the call goes on over the connection it had.
   * @param {string} message
   */
  fail(message) {
    if (!this.host.active()) return;
    console.warn(`call ${this.callId}: transport switch failed`);
    this.link.dropNext();
    if (this.host.recovering()) {
      // The restart of a dropped connection was the last try.
      this.host.recoveryFailed(RESTART_FAILED);
      return;
    }
    if (this.link.pc?.connectionState === "failed") {
      // The old path went away meanwhile (the other side moved on): nothing is left.
      this.host.abort(LOST_WHILE_SWITCHING);
      return;
    }
    this.link.rollback();
    this.link.awaitingRemote = false;
    this.link.releaseLocalCandidates();
    void this.link.releaseRemoteCandidates();
    this.stop(message);
  }

  /**
   * The switch is over, with this to say about it (or nothing).
   * @param {string | null} notice
   */
  stop(notice) {
    this.cancel();
    this.notice = notice;
    this.host.changed();
  }

  /** Give up the switch in flight without a word (the call ended, or a restart was refused). */
  cancel() {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.target = null;
    this.phase = null;
  }
}
