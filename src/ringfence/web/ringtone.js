// The ring of an incoming call: a soft two-tone chime made with Web Audio (nothing
// to download), plus a vibration where the device has one. Browsers keep audio (and
// vibration) blocked until the user has interacted with the page, and say so in the
// console when a page tries: so the audio is made, and unlocked, by the first user
// gesture, and nothing is tried before it. The incoming-call screen is shown either
// way, and the service worker's notification rings where the page cannot.

const PATTERN_MS = 3000;

/** @type {AudioContext | null} Made (and so allowed to play) by a user gesture. */
let unlocked = null;

/** Make and resume the audio at the first user gesture, so a later ring can sound. */
function unlockOnGesture() {
  const unlock = () => {
    try {
      unlocked ??= new AudioContext();
      void unlocked.resume().catch(() => undefined);
    } catch {
      unlocked = null;
    }
    for (const type of GESTURES) window.removeEventListener(type, unlock, true);
  };
  for (const type of GESTURES) window.addEventListener(type, unlock, true);
}
const GESTURES = ["pointerdown", "keydown", "touchend"];
unlockOnGesture();

/** Whether the user has interacted with the page (so sound and vibration may start). */
function activated() {
  return navigator.userActivation ? navigator.userActivation.hasBeenActive : unlocked !== null;
}

export class Ringtone {
  constructor() {
    /** @type {AudioContext | null} */
    this.context = null;
    /** @type {number | undefined} */
    this.timer = undefined;
  }

  start() {
    if (this.timer !== undefined) return;
    this.context = unlocked;
    if (this.context && activated()) void this.context.resume().catch(() => undefined);
    const ring = () => {
      this.chime();
      if (activated() && "vibrate" in navigator) navigator.vibrate([300, 200, 300]);
    };
    ring();
    this.timer = window.setInterval(ring, PATTERN_MS);
  }

  stop() {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (activated() && "vibrate" in navigator) navigator.vibrate(0);
    void this.context?.suspend().catch(() => undefined);
  }

  chime() {
    const ctx = this.context;
    if (!ctx || ctx.state !== "running") return;
    const now = ctx.currentTime;
    [660, 880].forEach((frequency, i) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = frequency;
      const start = now + i * 0.35;
      gain.gain.setValueAtTime(0, start);
      gain.gain.linearRampToValueAtTime(0.15, start + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.001, start + 0.3);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start);
      osc.stop(start + 0.32);
    });
  }
}
