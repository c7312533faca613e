// 1:1 WebRTC calls over Ringfence's signaling.
//
// Rules this module keeps:
// - The peer connection is built from exactly the ice_servers and
//   ice_transport_policy the server handed out: the server decides whether this
//   side is relayed, never a client setting.
// - A ringing call touches nothing: no peer connection, no camera, no network
//   until the user presses Accept. The offer is only held in memory.
// - SDP and candidates are passed to the browser and forgotten; nothing here logs
//   or stores them.
// - Whether media is relayed is read from the live connection (getStats: the
//   selected candidate pair's local candidate), not inferred from settings.
// - Mid-call, either side may ask the server to move the call to the relay (or back
//   to direct where both users allow it). The server decides and hands both devices
//   their new ICE servers and policy; the one that asked then renegotiates
//   (call.reoffer / call.reanswer): see "switching the transport" below. The call
//   and its verification words go on.
// - Fail fast and honestly: a relayed side that gathers no relay candidate within
//   RELAY_GATHER_MS is told at once (the caller before anyone rings), with Try
//   again; the server hears "call.connected" once media is up, so only a call that
//   connected is recorded as a conversation; a connection that drops mid-call is
//   restarted through the relay (the switch above) before the call is given up.

import { ApiError } from "./api.js";
import { TRANSITIONS } from "./callstates.js";
import * as text from "./calltext.js";
import { getCallMedia, MediaAccessError } from "./media.js";
import { Ringer } from "./ringing.js";
import { verificationCode } from "./verification.js";

/** @import { Api } from "./api.js" */
/** @import { EventSocket } from "./events.js" */
/** @import { CallState } from "./callstates.js" */
/** @import { User, Media, IceServer, IcePolicy, WireCandidate, EndReason, CallEvent, ErrorEvent, CallIncomingEvent, CallTransportEvent } from "./types.js" */

// Call states (CallState) and the moves between them come from one table shared with the
// Python client (ringfence/wire/call_states.py, generated into callstates.js).
// new: asking for the camera and making the offer; ringing: the offer is out;
// incoming: ringing here; accepting: the user said yes, setting up;
// connecting: SDP exchanged, ICE at work; connected: media flows. (This client
// replaces a dropped connection without leaving "connected", so it never uses
// "reconnecting".)

/** @typedef {"relay" | "direct"} Route */

/**
 * A transport switch in flight. asked: call.transport is out, the server has not
 * answered; negotiating: the server agreed, the offer/answer is under way; settling:
 * negotiated, waiting for the new route to carry the call.
 * @typedef {"asked" | "negotiating" | "settling"} SwitchPhase
 */

const CONNECT_TIMEOUT_MS = 30000;
// A TURN server that has not given a relay candidate by then is unreachable or refused
// the credentials (Chromium itself keeps trying for about 40 s before error 701).
const RELAY_GATHER_MS = 5000;
// Mid-call, "disconnected" for this long (the callee waits longer, so that usually
// only one side asks) means the path is gone: restart it through the relay.
const DROP_RESTART_MS = 2000;
const CALLEE_RESTART_DELAY_MS = 2000;
// A restart that has not carried the call by then has failed: the call ends.
const RECOVERY_MS = 20000;
// A restart refused because a switch was under way is asked for again after this long.
const RESTART_RETRY_MS = 4000;
const SWITCH_REPLY_MS = 10000; // the server answers a call.transport with this long
const SWITCH_SETTLE_MS = 30000; // from its answer to the new route being in use

const STATS_EVERY_MS = 1000;
const GONE_GRACE_MS = 3000;
// While connecting, ICE may report "failed" because every pair tried so far failed
// (the relay refuses to reach a peer's host candidate) although the peer's relay
// candidates are still on their way; it recovers when they arrive.
const EARLY_FAILURE_GRACE_MS = 5000;

export class CallSession {
  /**
   * @param {object} init
   * @param {"outgoing" | "incoming"} init.direction
   * @param {string} init.callId
   * @param {Pick<User, "username" | "display_name">} init.peer
   * @param {Media} init.media
   * @param {IceServer[]} init.iceServers
   * @param {IcePolicy} init.policy
   * @param {boolean} init.directAllowed Both users' settings allow a direct connection (callee: from call.incoming).
   * @param {string | null} init.offerSdp The caller's offer (incoming calls).
   * @param {EventSocket} init.events
   * @param {() => void} init.onChange
   */
  constructor(init) {
    this.direction = init.direction;
    this.callId = init.callId;
    this.peer = init.peer;
    this.media = init.media;
    this.iceServers = init.iceServers;
    this.policy = init.policy;
    /** Whether the server would let this call switch to direct (both users allow it). */
    this.directAllowed = init.directAllowed;
    this.offerSdp = init.offerSdp;
    this.events = init.events;
    this.onChange = init.onChange;
    /** @type {CallState} */
    this.state = init.direction === "incoming" ? "incoming" : "new";
    /** @type {EndReason | "local" | null} */
    this.endReason = null;
    /** @type {string | null} A problem to show (denied camera, refused setup...). */
    this.error = null;
    /** @type {string | null} Something worth knowing (audio only...). */
    this.notice = null;
    /** @type {string | null} A transient connection problem during the call. */
    this.warning = null;
    /** @type {Route | null} */
    this.route = null;
    /** @type {Route | null} The transport a switch in flight is moving the call to. */
    this.switching = null;
    /** @type {SwitchPhase | null} */
    this.switchPhase = null;
    /**
     * @type {string | null} What became of the last switch, in one sentence: why it
     * didn't happen, or that the other person moved the call.
     */
    this.switchNotice = null;
    /** Whether the switch in flight was asked for by the other person (or their settings). */
    this.switchByPeer = false;
    /** @type {number | undefined} */
    this.switchTimer = undefined;
    /**
     * An ICE restart is under way and the peer's new description is not set yet:
     * remote candidates (of the new ICE generation) wait for it.
     */
    this.awaitingRemote = false;
    /** @type {RTCCertificate | null} The DTLS certificate of every connection of this call. */
    this.certificate = null;
    /** @type {RTCPeerConnection | null} The connection a switch in flight moves the call to. */
    this.nextPc = null;
    /** @type {MediaStream | null} What the next connection receives. */
    this.nextStream = null;
    /** @type {RTCIceCandidateInit[]} remote candidates waiting for the next connection's remote description */
    this.nextCandidates = [];
    this.muted = false;
    this.cameraOff = false;
    /** Another tab of this browser rings for this call (this one shows it silently). */
    this.ringsElsewhere = false;
    /** The other person's microphone and camera, as their last call.media said. */
    this.peerAudio = true;
    this.peerVideo = init.media === "video";
    /** @type {number | null} */
    this.connectedAt = null;
    /** The connection dropped mid-call and is being restarted through the relay. */
    this.recovering = false;
    /** @type {number | undefined} */
    this.dropTimer = undefined;
    /** @type {number | undefined} */
    this.recoveryTimer = undefined;
    /** @type {number | undefined} */
    this.reaskTimer = undefined;
    /** A relay candidate was gathered on the call's first connection. */
    this.relayGathered = false;
    /** @type {((ok: boolean) => void) | null} Settles the wait for a relay candidate. */
    this.relayWait = null;
    /** The call ended after the answer but before media ever connected. */
    this.didntConnect = false;
    /** The call ended because the connection failed: offer to place it again. */
    this.retryable = false;
    /** The user ended the call themselves (nothing to retry). */
    this.endedByUser = false;
    /**
     * The five words both people read to each other (docs/verification.md), from the
     * descriptions this side set; null until connected, or if the SDPs carry no
     * fingerprint.
     * @type {string[] | null}
     */
    this.verification = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {MediaStream | null} */
    this.localStream = null;
    this.remoteStream = new MediaStream();
    /** @type {WireCandidate[]} local candidates waiting for our offer/answer to go out */
    this.localCandidates = [];
    this.signaled = false;
    /** @type {RTCIceCandidateInit[]} remote candidates waiting for the remote description */
    this.remoteCandidates = [];
    /** @type {number | undefined} */
    this.connectTimer = undefined;
    /** @type {number | undefined} */
    this.statsTimer = undefined;
    /** @type {number | undefined} */
    this.goneTimer = undefined;
    /** @type {number | undefined} */
    this.failTimer = undefined;
  }

  get peerName() {
    return this.peer.display_name || this.peer.username;
  }

  get active() {
    return this.state !== "ended";
  }

  get hasLocalVideo() {
    return (this.localStream?.getVideoTracks().length ?? 0) > 0;
  }

  get hasRemoteVideo() {
    // A camera turned off sends black frames: its "off" comes by call.media instead.
    return this.peerVideo && this.remoteStream.getVideoTracks().some((t) => t.readyState === "live" && !t.muted);
  }

  /**
   * The state now: unlike reading `state` directly, this does not let the type
   * checker assume it is unchanged across an await.
   * @param {CallState} state
   */
  is(state) {
    return this.state === state;
  }

  /** @param {CallState} next */
  setState(next) {
    if (!TRANSITIONS[this.state].includes(next)) {
      throw new Error(`call ${this.callId}: illegal transition ${this.state} -> ${next}`);
    }
    console.info(`call ${this.callId}: ${this.state} -> ${next}`);
    this.state = next;
    if (next === "connected" && (this.muted || this.cameraOff)) this.sendMediaState();
    this.onChange();
  }

  // --- outgoing -------------------------------------------------------------------

  /** Get the camera/microphone, make the offer and send it: the callee starts ringing. */
  async place() {
    let media;
    try {
      media = await getCallMedia(this.media);
    } catch (error) {
      this.abort(error instanceof MediaAccessError ? error.message : text.MEDIA_UNUSABLE);
      return;
    }
    if (!this.active) {
      stopTracks(media.stream);
      return;
    }
    this.localStream = media.stream;
    this.notice = media.notice;
    try {
      const pc = await this.createPeerConnection();
      for (const track of media.stream.getTracks()) pc.addTrack(track, media.stream);
      if (this.media === "video" && !this.hasLocalVideo) pc.addTransceiver("video", { direction: "recvonly" });
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (!this.active) return;
      // A relayed side connects through the relay or not at all: nobody rings until
      // the relay has answered (a few milliseconds when it works).
      if (!(await this.relayReachable(pc))) {
        this.relayUnreachable();
        return;
      }
      if (!this.active) return;
      // The offer as created: the candidates gathered meanwhile follow one by one.
      this.events.send({ type: "call.offer", call_id: this.callId, sdp: offer.sdp ?? "" });
      this.releaseLocalCandidates();
      this.setState("ringing");
    } catch (error) {
      this.abort(text.setupFailed(error));
    }
  }

  /**
   * @param {string} sdp
   * @param {boolean} directAllowed
   */
  async onAnswer(sdp, directAllowed) {
    if (this.direction !== "outgoing" || this.state !== "ringing" || !this.pc) return;
    this.directAllowed = directAllowed;
    this.setState("connecting");
    this.startConnectTimer();
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp });
      await this.releaseRemoteCandidates();
    } catch (error) {
      this.abort(text.answerUnusable(error));
    }
  }

  // --- incoming -------------------------------------------------------------------

  /** The user pressed Accept: only now do camera, microphone and network come in. */
  async accept() {
    if (this.state !== "incoming" || !this.offerSdp) return;
    this.error = null;
    this.setState("accepting");
    let media;
    try {
      media = await getCallMedia(this.media);
    } catch (error) {
      // Still ringing: the user can fix the permission and accept again, or decline.
      this.error = error instanceof MediaAccessError ? error.message : text.MEDIA_UNUSABLE;
      if (this.is("accepting")) this.setState("incoming");
      return;
    }
    if (!this.is("accepting")) {
      stopTracks(media.stream); // answered elsewhere or cancelled while we waited
      return;
    }
    this.localStream = media.stream;
    this.notice = media.notice;
    try {
      const pc = await this.createPeerConnection();
      await pc.setRemoteDescription({ type: "offer", sdp: this.offerSdp });
      this.offerSdp = null;
      for (const track of media.stream.getTracks()) pc.addTrack(track, media.stream);
      await pc.setLocalDescription(await pc.createAnswer());
      if (!this.is("accepting")) return;
      this.events.send({ type: "call.answer", call_id: this.callId, sdp: pc.localDescription?.sdp ?? "" });
      this.releaseLocalCandidates();
      this.setState("connecting");
      this.startConnectTimer();
      await this.releaseRemoteCandidates();
    } catch (error) {
      this.abort(text.answerFailed(error));
      return;
    }
    // Answered (so the call is recorded as answered), but without the relay it cannot
    // connect: say so now rather than after the connect timeout.
    const pc = this.pc;
    if (pc && !(await this.relayReachable(pc)) && this.is("connecting")) this.relayUnreachable();
  }

  decline() {
    if (this.state !== "incoming" && this.state !== "accepting") return;
    this.events.send({ type: "call.reject", call_id: this.callId });
    this.error = null; // the user chose to decline: an earlier accept problem is moot
    this.end("rejected");
  }

  // --- both -----------------------------------------------------------------------

  hangup() {
    if (!this.active) return;
    if (this.state === "incoming") {
      this.decline();
      return;
    }
    this.events.send({ type: "call.hangup", call_id: this.callId });
    this.endedByUser = true;
    this.end(this.direction === "outgoing" && this.state !== "connected" && this.state !== "connecting" ? "cancelled" : "hangup");
  }

  toggleMute() {
    this.muted = !this.muted;
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = !this.muted;
    this.sendMediaState();
    this.onChange();
  }

  toggleCamera() {
    this.cameraOff = !this.cameraOff;
    for (const track of this.localStream?.getVideoTracks() ?? []) track.enabled = !this.cameraOff;
    this.sendMediaState();
    this.onChange();
  }

  /**
   * Tell the other device whether this side's microphone and camera are on, so it can
   * show "Muted" or "Camera off" rather than silence or a black picture. Sent once
   * media connects (if anything is off) and on every change after that; the server
   * takes it from the in-call device of an answered call only.
   */
  sendMediaState() {
    if (this.state !== "connected") return;
    const video = this.hasLocalVideo && !this.cameraOff;
    this.events.send({ type: "call.media", call_id: this.callId, audio: !this.muted, video });
  }

  /** @param {CallEvent} event */
  async onSignal(event) {
    switch (event.type) {
      case "call.answer":
        await this.onAnswer(event.sdp, event.direct_allowed === true);
        break;
      case "call.transport":
        await this.onTransport(event);
        break;
      case "call.reoffer":
        await this.onReoffer(event.sdp);
        break;
      case "call.reanswer":
        await this.onReanswer(event.sdp);
        break;
      case "call.candidate":
        await this.onRemoteCandidate(event.candidate);
        break;
      case "call.ended":
        this.end(event.reason);
        break;
      case "call.incoming":
        break; // the same call ringing again after a reconnect
      case "call.media":
        this.peerAudio = event.audio;
        this.peerVideo = event.video;
        this.onChange();
        break;
    }
  }

  /** @param {ErrorEvent} event */
  onServerError(event) {
    if (this.switchPhase === "asked" && this.active && this.recovering && Object.hasOwn(text.SWITCH_REFUSED, event.error)) {
      const ours = this.switching === "relay";
      clearTimeout(this.switchTimer);
      this.switching = null;
      this.switchPhase = null;
      if (event.error === "call_rate_limited") {
        this.recoveryFailed(text.DROPPED_TOO_OFTEN);
      } else if (event.error === "call_state") {
        // A switch is already under way: usually the other side restarting the
        // connection too, whose offer comes next. If nothing comes of it (a switch left
        // unfinished blocks the next one on the server for a while), ask again.
        clearTimeout(this.reaskTimer);
        this.reaskTimer = window.setTimeout(() => {
          if (this.recovering && this.active && this.switching === null && !this.nextPc && !this.awaitingRemote) {
            this.askRestart();
          }
        }, RESTART_RETRY_MS);
        this.onChange();
      } else if (!ours) {
        this.askRestart(); // it was the user's own switch to direct that was refused
        this.onChange();
      }
      return;
    }
    // A refused call.transport: the call goes on as it was; say why in one sentence.
    if (this.switchPhase === "asked" && this.active && Object.hasOwn(text.SWITCH_REFUSED, event.error)) {
      this.stopSwitch(text.SWITCH_REFUSED[event.error] ?? null);
      return;
    }
    // Before media flows, a refused offer or answer leaves nothing to go on with;
    // once connected, a refused stray frame does not hurt the call.
    if (this.state === "connected" || this.state === "ended" || this.state === "incoming") return;
    if (event.error === "call_not_found" || event.error === "call_state") {
      // Usually the call has just ended and a late frame of ours (a trickled
      // candidate) crossed the server's call.ended, which says why: wait for it.
      if (this.goneTimer === undefined) {
        this.goneTimer = window.setTimeout(() => this.abort(text.CALL_GONE), GONE_GRACE_MS);
      }
      return;
    }
    this.abort(text.setupRefused(event.detail));
  }

  /**
   * End locally after a problem, telling the server (best effort) so the other side
   * stops ringing or waiting.
   * @param {string} message
   */
  abort(message) {
    if (!this.active) return;
    this.events.send({ type: "call.hangup", call_id: this.callId });
    this.error = message;
    this.end("local");
  }

  /** @param {EndReason | "local"} reason */
  end(reason) {
    if (!this.active) return;
    this.endReason = reason;
    if (this.state === "connecting" && (reason === "hangup" || reason === "failed" || reason === "local")) {
      // Answered, but media never flowed: whichever side gave up, it didn't connect.
      this.didntConnect = true;
      if (!this.endedByUser) this.retryable = true;
    }
    clearTimeout(this.connectTimer);
    clearTimeout(this.goneTimer);
    clearTimeout(this.failTimer);
    clearTimeout(this.switchTimer);
    clearTimeout(this.dropTimer);
    clearTimeout(this.recoveryTimer);
    clearTimeout(this.reaskTimer);
    this.relayWait?.(false);
    // Whatever was being tried is over: the error (if any) says how it ended.
    this.recovering = false;
    this.warning = null;
    clearInterval(this.statsTimer);
    stopTracks(this.localStream);
    this.pc?.close();
    this.pc = null;
    this.dropNext();
    this.setState("ended");
  }

  // --- switching the transport mid-call ---------------------------------------------
  //
  // To direct: an ICE restart of the running connection. The new direct pairs
  // outrank the relay pair, so the browser checks them and moves over.
  //
  // To the relay, an ICE restart is not enough: the working direct pair outranks
  // every relay pair, so the browser keeps using it (libwebrtc prunes the relay pairs
  // without checking them, and does not revive them when the direct pair dies). The
  // device that asked therefore builds a second peer connection under the relay
  // policy, with the same DTLS certificate (so the fingerprints, and the
  // verification words, stay the same), and sends its offer as the call.reoffer. The
  // media moves over once it connects; then the old connection is closed, and the
  // direct path with it.
  // Switching back to direct works the same way, and so does every client: the
  // Python client does exactly this, so a browser and a Python client can switch a
  // call between them either way.

  /**
   * Ask the server to move this call to the relay ("relay": hide my address) or back
   * to a direct connection. The server decides; its call.transport (or a refusal)
   * follows.
   * @param {Route} transport
   */
  requestTransport(transport) {
    if (!(this.is("connected") || this.is("connecting")) || !this.pc || this.switching !== null) return;
    this.switchNotice = null;
    this.switching = transport;
    this.switchPhase = "asked";
    this.armSwitchTimer(SWITCH_REPLY_MS);
    this.events.send({ type: "call.transport", call_id: this.callId, transport });
    this.onChange();
  }

  /**
   * The server switched the call's transport: take the new ICE servers and policy,
   * and if this device asked, make the offer of the connection that replaces this one.
   * @param {CallTransportEvent} event
   */
  async onTransport(event) {
    const pc = this.pc;
    if (!pc || !(this.is("connected") || this.is("connecting"))) return;
    this.dropNext(); // an unfinished earlier switch gives way to this one
    this.directAllowed = event.direct_allowed === true;
    this.iceServers = event.ice_servers;
    this.policy = event.ice_transport_policy;
    this.switching = event.transport;
    this.switchByPeer = !event.restart;
    this.switchPhase = "negotiating";
    this.switchNotice = null;
    this.armSwitchTimer(SWITCH_SETTLE_MS);
    this.onChange();
    if (!event.restart) {
      // The other device offers the new connection; candidates that arrive before its
      // offer are its new connection's, and wait for it.
      this.awaitingRemote = true;
      return;
    }
    const next = this.startNext();
    try {
      for (const track of this.localStream?.getTracks() ?? []) next.addTrack(track, /** @type {MediaStream} */ (this.localStream));
      // Receive whatever the call receives now, camera or not on this side.
      const sending = new Set(next.getTransceivers().map((t) => t.receiver.track.kind));
      for (const transceiver of pc.getTransceivers()) {
        const kind = transceiver.receiver.track.kind;
        if (transceiver.currentDirection !== "stopped" && !sending.has(kind)) {
          next.addTransceiver(kind, { direction: "recvonly" });
          sending.add(kind);
        }
      }
      await next.setLocalDescription(await next.createOffer());
      if (next !== this.nextPc || !this.active) return;
      this.events.send({ type: "call.reoffer", call_id: this.callId, sdp: next.localDescription?.sdp ?? "" });
      this.releaseLocalCandidates();
    } catch (error) {
      this.switchFailed(text.switchBroke(error));
    }
  }

  /**
   * The other device's offer for the switch: the connection that replaces this one,
   * answered with a new connection of ours.
   * @param {string} sdp
   */
  async onReoffer(sdp) {
    const pc = this.pc;
    if (!pc || !(this.is("connected") || this.is("connecting"))) return;
    this.dropNext();
    const next = this.startNext();
    // Anything held since the call.transport came from the new connection over there.
    this.nextCandidates = this.remoteCandidates;
    this.remoteCandidates = [];
    this.awaitingRemote = false;
    try {
      await next.setRemoteDescription({ type: "offer", sdp });
      for (const track of this.localStream?.getTracks() ?? []) next.addTrack(track, /** @type {MediaStream} */ (this.localStream));
      await next.setLocalDescription(await next.createAnswer());
      if (next !== this.nextPc || !this.active) return;
      this.events.send({ type: "call.reanswer", call_id: this.callId, sdp: next.localDescription?.sdp ?? "" });
      this.releaseLocalCandidates();
      await this.releaseNextCandidates(next);
      this.negotiated();
    } catch (error) {
      this.switchFailed(text.switchBroke(error));
    }
  }

  /**
   * The answer to this device's offer for the switch.
   * @param {string} sdp
   */
  async onReanswer(sdp) {
    const next = this.nextPc;
    const pc = this.pc;
    if (!this.active || !pc) return;
    try {
      if (!next || next.signalingState !== "have-local-offer") return;
      await next.setRemoteDescription({ type: "answer", sdp });
      await this.releaseNextCandidates(next);
      this.negotiated();
    } catch (error) {
      this.switchFailed(text.switchBroke(error));
    }
  }

  /** A second connection for the switch, under the new ICE configuration. */
  startNext() {
    const next = this.newPeerConnection();
    this.nextPc = next;
    this.nextStream = new MediaStream();
    this.nextCandidates = [];
    this.signaled = false; // its candidates go out after its offer or answer
    return next;
  }

  /**
   * Offer and answer are set: the switch is done once the new connection carries the
   * call and its route is the one asked for.
   */
  negotiated() {
    if (!this.active) return;
    if (this.switching !== null) this.switchPhase = "settling";
    this.onChange();
  }

  /**
   * The new connection is up: the call moves to it and the old one is closed.
   * @param {RTCPeerConnection} next
   */
  promoteNext(next) {
    if (next !== this.nextPc || !this.active) return;
    const old = this.pc;
    this.pc = next;
    this.nextPc = null;
    this.remoteStream = this.nextStream ?? new MediaStream();
    this.nextStream = null;
    this.remoteCandidates = [];
    this.nextCandidates = [];
    old?.close();
    console.info(`call ${this.callId}: moved to the new connection`);
    this.warning = null;
    if (this.recovering) this.recovered();
    this.onChange();
    // Same certificates, so the same words; derived again from what is set now.
    void this.readVerification();
    void this.readRoute();
  }

  /** Close a replacement connection that will not be used. */
  dropNext() {
    const next = this.nextPc;
    if (!next) return;
    this.nextPc = null;
    this.nextStream = null;
    this.nextCandidates = [];
    // Its candidates not yet sent never will be; the running connection's went long ago.
    this.localCandidates = [];
    this.signaled = true;
    next.close();
  }

  /** @param {number} ms */
  armSwitchTimer(ms) {
    clearTimeout(this.switchTimer);
    this.switchTimer = window.setTimeout(() => this.onSwitchTimeout(), ms);
  }

  onSwitchTimeout() {
    if (!this.active || this.switching === null) return;
    if (this.switchPhase === "settling" && !this.nextPc) {
      // On the new connection, but the route never became what was asked: the badge
      // shows the truth; say it in words too.
      this.stopSwitch(text.routeNotReached(this.switching));
      return;
    }
    this.switchFailed(text.SWITCH_TIMED_OUT);
  }

  /**
   * The switch went wrong: the call goes on over the connection it had.
   * @param {string} message
   */
  switchFailed(message) {
    if (!this.active) return;
    console.warn(`call ${this.callId}: transport switch failed`);
    if (this.recovering) {
      // The restart of a dropped connection was the last try.
      this.dropNext();
      this.recoveryFailed(text.RESTART_FAILED);
      return;
    }
    this.dropNext();
    const pc = this.pc;
    if (pc?.connectionState === "failed") {
      // The old path went away meanwhile (the other side moved on): nothing is left.
      this.abort(text.LOST_WHILE_SWITCHING);
      return;
    }
    if (pc?.signalingState === "have-remote-offer") {
      pc.setRemoteDescription({ type: "rollback" }).catch(() => undefined);
    } else if (pc?.signalingState === "have-local-offer") {
      pc.setLocalDescription({ type: "rollback" }).catch(() => undefined);
    }
    this.awaitingRemote = false;
    this.releaseLocalCandidates();
    void this.releaseRemoteCandidates();
    this.stopSwitch(message);
  }

  /** @param {string | null} notice */
  stopSwitch(notice) {
    clearTimeout(this.switchTimer);
    this.switchTimer = undefined;
    this.switching = null;
    this.switchPhase = null;
    this.switchNotice = notice;
    this.onChange();
  }

  /** The ICE part of the configuration: exactly what the server handed out last. */
  iceConfiguration() {
    return {
      iceServers: /** @type {RTCIceServer[]} */ (this.iceServers),
      iceTransportPolicy: this.policy,
    };
  }

  // --- the peer connection --------------------------------------------------------

  /** The call's first connection. */
  async createPeerConnection() {
    if (!this.certificate) {
      try {
        // One certificate for every connection of this call: a transport switch
        // keeps the DTLS fingerprint, and with it the verification words.
        /** @type {EcKeyGenParams} */
        const algorithm = { name: "ECDSA", namedCurve: "P-256" };
        this.certificate = await RTCPeerConnection.generateCertificate(algorithm);
      } catch (error) {
        console.warn(`call ${this.callId}: no certificate of our own (${text.errorName(error)})`);
      }
      if (!this.active) throw new Error("the call ended meanwhile");
    }
    const pc = this.newPeerConnection();
    this.pc = pc;
    return pc;
  }

  newPeerConnection() {
    /** @type {RTCConfiguration} */
    const config = {
      // Exactly what the server gave: its TURN relay and its transport policy.
      ...this.iceConfiguration(),
      // One transport for audio and video: one relay allocation, fewer candidates.
      bundlePolicy: "max-bundle",
    };
    if (this.certificate) config.certificates = [this.certificate];
    const pc = new RTCPeerConnection(config);
    pc.addEventListener("icecandidate", (event) => {
      if ((pc !== this.pc && pc !== this.nextPc) || !event.candidate || !event.candidate.candidate) return;
      if (pc === this.pc && event.candidate.type === "relay" && !this.relayGathered) {
        this.relayGathered = true;
        this.relayWait?.(true);
      }
      const json = event.candidate.toJSON();
      /** @type {WireCandidate} */
      const candidate = { candidate: json.candidate ?? "" };
      if (json.sdpMid !== null && json.sdpMid !== undefined) candidate.sdpMid = json.sdpMid;
      if (json.sdpMLineIndex !== null && json.sdpMLineIndex !== undefined) candidate.sdpMLineIndex = json.sdpMLineIndex;
      if (json.usernameFragment) candidate.usernameFragment = json.usernameFragment;
      if (this.signaled) this.sendCandidate(candidate);
      else this.localCandidates.push(candidate);
    });
    pc.addEventListener("track", (event) => {
      const stream = pc === this.pc ? this.remoteStream : pc === this.nextPc ? this.nextStream : null;
      if (!stream) return;
      const track = event.track;
      stream.addTrack(track);
      track.addEventListener("mute", () => this.onChange());
      track.addEventListener("unmute", () => this.onChange());
      track.addEventListener("ended", () => this.onChange());
      this.onChange();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) {
        // While a new connection is being set up, the other side may close the old
        // one as soon as its own new one is up: that is the switch, not a failure.
        if (this.nextPc && (pc.connectionState === "disconnected" || pc.connectionState === "failed")) return;
        this.onConnectionState(pc.connectionState);
      } else if (pc === this.nextPc) {
        if (pc.connectionState === "connected") this.promoteNext(pc);
        else if (pc.connectionState === "failed") this.switchFailed(text.SWITCH_NEXT_FAILED);
      }
    });
    return pc;
  }

  /** @param {RTCPeerConnectionState} state */
  onConnectionState(state) {
    if (state !== "failed") {
      clearTimeout(this.failTimer);
      this.failTimer = undefined;
    }
    if (state !== "disconnected") {
      clearTimeout(this.dropTimer);
      this.dropTimer = undefined;
    }
    if (state === "connected") {
      if (!this.recovering) this.warning = null;
      if (this.state === "connecting") {
        clearTimeout(this.connectTimer);
        this.connectedAt = Date.now();
        this.statsTimer = window.setInterval(() => void this.readRoute(), STATS_EVERY_MS);
        void this.readRoute();
        this.setState("connected");
        // Only now does the call count as a conversation, in both people's history.
        this.events.send({ type: "call.connected", call_id: this.callId });
        void this.readVerification();
      } else if (this.recovering && this.switching === null && !this.nextPc && !this.awaitingRemote) {
        this.recovered(); // the old path came back before any restart got going
      } else {
        this.onChange();
      }
    } else if (state === "disconnected" && this.state === "connected") {
      this.warning = text.INTERRUPTED;
      if (!this.recovering && this.dropTimer === undefined) {
        const wait = DROP_RESTART_MS + (this.direction === "incoming" ? CALLEE_RESTART_DELAY_MS : 0);
        this.dropTimer = window.setTimeout(() => {
          this.dropTimer = undefined;
          if (this.pc?.connectionState !== "connected") this.recover();
        }, wait);
      }
      this.onChange();
    } else if (state === "failed" && this.state === "connecting") {
      if (this.failTimer === undefined) {
        this.failTimer = window.setTimeout(() => {
          this.failTimer = undefined;
          if (this.is("connecting") && this.pc?.connectionState === "failed") {
            this.retryable = true;
            this.abort(text.RELAY_FAILED);
          }
        }, EARLY_FAILURE_GRACE_MS);
      }
    } else if (state === "failed" && this.state === "connected") {
      this.recover();
    }
  }

  startConnectTimer() {
    clearTimeout(this.connectTimer);
    this.connectTimer = window.setTimeout(() => {
      if (this.state === "connecting") {
        this.retryable = true;
        this.abort(text.CONNECT_TIMEOUT);
      }
    }, CONNECT_TIMEOUT_MS);
  }

  // --- failing fast, and recovering from a drop --------------------------------------

  /**
   * Whether this side can reach the relay: true once a relay candidate is gathered (at
   * once if this side may connect directly); false if none came within RELAY_GATHER_MS
   * or gathering finished without one (the relay refused the credentials).
   * @param {RTCPeerConnection} pc
   * @returns {Promise<boolean>}
   */
  relayReachable(pc) {
    if (this.policy !== "relay" || this.relayGathered) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onGathering = () => {
        if (pc.iceGatheringState === "complete") settle(this.relayGathered);
      };
      /** @param {boolean} ok */
      const settle = (ok) => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", onGathering);
        if (this.relayWait === settle) this.relayWait = null;
        resolve(ok);
      };
      const timer = window.setTimeout(() => settle(this.relayGathered), RELAY_GATHER_MS);
      pc.addEventListener("icegatheringstatechange", onGathering);
      this.relayWait = settle;
    });
  }

  relayUnreachable() {
    if (!this.active) return; // hung up while waiting
    console.warn(`call ${this.callId}: no relay candidate within ${RELAY_GATHER_MS} ms`);
    this.retryable = true;
    this.abort(text.RELAY_UNREACHABLE);
  }

  /**
   * The connection dropped mid-call (a network change, a relay hiccup): restart it
   * through the relay, as a switch to the relay does (a new connection with fresh
   * relay credentials and the same certificate). The call ends only if that fails.
   */
  recover() {
    if (!this.is("connected") || this.recovering) return;
    console.warn(`call ${this.callId}: the connection dropped; restarting it through the relay`);
    this.recovering = true;
    this.warning = text.RECONNECTING;
    clearTimeout(this.recoveryTimer);
    this.recoveryTimer = window.setTimeout(
      () => this.recoveryFailed(text.NOT_RESTORED),
      RECOVERY_MS,
    );
    // Unless a switch is under way already (the other side may be restarting it).
    if (this.switching === null && !this.nextPc && !this.awaitingRemote) this.askRestart();
    this.onChange();
  }

  /** Ask the server for a restart of the connection through the relay. */
  askRestart() {
    this.switchNotice = null;
    this.switching = "relay";
    this.switchPhase = "asked";
    this.armSwitchTimer(SWITCH_REPLY_MS);
    this.events.send({ type: "call.transport", call_id: this.callId, transport: "relay" });
  }

  recovered() {
    console.info(`call ${this.callId}: reconnected`);
    this.recovering = false;
    clearTimeout(this.recoveryTimer);
    clearTimeout(this.reaskTimer);
    this.recoveryTimer = undefined;
    this.warning = null;
    this.onChange();
  }

  /** @param {string} message */
  recoveryFailed(message) {
    if (!this.recovering || !this.active) return;
    this.retryable = true;
    this.abort(message);
  }

  /** @param {WireCandidate} candidate */
  sendCandidate(candidate) {
    this.events.send({ type: "call.candidate", call_id: this.callId, candidate });
  }

  releaseLocalCandidates() {
    this.signaled = true;
    const held = this.localCandidates;
    this.localCandidates = [];
    for (const candidate of held) this.sendCandidate(candidate);
  }

  /** @param {WireCandidate} candidate */
  async onRemoteCandidate(candidate) {
    if (!candidate.candidate) return; // end-of-candidates
    /** @type {RTCIceCandidateInit} */
    const init = { candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? null, sdpMLineIndex: candidate.sdpMLineIndex ?? null };
    if (candidate.usernameFragment) init.usernameFragment = candidate.usernameFragment;
    const next = this.nextPc;
    if (next) {
      // During a switch, the other side's candidates are for the new connection.
      if (next.remoteDescription) await addCandidate(next, init, this.callId);
      else this.nextCandidates.push(init);
      return;
    }
    if (!this.pc || !this.pc.remoteDescription || this.awaitingRemote) {
      this.remoteCandidates.push(init);
      return;
    }
    await this.addRemoteCandidate(init);
  }

  async releaseRemoteCandidates() {
    const held = this.remoteCandidates;
    this.remoteCandidates = [];
    for (const init of held) await this.addRemoteCandidate(init);
  }

  /** @param {RTCPeerConnection} next */
  async releaseNextCandidates(next) {
    const held = this.nextCandidates;
    this.nextCandidates = [];
    for (const init of held) await addCandidate(next, init, this.callId);
  }

  /** @param {RTCIceCandidateInit} init */
  async addRemoteCandidate(init) {
    if (this.pc) await addCandidate(this.pc, init, this.callId);
  }

  /** Derive the verification code from the local and remote descriptions as set here. */
  async readVerification() {
    const pc = this.pc;
    const local = pc?.localDescription?.sdp;
    const remote = pc?.remoteDescription?.sdp;
    if (!pc || !local || !remote) return;
    /** @type {string[] | null} */
    let code;
    try {
      code = await verificationCode(this.callId, local, remote);
    } catch (error) {
      console.warn(`call ${this.callId}: no verification code (${text.errorName(error)})`);
      return;
    }
    if (pc !== this.pc || !this.is("connected")) return;
    this.verification = code;
    this.onChange();
  }

  /** Read the live route from the selected candidate pair's local candidate. */
  async readRoute() {
    const pc = this.pc;
    if (!pc) return;
    /** @type {RTCStatsReport} */
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    if (pc !== this.pc) return;
    const route = selectedRoute(report);
    if (this.switchPhase === "settling" && !this.nextPc && route !== null && route === this.switching) {
      this.route = route;
      // The new pair carries the call: the switch is done. If the other person moved
      // it, say who did what, by name.
      this.stopSwitch(this.switchByPeer ? text.movedByPeer(this.peerName, route) : null);
    } else if (route !== this.route) {
      this.route = route;
      this.onChange();
    }
  }
}

/**
 * "relay" if media leaves this device through the TURN relay (the peer sees only
 * the relay's address), "direct" otherwise, or null before a pair is selected.
 * @param {RTCStatsReport} report
 * @returns {Route | null}
 */
export function selectedRoute(report) {
  /** @type {any} */
  let pair = null;
  report.forEach((/** @type {any} */ stat) => {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pair = report.get(stat.selectedCandidatePairId) ?? pair;
  });
  if (!pair) {
    report.forEach((/** @type {any} */ stat) => {
      if (stat.type === "candidate-pair" && (stat.selected || (stat.nominated && stat.state === "succeeded"))) pair = stat;
    });
  }
  if (!pair) return null;
  /** @type {any} */
  const local = report.get(pair.localCandidateId);
  if (!local || typeof local.candidateType !== "string") return null;
  return local.candidateType === "relay" ? "relay" : "direct";
}

/**
 * @param {RTCPeerConnection} pc
 * @param {RTCIceCandidateInit} init
 * @param {string} callId
 */
async function addCandidate(pc, init, callId) {
  try {
    await pc.addIceCandidate(init);
  } catch (error) {
    // One bad candidate must not end the call; ICE goes on with the others.
    console.warn(`call ${callId}: a remote candidate was not usable (${text.errorName(error)})`);
  }
}

/** @param {MediaStream | null} stream */
function stopTracks(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/**
 * Owns the one call this tab may be in, routes signaling to it, and rings.
 */
export class CallManager {
  /**
   * @param {Api} api
   * @param {EventSocket} events
   * @param {(session: CallSession | null) => void} onChange
   */
  constructor(api, events, onChange) {
    this.api = api;
    this.events = events;
    this.onChange = onChange;
    /** @type {CallSession | null} */
    this.current = null;
    this.ringer = new Ringer(() => {
      const session = this.current;
      const elsewhere = this.ringer.place === "elsewhere";
      if (!session || session.ringsElsewhere === elsewhere) return;
      session.ringsElsewhere = elsewhere;
      // Only a call still ringing shows it; an ended one has been drawn for good.
      if (session.state === "incoming") this.onChange(session);
    });
  }

  /** Where the ringing call rings: in this tab, or in another tab of this browser. */
  get ringPlace() {
    return this.ringer.place;
  }

  get busy() {
    return this.current !== null && this.current.active;
  }

  /**
   * Place a call. Throws ApiError when the server refuses (403 call_not_allowed,
   * 429) or cannot be reached; everything after that shows on the call screen.
   * @param {Pick<User, "username" | "display_name">} peer
   * @param {Media} media
   */
  async start(peer, media) {
    if (this.busy) throw new ApiError(409, "already_in_call", text.ALREADY_IN_CALL);
    const started = await this.api.startCall(peer.username, media);
    const session = new CallSession({
      direction: "outgoing",
      callId: started.call_id,
      peer,
      media,
      iceServers: started.ice_servers,
      policy: started.ice_transport_policy,
      directAllowed: false, // the callee's call.answer says
      offerSdp: null,
      events: this.events,
      onChange: () => this.changed(session),
    });
    this.adopt(session);
    await session.place();
  }

  /** @param {CallSession} session */
  adopt(session) {
    this.current = session;
    this.changed(session);
  }

  /** @param {CallSession} session */
  changed(session) {
    if (session !== this.current) return;
    this.ringer.update(session);
    this.onChange(session);
  }

  /**
   * "Try again" after a call that failed to connect: place it again, to the same
   * person with the same media (for a call that came in, that calls them back).
   * Throws ApiError like start(); the failed call's screen then stays.
   */
  async retry() {
    const ended = this.current;
    if (!ended || ended.active || !ended.retryable) return;
    this.current = null;
    try {
      await this.start(ended.peer, ended.media);
    } catch (error) {
      if (this.current === null) this.current = ended;
      throw error;
    }
  }

  /** Close the finished call's screen. */
  dismiss() {
    if (this.current && !this.current.active) {
      this.current = null;
      this.onChange(null);
    }
  }

  /** @param {CallEvent | ErrorEvent} event */
  handle(event) {
    if (event.type === "call.incoming") {
      this.onIncoming(event);
      return;
    }
    const session = this.current;
    if (!session || event.call_id !== session.callId) return;
    if (event.type === "error") session.onServerError(event);
    else void session.onSignal(event);
  }

  /** @param {CallIncomingEvent} event */
  onIncoming(event) {
    if (this.current?.callId === event.call_id) return; // rung again after a reconnect
    // Already in a call here: leave this one to the user's other devices (or it
    // shows as missed in the thread).
    if (this.busy) return;
    const session = new CallSession({
      direction: "incoming",
      callId: event.call_id,
      peer: event.from,
      media: event.media,
      iceServers: event.ice_servers,
      policy: event.ice_transport_policy,
      directAllowed: event.direct_allowed === true,
      offerSdp: event.sdp,
      events: this.events,
      onChange: () => this.changed(session),
    });
    this.adopt(session);
  }

  /**
   * The page is going away (reload, tab closed): hang up a call in progress so the
   * other side isn't left waiting for the server's grace period. A call still ringing
   * here is left alone: it goes on ringing on the user's other devices.
   */
  leave() {
    const session = this.current;
    if (session?.active && session.state !== "incoming") session.hangup();
  }

  /** Sign-out: end whatever is going on. */
  stop() {
    this.current?.hangup();
    this.ringer.stop();
    this.current = null;
  }
}
