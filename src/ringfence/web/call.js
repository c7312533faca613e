// 1:1 WebRTC calls over Ringfence's signaling: the call's states and what moves it
// between them. The peer connections are peer.js's, a mid-call transport switch is
// callswitch.js's, timing the connection and restarting a dropped one is
// callhealth.js's, and every sentence the call shows is calltext.js's.
//
// Rules this module keeps:
// - The peer connection is built from exactly the ice_servers and
//   ice_transport_policy the server handed out: the server decides whether this
//   side is relayed, never a client setting.
// - A ringing call touches nothing: no peer connection, no camera, no network
//   until the user presses Accept. The offer is only held in memory.
// - SDP and candidates are passed to the browser and forgotten; nothing here logs
//   or stores them.
// - Whether media is relayed is read from the live connection, not inferred from
//   settings.
// - Mid-call, either side may ask the server to move the call to the relay (or back
//   to direct where both users allow it); see callswitch.js. The call and its
//   verification words go on.
// - Fail fast and honestly: a relayed side that gathers no relay candidate within
//   RELAY_GATHER_MS is told at once (the caller before anyone rings), with Try
//   again; the server hears "call.connected" once media is up, so only a call that
//   connected is recorded as a conversation; a connection that drops mid-call is
//   restarted through the relay (a switch) before the call is given up.

import { TRANSITIONS } from "./callstates.js";
import { CallHealth } from "./callhealth.js";
import { TransportSwitch, isSwitchRefusal } from "./callswitch.js";
import * as text from "./calltext.js";
import { getCallMedia, MediaAccessError } from "./media.js";
import { PeerLink, RELAY_GATHER_MS } from "./peer.js";

/** @import { EventSocket } from "./events.js" */
/** @import { CallState } from "./callstates.js" */
/** @import { ClientCallFrame } from "./callframes.js" */
/** @import { Route } from "./peer.js" */
/** @import { User, Media, IceServer, IcePolicy, EndReason, CallEvent, ErrorEvent } from "./types.js" */

// Call states (CallState) and the moves between them come from one table shared with the
// Python client (ringfence/wire/call_states.py, generated into callstates.js).
// new: asking for the camera and making the offer; ringing: the offer is out;
// incoming: ringing here; accepting: the user said yes, setting up;
// connecting: SDP exchanged, ICE at work; connected: media flows. (This client
// replaces a dropped connection without leaving "connected", so it never uses
// "reconnecting".)

const STATS_EVERY_MS = 1000;
const GONE_GRACE_MS = 3000;

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
    this.offerSdp = init.offerSdp;
    this.events = init.events;
    this.onChange = init.onChange;
    /** The call's peer connections. */
    this.link = new PeerLink(init.callId, init.iceServers, init.policy, {
      sendCandidate: (candidate) => this.send({ type: "call.candidate", call_id: this.callId, candidate }),
      changed: () => this.onChange(),
      connectionState: (state) => this.health.onConnectionState(state),
      nextConnected: (next) => this.transport.promote(next),
      nextFailed: () => this.transport.nextFailed(),
    });
    /** Moves the call between relay and direct, and restarts a dropped connection. */
    this.transport = new TransportSwitch(init.callId, this.link, init.directAllowed, {
      active: () => this.active,
      inCall: () => this.is("connected") || this.is("connecting"),
      recovering: () => this.health.recovering,
      peerName: () => this.peerName,
      localStream: () => this.localStream,
      send: (frame) => this.send(frame),
      changed: () => this.onChange(),
      moved: () => this.onMoved(),
      recoveryFailed: (message) => this.health.recoveryFailed(message),
      abort: (message) => this.abort(message),
    });
    /** The connection over time: connecting in time, and restarting after a drop. */
    this.health = new CallHealth({
      callId: init.callId,
      direction: init.direction,
      is: (state) => this.is(state),
      active: () => this.active,
      linkState: () => this.link.pc?.connectionState,
      transport: this.transport,
      warn: (warning) => {
        this.warning = warning;
      },
      connected: () => this.connected(),
      fail: (message) => {
        this.retryable = true;
        this.abort(message);
      },
      changed: () => this.onChange(),
    });
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
    this.muted = false;
    this.cameraOff = false;
    /** Another tab of this browser rings for this call (this one shows it silently). */
    this.ringsElsewhere = false;
    /** The other person's microphone and camera, as their last call.media said. */
    this.peerAudio = true;
    this.peerVideo = init.media === "video";
    /** @type {number | null} */
    this.connectedAt = null;
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
    /** @type {MediaStream | null} */
    this.localStream = null;
    /** @type {number | undefined} */
    this.statsTimer = undefined;
    /** @type {number | undefined} */
    this.goneTimer = undefined;
  }

  /** The connection dropped mid-call and is being restarted through the relay. */
  get recovering() {
    return this.health.recovering;
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

  /** What the other person sends, as the connection carrying the call receives it. */
  get remoteStream() {
    return this.link.remoteStream;
  }

  /** The server's ICE transport policy for this device, as it handed it out last. */
  get policy() {
    return this.link.policy;
  }

  /** Whether the server would let this call switch to direct (both users allow it). */
  get directAllowed() {
    return this.transport.directAllowed;
  }

  /** The transport a switch in flight is moving the call to. */
  get switching() {
    return this.transport.target;
  }

  /** What became of the last switch, in one sentence (or null). */
  get switchNotice() {
    return this.transport.notice;
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

  /** @param {ClientCallFrame} frame */
  send(frame) {
    this.events.send(frame);
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
      const pc = await this.openConnection();
      this.link.attach(pc, media.stream);
      if (this.media === "video" && !this.hasLocalVideo) pc.addTransceiver("video", { direction: "recvonly" });
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (!this.active) return;
      // A relayed side connects through the relay or not at all: nobody rings until
      // the relay has answered (a few milliseconds when it works).
      if (!(await this.link.relayReachable(pc))) {
        this.relayUnreachable();
        return;
      }
      if (!this.active) return;
      // The offer as created: the candidates gathered meanwhile follow one by one.
      this.send({ type: "call.offer", call_id: this.callId, sdp: offer.sdp ?? "" });
      this.link.releaseLocalCandidates();
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
    const pc = this.link.pc;
    if (this.direction !== "outgoing" || this.state !== "ringing" || !pc) return;
    this.transport.directAllowed = directAllowed;
    this.setState("connecting");
    this.health.startConnectTimer();
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
      await this.link.releaseRemoteCandidates();
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
      const pc = await this.openConnection();
      await pc.setRemoteDescription({ type: "offer", sdp: this.offerSdp });
      this.offerSdp = null;
      this.link.attach(pc, media.stream);
      await pc.setLocalDescription(await pc.createAnswer());
      if (!this.is("accepting")) return;
      this.send({ type: "call.answer", call_id: this.callId, sdp: pc.localDescription?.sdp ?? "" });
      this.link.releaseLocalCandidates();
      this.setState("connecting");
      this.health.startConnectTimer();
      await this.link.releaseRemoteCandidates();
    } catch (error) {
      this.abort(text.answerFailed(error));
      return;
    }
    // Answered (so the call is recorded as answered), but without the relay it cannot
    // connect: say so now rather than after the connect timeout.
    const pc = this.link.pc;
    if (pc && !(await this.link.relayReachable(pc)) && this.is("connecting")) this.relayUnreachable();
  }

  decline() {
    if (this.state !== "incoming" && this.state !== "accepting") return;
    this.send({ type: "call.reject", call_id: this.callId });
    this.error = null; // the user chose to decline: an earlier accept problem is moot
    this.end("rejected");
  }

  // --- both -----------------------------------------------------------------------

  /** The call's first connection, with the certificate every later one shares. */
  async openConnection() {
    await this.link.makeCertificate();
    if (!this.active) throw new Error("the call ended meanwhile");
    return this.link.open();
  }

  hangup() {
    if (!this.active) return;
    if (this.state === "incoming") {
      this.decline();
      return;
    }
    this.send({ type: "call.hangup", call_id: this.callId });
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
    this.send({ type: "call.media", call_id: this.callId, audio: !this.muted, video });
  }

  /**
   * Ask the server to move this call to the relay ("relay": hide my address) or back
   * to a direct connection (callswitch.js).
   * @param {Route} transport
   */
  requestTransport(transport) {
    this.transport.request(transport);
  }

  /** @param {CallEvent} event */
  async onSignal(event) {
    switch (event.type) {
      case "call.answer":
        await this.onAnswer(event.sdp, event.direct_allowed === true);
        break;
      case "call.transport":
        await this.transport.onTransport(event);
        break;
      case "call.reoffer":
        await this.transport.onReoffer(event.sdp);
        break;
      case "call.reanswer":
        await this.transport.onReanswer(event.sdp);
        break;
      case "call.candidate":
        await this.link.addRemoteCandidate(event.candidate);
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
    const code = event.error;
    if (this.transport.asked && this.active && isSwitchRefusal(code)) {
      // A refused call.transport: the call goes on as it was.
      if (this.recovering) this.health.restartRefused(code);
      else this.transport.refused(code);
      return;
    }
    // Before media flows, a refused offer or answer leaves nothing to go on with;
    // once connected, a refused stray frame does not hurt the call.
    if (this.state === "connected" || this.state === "ended" || this.state === "incoming") return;
    if (code === "call_not_found" || code === "call_state") {
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
    this.send({ type: "call.hangup", call_id: this.callId });
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
    clearTimeout(this.goneTimer);
    this.health.stop();
    this.transport.cancel();
    this.warning = null;
    clearInterval(this.statsTimer);
    stopTracks(this.localStream);
    this.link.close();
    this.setState("ended");
  }

  // --- the connection --------------------------------------------------------------

  /** Media connected for the first time: the call is on. */
  connected() {
    this.connectedAt = Date.now();
    this.statsTimer = window.setInterval(() => void this.readRoute(), STATS_EVERY_MS);
    void this.readRoute();
    this.setState("connected");
    // Only now does the call count as a conversation, in both people's history.
    this.send({ type: "call.connected", call_id: this.callId });
    void this.readVerification();
  }

  /** A switch moved the call to its new connection. */
  onMoved() {
    this.warning = null;
    this.health.moved();
    this.onChange();
    // Same certificates, so the same words; derived again from what is set now.
    void this.readVerification();
    void this.readRoute();
  }

  /** Derive the verification code from the local and remote descriptions as set here. */
  async readVerification() {
    const code = await this.link.readVerification();
    if (code === undefined || !this.is("connected")) return;
    this.verification = code;
    this.onChange();
  }

  /** Read the live route from the connection that carries the call. */
  async readRoute() {
    const route = await this.link.readRoute();
    if (route === undefined) return;
    if (route !== null && this.transport.settlesOn(route)) {
      this.route = route;
      this.transport.finish(route);
    } else if (route !== this.route) {
      this.route = route;
      this.onChange();
    }
  }

  // --- failing fast ----------------------------------------------------------------

  relayUnreachable() {
    if (!this.active) return; // hung up while waiting
    console.warn(`call ${this.callId}: no relay candidate within ${RELAY_GATHER_MS} ms`);
    this.retryable = true;
    this.abort(text.RELAY_UNREACHABLE);
  }
}

/** @param {MediaStream | null} stream */
function stopTracks(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}
