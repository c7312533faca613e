// Ringing for an incoming call, as a person expects it of a phone app:
// - one tab of the browser rings (the sound and the vibration), whichever takes the
//   call's Web Lock first; every other tab shows the call and says it is ringing in
//   another tab. When the ringing tab closes, the next one takes over;
// - the tab title alternates with "Incoming call — NAME", so a tab in the background
//   says so at a glance;
// - the sound works around autoplay blocking: audio is unlocked by the first user
//   gesture on the page; until then nothing is tried (no blocked AudioContext, no
//   blocked vibration), and the system notification (the service worker's) rings.

import { Ringtone } from "./ringtone.js";
import { setAlert } from "./title.js";

/** @import { CallSession } from "./call.js" */

/** @typedef {"here" | "elsewhere" | null} RingPlace */

const LOCK_PREFIX = "ringfence.ring:";

export class Ringer {
  /** @param {() => void} onChange called when where the call rings changes */
  constructor(onChange) {
    this.onChange = onChange;
    this.ringtone = new Ringtone();
    /** @type {string | null} The call ringing on this page, if any. */
    this.callId = null;
    /** @type {RingPlace} Where that call rings: in this tab, or in another one. */
    this.place = null;
    /** @type {(() => void) | null} Lets go of the call's lock. */
    this.release = null;
    /** @type {AbortController | null} Withdraws a place in the lock's queue. */
    this.waiting = null;
  }

  /**
   * Follow the current call: ring while it is incoming, stop when it is not.
   * @param {CallSession | null} session
   */
  update(session) {
    const callId = session?.state === "incoming" ? session.callId : null;
    if (callId === this.callId) return;
    this.stop();
    if (session === null || callId === null) return;
    this.callId = callId;
    setAlert(`Incoming call — ${session.peerName}`);
    if (!("locks" in navigator)) {
      this.ringHere(callId);
      return;
    }
    const name = LOCK_PREFIX + callId;
    // First ask without waiting: if another tab holds the lock, it rings and this one
    // says so; then queue, so this tab rings if that one goes away.
    void navigator.locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (lock) return this.hold(callId);
        if (this.callId !== callId) return undefined;
        this.setPlace("elsewhere");
        this.waiting = new AbortController();
        navigator.locks
          .request(name, { signal: this.waiting.signal }, () => this.hold(callId))
          .catch(() => undefined); // withdrawn: the call stopped ringing here
        return undefined;
      })
      .catch(() => this.ringHere(callId)); // no locks after all: ring here
  }

  /**
   * Ring here for as long as the lock is held: until this call stops ringing.
   * @param {string} callId
   * @returns {Promise<void> | undefined}
   */
  hold(callId) {
    if (this.callId !== callId) return undefined;
    this.ringHere(callId);
    return new Promise((resolve) => {
      this.release = resolve;
    });
  }

  /** @param {string} callId */
  ringHere(callId) {
    if (this.callId !== callId) return;
    this.ringtone.start();
    this.setPlace("here");
  }

  /** @param {RingPlace} place */
  setPlace(place) {
    if (this.place === place) return;
    this.place = place;
    if (place === null) delete document.documentElement.dataset.ringing;
    else document.documentElement.dataset.ringing = place;
    this.onChange();
  }

  stop() {
    this.ringtone.stop();
    this.release?.();
    this.release = null;
    this.waiting?.abort();
    this.waiting = null;
    this.callId = null;
    setAlert(null);
    this.setPlace(null);
  }
}
