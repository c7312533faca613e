// The ring of an incoming call: a soft two-tone chime made with Web Audio (nothing
// to download), plus a vibration where the device has one. Browsers may keep audio
// silent until the user has interacted with the page; the incoming-call screen is
// shown either way.

const PATTERN_MS = 3000;

export class Ringtone {
  constructor() {
    /** @type {AudioContext | null} */
    this.context = null;
    /** @type {number | undefined} */
    this.timer = undefined;
  }

  start() {
    if (this.timer !== undefined) return;
    try {
      this.context ??= new AudioContext();
      void this.context.resume().catch(() => undefined);
    } catch {
      this.context = null;
    }
    const ring = () => {
      this.chime();
      if ("vibrate" in navigator) navigator.vibrate([300, 200, 300]);
    };
    ring();
    this.timer = window.setInterval(ring, PATTERN_MS);
  }

  stop() {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if ("vibrate" in navigator) navigator.vibrate(0);
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
