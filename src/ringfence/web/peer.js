// The peer connections of one call: what the browser's RTCPeerConnection needs
// around it, and nothing about signaling frames or call states.
//
// - Every connection is built from exactly the ice_servers and ice_transport_policy
//   the server handed out last (the server decides whether this side is relayed),
//   with one DTLS certificate for all of them: a transport switch keeps the
//   fingerprints, and with them the verification words.
// - A call has one connection that carries it (`pc`) and, while its transport is
//   being switched, the one that replaces it (`next`).
// - Local candidates wait until this side's offer or answer is out; remote ones wait
//   for the remote description they belong to. The owner says when to release them.
// - The route (relay or direct) is read from the live connection: the selected
//   candidate pair's local candidate, never inferred from settings.
// SDP and candidates are passed to the browser and forgotten: nothing here logs or
// stores them.

import { errorName } from "./calltext.js";
import { verificationCode } from "./verification.js";

/** @import { IceServer, IcePolicy, WireCandidate } from "./types.js" */

/** @typedef {"relay" | "direct"} Route */

/**
 * What the connections report to the call that owns them.
 * @typedef {object} PeerHost
 * @property {(candidate: WireCandidate) => void} sendCandidate A local candidate to send now.
 * @property {() => void} changed Something the screen shows changed (a remote track).
 * @property {(state: RTCPeerConnectionState) => void} connectionState The carrying connection's state.
 * @property {(next: RTCPeerConnection) => void} nextConnected The replacement connection is up.
 * @property {() => void} nextFailed The replacement connection failed.
 */

// A TURN server that has not given a relay candidate by then is unreachable or refused
// the credentials (Chromium itself keeps trying for about 40 s before error 701).
export const RELAY_GATHER_MS = 5000;

export class PeerLink {
  /**
   * @param {string} callId For the log.
   * @param {IceServer[]} iceServers
   * @param {IcePolicy} policy
   * @param {PeerHost} host
   */
  constructor(callId, iceServers, policy, host) {
    this.callId = callId;
    this.iceServers = iceServers;
    this.policy = policy;
    this.host = host;
    /** @type {RTCCertificate | null} The DTLS certificate of every connection of this call. */
    this.certificate = null;
    /** @type {RTCPeerConnection | null} The connection that carries the call. */
    this.pc = null;
    /** @type {RTCPeerConnection | null} The connection a switch in flight moves the call to. */
    this.next = null;
    this.remoteStream = new MediaStream();
    /** @type {MediaStream | null} What the next connection receives. */
    this.nextStream = null;
    /** @type {WireCandidate[]} local candidates waiting for our offer/answer to go out */
    this.localCandidates = [];
    this.signaled = false;
    /** @type {RTCIceCandidateInit[]} remote candidates waiting for the remote description */
    this.remoteCandidates = [];
    /** @type {RTCIceCandidateInit[]} remote candidates waiting for the next connection's remote description */
    this.nextCandidates = [];
    /**
     * An ICE restart is under way and the peer's new description is not set yet:
     * remote candidates (of the new ICE generation) wait for it.
     */
    this.awaitingRemote = false;
    /** A relay candidate was gathered on the call's first connection. */
    this.relayGathered = false;
    /** @type {((ok: boolean) => void) | null} Settles the wait for a relay candidate. */
    this.relayWait = null;
  }

  /**
   * The ICE servers and policy the server handed out for a switch: the next
   * connection is built with them.
   * @param {IceServer[]} iceServers
   * @param {IcePolicy} policy
   */
  configure(iceServers, policy) {
    this.iceServers = iceServers;
    this.policy = policy;
  }

  /** Make the certificate every connection of this call uses (once; best effort). */
  async makeCertificate() {
    if (this.certificate) return;
    try {
      /** @type {EcKeyGenParams} */
      const algorithm = { name: "ECDSA", namedCurve: "P-256" };
      this.certificate = await RTCPeerConnection.generateCertificate(algorithm);
    } catch (error) {
      console.warn(`call ${this.callId}: no certificate of our own (${errorName(error)})`);
    }
  }

  /** The call's first connection. */
  open() {
    const pc = this.newPeerConnection();
    this.pc = pc;
    return pc;
  }

  /** A second connection for a switch, under the new ICE configuration. */
  startNext() {
    const next = this.newPeerConnection();
    this.next = next;
    this.nextStream = new MediaStream();
    this.nextCandidates = [];
    this.signaled = false; // its candidates go out after its offer or answer
    return next;
  }

  /**
   * The next connection is up: it carries the call now and the old one is closed.
   * @param {RTCPeerConnection} next
   * @returns {boolean} false if `next` is no longer the next connection.
   */
  promote(next) {
    if (next !== this.next) return false;
    const old = this.pc;
    this.pc = next;
    this.next = null;
    this.remoteStream = this.nextStream ?? new MediaStream();
    this.nextStream = null;
    this.remoteCandidates = [];
    this.nextCandidates = [];
    old?.close();
    return true;
  }

  /** Close a replacement connection that will not be used. */
  dropNext() {
    const next = this.next;
    if (!next) return;
    this.next = null;
    this.nextStream = null;
    this.nextCandidates = [];
    // Its candidates not yet sent never will be; the running connection's went long ago.
    this.localCandidates = [];
    this.signaled = true;
    next.close();
  }

  /** The call is over: close everything and stop waiting for the relay. */
  close() {
    this.relayWait?.(false);
    this.pc?.close();
    this.pc = null;
    this.dropNext();
  }

  /** Undo the carrying connection's half-done offer/answer of a failed ICE restart. */
  rollback() {
    const pc = this.pc;
    if (pc?.signalingState === "have-remote-offer") {
      pc.setRemoteDescription({ type: "rollback" }).catch(() => undefined);
    } else if (pc?.signalingState === "have-local-offer") {
      pc.setLocalDescription({ type: "rollback" }).catch(() => undefined);
    }
  }

  // --- media ------------------------------------------------------------------------

  /**
   * Send this side's camera and microphone on a connection.
   * @param {RTCPeerConnection} pc
   * @param {MediaStream | null} stream
   */
  attach(pc, stream) {
    for (const track of stream?.getTracks() ?? []) pc.addTrack(track, /** @type {MediaStream} */ (stream));
  }

  /**
   * Receive on `next` whatever the carrying connection receives, whether this side
   * sends that kind or not.
   * @param {RTCPeerConnection} next
   */
  receiveAsNow(next) {
    const sending = new Set(next.getTransceivers().map((t) => t.receiver.track.kind));
    for (const transceiver of this.pc?.getTransceivers() ?? []) {
      const kind = transceiver.receiver.track.kind;
      if (transceiver.currentDirection !== "stopped" && !sending.has(kind)) {
        next.addTransceiver(kind, { direction: "recvonly" });
        sending.add(kind);
      }
    }
  }

  // --- candidates -------------------------------------------------------------------

  /** This side's offer or answer is out: its candidates follow, and the next ones at once. */
  releaseLocalCandidates() {
    this.signaled = true;
    const held = this.localCandidates;
    this.localCandidates = [];
    for (const candidate of held) this.host.sendCandidate(candidate);
  }

  /**
   * A candidate of the other side: for the next connection during a switch, else for
   * the carrying one, held until the description it belongs to is set.
   * @param {WireCandidate} candidate
   */
  async addRemoteCandidate(candidate) {
    if (!candidate.candidate) return; // end-of-candidates
    /** @type {RTCIceCandidateInit} */
    const init = { candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? null, sdpMLineIndex: candidate.sdpMLineIndex ?? null };
    if (candidate.usernameFragment) init.usernameFragment = candidate.usernameFragment;
    const next = this.next;
    if (next) {
      // During a switch, the other side's candidates are for the new connection.
      if (next.remoteDescription) await this.addCandidate(next, init);
      else this.nextCandidates.push(init);
      return;
    }
    if (!this.pc || !this.pc.remoteDescription || this.awaitingRemote) {
      this.remoteCandidates.push(init);
      return;
    }
    await this.addCandidate(this.pc, init);
  }

  /** Anything held since the switch began came from the other side's new connection. */
  holdForNext() {
    this.nextCandidates = this.remoteCandidates;
    this.remoteCandidates = [];
    this.awaitingRemote = false;
  }

  async releaseRemoteCandidates() {
    const held = this.remoteCandidates;
    this.remoteCandidates = [];
    for (const init of held) {
      if (this.pc) await this.addCandidate(this.pc, init);
    }
  }

  /** @param {RTCPeerConnection} next */
  async releaseNextCandidates(next) {
    const held = this.nextCandidates;
    this.nextCandidates = [];
    for (const init of held) await this.addCandidate(next, init);
  }

  /**
   * @param {RTCPeerConnection} pc
   * @param {RTCIceCandidateInit} init
   */
  async addCandidate(pc, init) {
    try {
      await pc.addIceCandidate(init);
    } catch (error) {
      // One bad candidate must not end the call; ICE goes on with the others.
      console.warn(`call ${this.callId}: a remote candidate was not usable (${errorName(error)})`);
    }
  }

  // --- the relay, the route, the verification words ---------------------------------

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

  /**
   * The route of the carrying connection; undefined when there is none, or when it
   * was replaced while its statistics were read.
   * @returns {Promise<Route | null | undefined>}
   */
  async readRoute() {
    const pc = this.pc;
    if (!pc) return undefined;
    /** @type {RTCStatsReport} */
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return undefined; // closed meanwhile
    }
    return pc === this.pc ? selectedRoute(report) : undefined;
  }

  /**
   * The verification code from the carrying connection's local and remote
   * descriptions (their DTLS fingerprints); undefined if there is none yet, or if the
   * connection was replaced meanwhile.
   * @returns {Promise<string[] | null | undefined>}
   */
  async readVerification() {
    const pc = this.pc;
    const local = pc?.localDescription?.sdp;
    const remote = pc?.remoteDescription?.sdp;
    if (!pc || !local || !remote) return undefined;
    /** @type {string[] | null} */
    let code;
    try {
      code = await verificationCode(this.callId, local, remote);
    } catch (error) {
      console.warn(`call ${this.callId}: no verification code (${errorName(error)})`);
      return undefined;
    }
    return pc === this.pc ? code : undefined;
  }

  // --- the connection and its events --------------------------------------------------

  newPeerConnection() {
    /** @type {RTCConfiguration} */
    const config = {
      // Exactly what the server gave: its TURN relay and its transport policy.
      iceServers: /** @type {RTCIceServer[]} */ (this.iceServers),
      iceTransportPolicy: this.policy,
      // One transport for audio and video: one relay allocation, fewer candidates.
      bundlePolicy: "max-bundle",
    };
    if (this.certificate) config.certificates = [this.certificate];
    const pc = new RTCPeerConnection(config);
    pc.addEventListener("icecandidate", (event) => {
      if ((pc !== this.pc && pc !== this.next) || !event.candidate || !event.candidate.candidate) return;
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
      if (this.signaled) this.host.sendCandidate(candidate);
      else this.localCandidates.push(candidate);
    });
    pc.addEventListener("track", (event) => {
      const stream = pc === this.pc ? this.remoteStream : pc === this.next ? this.nextStream : null;
      if (!stream) return;
      const track = event.track;
      stream.addTrack(track);
      track.addEventListener("mute", () => this.host.changed());
      track.addEventListener("unmute", () => this.host.changed());
      track.addEventListener("ended", () => this.host.changed());
      this.host.changed();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) {
        // While a new connection is being set up, the other side may close the old
        // one as soon as its own new one is up: that is the switch, not a failure.
        if (this.next && (pc.connectionState === "disconnected" || pc.connectionState === "failed")) return;
        this.host.connectionState(pc.connectionState);
      } else if (pc === this.next) {
        if (pc.connectionState === "connected") this.host.nextConnected(pc);
        else if (pc.connectionState === "failed") this.host.nextFailed();
      }
    });
    return pc;
  }
}

/**
 * The few fields of a WebRTC statistics entry that tell the route.
 * @typedef {object} RouteStats
 * @property {string} type
 * @property {string} [selectedCandidatePairId] A transport's selected pair.
 * @property {boolean} [selected] A candidate pair's (older Chromium).
 * @property {boolean} [nominated]
 * @property {string} [state]
 * @property {string} [localCandidateId]
 * @property {unknown} [candidateType] A candidate's: "host", "srflx", "prflx", "relay".
 */

/**
 * "relay" if media leaves this device through the TURN relay (the peer sees only
 * the relay's address), "direct" otherwise, or null before a pair is selected.
 * @param {RTCStatsReport} report
 * @returns {Route | null}
 */
export function selectedRoute(report) {
  /** @param {string | undefined} id */
  const entry = (id) => (id === undefined ? undefined : /** @type {RouteStats | undefined} */ (report.get(id)));
  /** @type {RouteStats | undefined} */
  let pair;
  report.forEach((/** @type {RouteStats} */ stat) => {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pair = entry(stat.selectedCandidatePairId) ?? pair;
  });
  if (!pair) {
    report.forEach((/** @type {RouteStats} */ stat) => {
      if (stat.type === "candidate-pair" && (stat.selected || (stat.nominated && stat.state === "succeeded"))) pair = stat;
    });
  }
  if (!pair) return null;
  const local = entry(pair.localCandidateId);
  if (!local || typeof local.candidateType !== "string") return null;
  return local.candidateType === "relay" ? "relay" : "direct";
}
