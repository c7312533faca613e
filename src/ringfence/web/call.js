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

import { ApiError } from "./api.js";
import { getCallMedia, MediaAccessError } from "./media.js";
import { Ringtone } from "./ringtone.js";
import { verificationCode } from "./verification.js";

/** @import { Api } from "./api.js" */
/** @import { EventSocket } from "./events.js" */
/** @import { User, Media, IceServer, IcePolicy, WireCandidate, EndReason, CallEvent, ErrorEvent, CallIncomingEvent } from "./types.js" */

/**
 * starting: asking for the camera and making the offer; ringing: the offer is out;
 * incoming: ringing here; accepting: the user said yes, setting up;
 * connecting: SDP exchanged, ICE at work; connected: media flows.
 * @typedef {"starting" | "ringing" | "incoming" | "accepting" | "connecting" | "connected" | "ended"} CallState
 */

/** @typedef {"relay" | "direct"} Route */

const CONNECT_TIMEOUT_MS = 30000;
const STATS_EVERY_MS = 1000;
const GONE_GRACE_MS = 3000;

/** @type {Record<CallState, CallState[]>} */
const ALLOWED = {
  starting: ["ringing", "ended"],
  ringing: ["connecting", "ended"],
  incoming: ["accepting", "ended"],
  accepting: ["incoming", "connecting", "ended"],
  connecting: ["connected", "ended"],
  connected: ["ended"],
  ended: [],
};

export class CallSession {
  /**
   * @param {object} init
   * @param {"outgoing" | "incoming"} init.direction
   * @param {string} init.callId
   * @param {Pick<User, "username" | "display_name">} init.peer
   * @param {Media} init.media
   * @param {IceServer[]} init.iceServers
   * @param {IcePolicy} init.policy
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
    this.offerSdp = init.offerSdp;
    this.events = init.events;
    this.onChange = init.onChange;
    /** @type {CallState} */
    this.state = init.direction === "incoming" ? "incoming" : "starting";
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
    /** @type {number | null} */
    this.connectedAt = null;
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
    return this.remoteStream.getVideoTracks().some((t) => t.readyState === "live" && !t.muted);
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
    if (!ALLOWED[this.state].includes(next)) {
      throw new Error(`call ${this.callId}: illegal transition ${this.state} -> ${next}`);
    }
    console.info(`call ${this.callId}: ${this.state} -> ${next}`);
    this.state = next;
    this.onChange();
  }

  // --- outgoing -------------------------------------------------------------------

  /** Get the camera/microphone, make the offer and send it: the callee starts ringing. */
  async place() {
    let media;
    try {
      media = await getCallMedia(this.media);
    } catch (error) {
      this.abort(error instanceof MediaAccessError ? error.message : "Your camera or microphone couldn't be used.");
      return;
    }
    if (!this.active) {
      stopTracks(media.stream);
      return;
    }
    this.localStream = media.stream;
    this.notice = media.notice;
    try {
      const pc = this.createPeerConnection();
      for (const track of media.stream.getTracks()) pc.addTrack(track, media.stream);
      if (this.media === "video" && !this.hasLocalVideo) pc.addTransceiver("video", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      if (!this.active) return;
      this.events.send({ type: "call.offer", call_id: this.callId, sdp: pc.localDescription?.sdp ?? "" });
      this.releaseLocalCandidates();
      this.setState("ringing");
    } catch (error) {
      this.abort(`The call couldn't be set up (${errorName(error)}).`);
    }
  }

  /** @param {string} sdp */
  async onAnswer(sdp) {
    if (this.direction !== "outgoing" || this.state !== "ringing" || !this.pc) return;
    this.setState("connecting");
    this.startConnectTimer();
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp });
      await this.releaseRemoteCandidates();
    } catch (error) {
      this.abort(`The answer couldn't be used (${errorName(error)}).`);
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
      this.error = error instanceof MediaAccessError ? error.message : "Your camera or microphone couldn't be used.";
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
      const pc = this.createPeerConnection();
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
      this.abort(`The call couldn't be answered (${errorName(error)}).`);
    }
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
    this.end(this.direction === "outgoing" && this.state !== "connected" && this.state !== "connecting" ? "cancelled" : "hangup");
  }

  toggleMute() {
    this.muted = !this.muted;
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = !this.muted;
    this.onChange();
  }

  toggleCamera() {
    this.cameraOff = !this.cameraOff;
    for (const track of this.localStream?.getVideoTracks() ?? []) track.enabled = !this.cameraOff;
    this.onChange();
  }

  /** @param {CallEvent} event */
  async onSignal(event) {
    switch (event.type) {
      case "call.answer":
        await this.onAnswer(event.sdp);
        break;
      case "call.candidate":
        await this.onRemoteCandidate(event.candidate);
        break;
      case "call.ended":
        this.end(event.reason);
        break;
      case "call.incoming":
        break; // the same call ringing again after a reconnect
    }
  }

  /** @param {ErrorEvent} event */
  onServerError(event) {
    // Before media flows, a refused offer or answer leaves nothing to go on with;
    // once connected, a refused stray frame does not hurt the call.
    if (this.state === "connected" || this.state === "ended" || this.state === "incoming") return;
    if (event.error === "call_not_found" || event.error === "call_state") {
      // Usually the call has just ended and a late frame of ours (a trickled
      // candidate) crossed the server's call.ended, which says why: wait for it.
      if (this.goneTimer === undefined) {
        this.goneTimer = window.setTimeout(() => this.abort("This call is no longer available."), GONE_GRACE_MS);
      }
      return;
    }
    this.abort(`The server refused the call setup: ${event.detail}`);
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
    clearTimeout(this.connectTimer);
    clearTimeout(this.goneTimer);
    clearInterval(this.statsTimer);
    stopTracks(this.localStream);
    this.pc?.close();
    this.pc = null;
    this.setState("ended");
  }

  // --- the peer connection --------------------------------------------------------

  createPeerConnection() {
    const pc = new RTCPeerConnection({
      // Exactly what the server gave: its TURN relay and its transport policy.
      iceServers: /** @type {RTCIceServer[]} */ (this.iceServers),
      iceTransportPolicy: this.policy,
      // One transport for audio and video: one relay allocation, fewer candidates.
      bundlePolicy: "max-bundle",
    });
    this.pc = pc;
    pc.addEventListener("icecandidate", (event) => {
      if (pc !== this.pc || !event.candidate || !event.candidate.candidate) return;
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
      if (pc !== this.pc) return;
      const track = event.track;
      this.remoteStream.addTrack(track);
      track.addEventListener("mute", () => this.onChange());
      track.addEventListener("unmute", () => this.onChange());
      track.addEventListener("ended", () => this.onChange());
      this.onChange();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      this.onConnectionState(pc.connectionState);
    });
    return pc;
  }

  /** @param {RTCPeerConnectionState} state */
  onConnectionState(state) {
    if (state === "connected") {
      this.warning = null;
      if (this.state === "connecting") {
        clearTimeout(this.connectTimer);
        this.connectedAt = Date.now();
        this.statsTimer = window.setInterval(() => void this.readRoute(), STATS_EVERY_MS);
        void this.readRoute();
        this.setState("connected");
        void this.readVerification();
      } else {
        this.onChange();
      }
    } else if (state === "disconnected" && this.state === "connected") {
      this.warning = "Connection interrupted. Trying to get it back…";
      this.onChange();
    } else if (state === "failed" && this.active) {
      this.abort("The call was lost: the connection to the relay failed. Check your network and try again.");
    }
  }

  startConnectTimer() {
    clearTimeout(this.connectTimer);
    this.connectTimer = window.setTimeout(() => {
      if (this.state === "connecting") {
        this.abort("The call couldn't connect. Your network may be blocking the relay server.");
      }
    }, CONNECT_TIMEOUT_MS);
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
    if (!this.pc || !this.pc.remoteDescription) {
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

  /** @param {RTCIceCandidateInit} init */
  async addRemoteCandidate(init) {
    try {
      await this.pc?.addIceCandidate(init);
    } catch (error) {
      // One bad candidate must not end the call; ICE goes on with the others.
      console.warn(`call ${this.callId}: a remote candidate was not usable (${errorName(error)})`);
    }
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
      console.warn(`call ${this.callId}: no verification code (${errorName(error)})`);
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
    const route = selectedRoute(report);
    if (route !== this.route && pc === this.pc) {
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

/** @param {MediaStream | null} stream */
function stopTracks(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/** @param {unknown} error */
function errorName(error) {
  return error instanceof Error ? error.name : "unknown error";
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
    this.ringtone = new Ringtone();
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
    if (this.busy) throw new ApiError(409, "already_in_call", "Hang up your current call first.");
    const started = await this.api.startCall(peer.username, media);
    const session = new CallSession({
      direction: "outgoing",
      callId: started.call_id,
      peer,
      media,
      iceServers: started.ice_servers,
      policy: started.ice_transport_policy,
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
    if (session.state === "incoming") this.ringtone.start();
    else this.ringtone.stop();
    this.onChange(session);
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
    this.ringtone.stop();
    this.current = null;
  }
}
