// The call screens: incoming (ring, accept, decline), outgoing (calling...), and
// in-call (remote video or avatar, local preview, mute, camera, hang up, timer, the
// connection badge and the button that switches the call to the relay or back).
// Before Accept, the ring screen says whether answering reveals the user's address:
// the server's policy for this device ("all") means a direct connection, and the
// caller, named, then sees it.
// One overlay, drawn from the CallSession's state.
//
// The overlay's elements are built once and updated in place; the buttons are only
// rebuilt when the set of controls changes (a new call state), so a button being
// pressed or holding keyboard focus never disappears under the user.

import { ApiError } from "../api.js";
import { avatar, h, replace, toast } from "../dom.js";
import { duration, endedText } from "../format.js";
import { icon } from "../icons.js";

/** @import { CallSession } from "../call.js" */
/** @import { CallManager } from "../callmanager.js" */
/** @import { IconName } from "../icons.js" */

const AUTO_CLOSE_MS = 2500;

export class CallView {
  /**
   * @param {HTMLElement} layer The overlay element.
   * @param {CallManager} calls
   * @param {(open: boolean) => void} onOpenChange The page behind is made inert while open.
   */
  constructor(layer, calls, onOpenChange) {
    this.layer = layer;
    this.calls = calls;
    this.onOpenChange = onOpenChange;
    /** @type {CallSession | null} */
    this.session = null;
    /** @type {string | null} */
    this.controlsKey = null;
    /** @type {string | null} Who the heading shows (see update). */
    this.peerKey = null;
    /** @type {number | undefined} */
    this.tick = undefined;
    /** @type {number | undefined} */
    this.closeTimer = undefined;
    /** @type {HTMLElement | null} */
    this.returnFocus = null;

    this.heading = h("h2", { class: "call-peer", attrs: { id: "call-title" } });
    this.status = h("p", { class: "call-status", attrs: { id: "call-status", role: "status" } });
    this.timer = h("p", { class: "call-timer", attrs: { role: "timer", "aria-label": "Call duration" } });
    this.badge = h("p", { class: "route-badge", attrs: { id: "route-badge", role: "status" } });
    // Read with the dialog (aria-describedby) and with Accept, before anything is sent.
    this.exposure = h("p", { class: "call-exposure", attrs: { id: "call-exposure" } });
    this.exposure.hidden = true;
    // Hide my address / Allow direct connection: one button, updated in place, so it
    // keeps keyboard focus through "Switching…" and after.
    this.routeAction = h("button", {
      class: "route-action",
      attrs: { type: "button", id: "route-action" },
      on: { click: () => this.onRouteAction() },
    });
    this.routeAction.hidden = true;
    /** @type {RouteAction | null} */
    this.routeActionShown = null;
    this.routeNote = h("p", { class: "route-note", attrs: { id: "route-note", role: "status" } });
    this.ringNote = h("p", { class: "ring-note", attrs: { id: "ring-note" } });
    this.remoteVideo = h("video", { class: "remote-video", attrs: { autoplay: true, playsinline: true, "aria-label": "Remote video" } });
    this.localVideo = h("video", { class: "local-video", attrs: { autoplay: true, playsinline: true, muted: true, "aria-label": "Your camera preview" } });
    this.localVideo.muted = true;
    // The verification code: both people read the words aloud; if they differ,
    // someone is in the middle (docs/verification.md).
    this.verifyWords = h("p", { class: "verify-words", attrs: { id: "verify-words" } });
    this.verify = h("section", {
      class: "call-verify",
      attrs: { "aria-labelledby": "verify-title", "aria-describedby": "verify-help" },
    },
      h("h3", { class: "verify-title", text: "Verification code", attrs: { id: "verify-title" } }),
      this.verifyWords,
      h("p", { class: "verify-help", text: "Read these words to each other. If they differ, someone may be listening in.", attrs: { id: "verify-help" } }),
    );
    this.avatar = h("div", { class: "call-avatar" });
    // The other person's microphone and camera when off: "Muted", "Camera off".
    this.peerState = h("p", { class: "peer-state", attrs: { id: "peer-state", role: "status" } });
    this.stage = h("div", { class: "call-stage" }, this.remoteVideo, this.avatar, this.peerState, this.localVideo);
    this.error = h("p", { class: "call-error", attrs: { role: "alert" } });
    this.warning = h("p", { class: "call-warning", attrs: { role: "alert" } });
    this.notice = h("p", { class: "call-notice" });
    this.controls = h("div", { class: "call-controls", attrs: { role: "group", "aria-label": "Call controls" } });
    this.screen = h("div", {
      class: "call-screen",
      attrs: { role: "dialog", "aria-modal": "true", "aria-labelledby": "call-title", "aria-describedby": "call-status call-exposure" },
    },
      h("div", { class: "call-top" },
        this.heading, this.status, this.ringNote, this.exposure, this.timer,
        h("div", { class: "call-route" }, this.badge, this.routeAction),
        this.routeNote,
      ),
      this.stage,
      h("div", { class: "call-messages" }, this.verify, this.error, this.warning, this.notice),
      this.controls,
    );
  }

  /** @param {CallSession | null} session */
  update(session) {
    if (session !== this.session) {
      clearTimeout(this.closeTimer);
      this.session = session;
      this.controlsKey = null;
      this.remoteVideo.srcObject = null;
      this.localVideo.srcObject = null;
      this.peerKey = null;
    }
    if (!session) {
      this.close();
      return;
    }
    // Who it is, drawn again when they change their name mid-call (user.updated).
    const verified = /** @type {{verified?: boolean}} */ (session.peer).verified === true;
    const peerKey = JSON.stringify([session.peer.username, session.peerName, verified]);
    if (peerKey !== this.peerKey) {
      this.peerKey = peerKey;
      replace(this.avatar, avatar({ username: session.peer.username, display_name: session.peerName }, "large"));
      // Who is calling is decided by the @username, never the display name alone
      // (anyone can call themselves "Ringfence Support ✓"): both, always.
      replace(this.heading,
        h("span", { class: "call-name", text: session.peerName }),
        verified ? h("span", { class: "badge-verified", text: "✓", attrs: { title: "Verified", "aria-label": "verified" } }) : null,
        " ",
        h("span", { class: "call-handle", text: `@${session.peer.username}` }),
      );
    }
    if (session.state === "ended" && session.endReason === "answered_elsewhere") {
      // Another of the user's devices took it: just stop ringing here.
      toast(`Call from ${session.peerName} (@${session.peer.username}) answered on another device.`);
      this.calls.dismiss();
      return;
    }
    this.open();
    this.draw(session);
  }

  open() {
    if (!this.layer.hidden) return;
    const active = document.activeElement;
    this.returnFocus = active instanceof HTMLElement ? active : null;
    replace(this.layer, this.screen);
    this.layer.hidden = false;
    this.onOpenChange(true);
  }

  close() {
    clearInterval(this.tick);
    this.tick = undefined;
    if (this.layer.hidden) return;
    this.layer.hidden = true;
    this.layer.replaceChildren();
    this.onOpenChange(false);
    if (this.returnFocus?.isConnected) this.returnFocus.focus();
  }

  /** @param {CallSession} s */
  draw(s) {
    const incoming = s.state === "incoming" || s.state === "accepting";
    const inCall = s.state === "connecting" || s.state === "connected";
    this.screen.className = `call-screen state-${s.state}`;
    this.status.textContent = statusText(s);
    setText(this.error, s.error);
    setText(this.warning, s.warning);
    setText(this.notice, s.notice);
    this.drawExposure(s, incoming);

    this.timer.hidden = !inCall;
    this.badge.hidden = !inCall;
    if (s.route === null) {
      this.badge.className = "route-badge checking";
      this.badge.textContent = "Checking connection…";
    } else if (s.route === "relay") {
      this.badge.className = "route-badge relayed";
      this.badge.textContent = "Relayed — your address is hidden";
    } else {
      this.badge.className = "route-badge direct";
      // The person, by name (issue 12): "peers" hides who it is that sees it.
      this.badge.textContent = `Direct — ${s.peerName} can see your address`;
    }

    this.drawRouteAction(s, inCall);

    const code = s.state === "connected" ? s.verification : null;
    this.verify.hidden = code === null;
    setText(this.verifyWords, code ? code.join(" ") : null);

    if (this.remoteVideo.srcObject !== s.remoteStream) this.remoteVideo.srcObject = s.remoteStream;
    if (s.localStream && this.localVideo.srcObject !== s.localStream) this.localVideo.srcObject = s.localStream;
    const showRemoteVideo = inCall && s.media === "video" && s.hasRemoteVideo;
    this.remoteVideo.hidden = !showRemoteVideo;
    this.avatar.hidden = showRemoteVideo;
    this.avatar.classList.toggle("ringing", s.state === "incoming");
    this.stage.classList.toggle("has-video", showRemoteVideo);
    this.localVideo.hidden = !(s.hasLocalVideo && !s.cameraOff && s.state !== "ended");
    setText(this.peerState, s.state === "connected" ? peerStateText(s) : null);
    setText(this.ringNote, s.state === "incoming" && s.ringsElsewhere
      ? "Ringing in another tab too: answer here or there."
      : null);
    // The remote element also plays the remote audio, video call or not.
    if (inCall && this.remoteVideo.paused) void this.remoteVideo.play().catch(() => undefined);

    this.drawControls(s, incoming);

    clearInterval(this.tick);
    this.tick = undefined;
    if (s.state === "connected" && s.connectedAt !== null) {
      const connectedAt = s.connectedAt;
      const update = () => {
        this.timer.textContent = duration((Date.now() - connectedAt) / 1000);
      };
      update();
      this.tick = window.setInterval(update, 1000);
    } else {
      this.timer.textContent = "0:00";
    }
  }

  /**
   * While it rings: whether answering would show the caller this device's address.
   * The policy is the server's decision for this call (direct only when both people
   * allow it), so the words are the truth of what Accept does.
   * @param {CallSession} s
   * @param {boolean} incoming
   */
  drawExposure(s, incoming) {
    if (!incoming) {
      setText(this.exposure, null);
      return;
    }
    const direct = s.policy === "all";
    this.exposure.classList.toggle("direct", direct);
    setText(this.exposure, direct
      ? `Answering connects you directly: ${s.peerName} will see your IP address.`
      : "Your IP address stays hidden: this call goes through the relay.");
  }

  /**
   * @param {CallSession} s
   * @param {boolean} inCall
   */
  drawRouteAction(s, inCall) {
    const action = inCall ? routeAction(s) : null;
    setText(this.routeNote, inCall ? s.switchNotice : null);
    const button = this.routeAction;
    this.routeActionShown = action;
    if (!action) {
      if (!button.hidden && document.activeElement === button) {
        // Don't strand keyboard focus on a button that goes away.
        const hangup = this.controls.querySelector(".hangup");
        if (hangup instanceof HTMLElement) hangup.focus();
      }
      button.hidden = true;
      return;
    }
    button.hidden = false;
    button.className = `route-action ${action.kind}`;
    if (button.textContent !== action.text) button.textContent = action.text;
    button.setAttribute("aria-label", action.label);
    button.title = action.label;
    // aria-disabled rather than disabled: the button keeps focus while it waits.
    if (action.kind === "switching") button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
  }

  onRetry() {
    const s = this.session;
    if (!s) return;
    this.calls.retry().catch((/** @type {unknown} */ err) => toast(retryRefusal(err, s.peerName), "error"));
  }

  onRouteAction() {
    const s = this.session;
    const action = this.routeActionShown;
    if (!s || !action) return;
    if (action.kind === "hide") s.requestTransport("relay");
    else if (action.kind === "allow") s.requestTransport("direct");
  }

  /**
   * @param {CallSession} s
   * @param {boolean} incoming
   */
  drawControls(s, incoming) {
    const key = `${s.state}|${s.media}|${s.hasLocalVideo}|${Boolean(s.error)}|${s.retryable}`;
    if (key !== this.controlsKey) {
      this.controlsKey = key;
      /** @type {HTMLElement | null} */
      let focusTarget = null;
      /** @type {HTMLElement[]} */
      const buttons = [];
      if (incoming) {
        const accept = roundButton(s.media === "video" ? "video" : "phone", s.media === "video" ? "Accept video call" : "Accept audio call", "accept", () => void s.accept());
        accept.disabled = s.state === "accepting";
        accept.setAttribute("aria-describedby", "call-exposure");
        buttons.push(roundButton("hangup", "Decline", "decline", () => s.decline()), accept);
        focusTarget = accept;
      } else if (s.state === "ended") {
        const closeButton = h("button", { class: "wide", text: "Close", attrs: { type: "button" }, on: { click: () => this.calls.dismiss() } });
        if (s.retryable) {
          // The connection failed, not the person: offer to place the call again.
          const retry = h("button", {
            class: "wide retry",
            text: "Try again",
            attrs: { type: "button", title: `Call ${s.peerName} again` },
            on: { click: () => this.onRetry() },
          });
          buttons.push(retry);
          focusTarget = retry;
        } else {
          focusTarget = closeButton;
        }
        buttons.push(closeButton);
        clearTimeout(this.closeTimer);
        // A problem stays on screen until the user has read it; a normal end fades.
        if (!s.error && !s.retryable) {
          this.closeTimer = window.setTimeout(() => this.calls.dismiss(), AUTO_CLOSE_MS);
        }
      } else {
        buttons.push(roundButton("mic", "Mute", "toggle mute", () => s.toggleMute()));
        if (s.media === "video" && s.hasLocalVideo) {
          buttons.push(roundButton("camera", "Camera off", "toggle camera", () => s.toggleCamera()));
        }
        const hangup = roundButton("hangup", "Hang up", "hangup", () => s.hangup());
        buttons.push(hangup);
        focusTarget = hangup;
      }
      replace(this.controls, buttons);
      focusTarget?.focus();
    }
    // Toggles change in place.
    const mute = this.controls.querySelector(".mute");
    if (mute instanceof HTMLButtonElement) {
      mute.setAttribute("aria-pressed", String(s.muted));
      mute.disabled = !s.localStream;
      setIcon(mute, s.muted ? "mic-off" : "mic");
    }
    const camera = this.controls.querySelector(".camera");
    if (camera instanceof HTMLButtonElement) {
      camera.setAttribute("aria-pressed", String(s.cameraOff));
      setIcon(camera, s.cameraOff ? "camera-off" : "camera");
    }
  }
}

/**
 * @typedef {object} RouteAction
 * @property {"hide" | "allow" | "switching"} kind
 * @property {string} text
 * @property {string} label
 */

/**
 * What the button next to the badge offers, from the live route and what the server
 * allows; null for nothing.
 * @param {CallSession} s
 * @returns {RouteAction | null}
 */
function routeAction(s) {
  if (s.recovering) {
    return { kind: "switching", text: "Reconnecting through the relay…", label: "Reconnecting through the relay…" };
  }
  if (s.switching === "relay") {
    return { kind: "switching", text: "Switching to the relay…", label: "Switching to the relay…" };
  }
  if (s.switching === "direct") {
    return { kind: "switching", text: "Switching to a direct connection…", label: "Switching to a direct connection…" };
  }
  if (s.route === "direct") {
    return {
      kind: "hide",
      text: "Hide my address",
      label: "Hide my address: switch this call to the relay, so they no longer see your IP address",
    };
  }
  if (s.route === "relay" && s.directAllowed) {
    return {
      kind: "allow",
      text: "Allow direct connection",
      label: "Allow direct connection: connect without the relay, which lets them see your IP address",
    };
  }
  return null;
}

/**
 * What is off on the other side, in a few words (null when nothing is).
 * @param {CallSession} s
 */
function peerStateText(s) {
  const off = [];
  if (!s.peerAudio) off.push("Muted");
  if (s.media === "video" && !s.peerVideo) off.push("Camera off");
  return off.length ? `${s.peerName}: ${off.join(" · ")}` : null;
}

/** @param {CallSession} s */
function statusText(s) {
  const what = s.media === "video" ? "video call" : "audio call";
  switch (s.state) {
    case "incoming":
      return `Incoming ${what}`;
    case "accepting":
    case "connecting":
      return "Connecting…";
    case "new":
      return `Starting ${what}…`;
    case "ringing":
      return "Ringing…";
    case "connected":
      return s.media === "video" ? "Video call" : "Audio call";
    case "reconnecting":
      return "Reconnecting…";
    case "ended":
      // Media never flowed: not "Call ended", as if it had taken place.
      if (s.didntConnect || (s.retryable && s.connectedAt === null)) return "Call didn't connect";
      if (s.retryable) return "Call lost";
      return endedText(s.endReason ?? "local", s.direction, s.peerName);
  }
}

/**
 * Why "Try again" could not place the call, in the same neutral words as the
 * conversation's call buttons: every refusal looks the same.
 * @param {unknown} err
 * @param {string} name
 */
function retryRefusal(err, name) {
  if (!(err instanceof ApiError)) return "The call couldn't be started.";
  if (err.isNetwork) return "Couldn't reach the server. Check your connection and try again.";
  if (err.status === 403) return `${name} can't be called right now.`;
  if (err.status === 429) return "Too many calls. Try again in a minute.";
  return err.detail;
}

/**
 * @param {HTMLElement} el
 * @param {string | null} text
 */
function setText(el, text) {
  if (el.textContent !== (text ?? "")) el.textContent = text ?? "";
  el.hidden = !text;
}

/**
 * @param {HTMLElement} button
 * @param {IconName} name
 */
function setIcon(button, name) {
  if (button.dataset.icon === name) return;
  button.dataset.icon = name;
  button.querySelector("svg")?.replaceWith(icon(name));
}

/**
 * @param {IconName} name
 * @param {string} label
 * @param {string} kind CSS classes: "accept", "decline", "hangup", "toggle mute"...
 * @param {() => void} onClick
 */
function roundButton(name, label, kind, onClick) {
  const button = h("button", {
    class: `round ${kind}`,
    attrs: { type: "button", "aria-label": label, title: label, "data-icon": name },
    on: { click: onClick },
  }, icon(name), h("span", { class: "round-label", text: label, attrs: { "aria-hidden": "true" } }));
  return button;
}
