// "You're offline": a notice at the top of every screen while Ringfence can't reach
// the network, so that a start without a network (the service worker serves the app
// from its copy) shows the app and says why nothing loads, rather than sign-in
// errors.
//
// Self-contained: it needs nothing from app.js. It is offline when
// - the browser says so (navigator.onLine, the "offline" and "online" events), or
// - the service worker's last request to the server failed (sw.js tells the pages;
//   covers a network without internet, or a server that is down, where the browser
//   still believes it is online). Then it checks /healthz now and then, which the
//   worker never answers from a copy, and the notice goes when the server answers.
//
// The app's own banner for a dropped event stream (#connection) says much the same
// while the browser is offline: it stands aside for this notice then.

export const OFFLINE_TEXT = "You're offline — Ringfence will reconnect when the network is back.";

const PROBE_URL = "/healthz";
const PROBE_FIRST_MS = 2000;
const PROBE_MAX_MS = 30000;

/** The browser says there is no network. */
let browserOffline = false;
/** The worker (or a check) couldn't reach the server. */
let unreachable = false;
/** @type {HTMLElement | null} */
let notice = null;
/** @type {number | undefined} */
let probeTimer = undefined;
let probeDelayMs = PROBE_FIRST_MS;
let started = false;

/** Show the notice whenever Ringfence is offline, from now on. */
export function startOfflineNotice() {
  if (started) return;
  started = true;
  browserOffline = !navigator.onLine;
  window.addEventListener("offline", () => {
    browserOffline = true;
    update();
  });
  window.addEventListener("online", () => {
    browserOffline = false;
    if (unreachable) scheduleProbe(0);
    update();
  });
  if ("serviceWorker" in navigator) {
    const container = navigator.serviceWorker;
    container.addEventListener("message", (event) => onWorkerMessage(event.data));
    container.startMessages();
    // Was this page's own start served from the worker's copy?
    container.controller?.postMessage({ type: "ringfence:network?" });
  }
  update();
}

/** @param {unknown} data */
function onWorkerMessage(data) {
  if (typeof data !== "object" || data === null || !("type" in data) || data.type !== "ringfence:network") return;
  const online = "online" in data && data.online === true;
  if (online === !unreachable) return;
  unreachable = !online;
  if (unreachable) scheduleProbe(PROBE_FIRST_MS);
  else stopProbing();
  update();
}

/** @param {number} delayMs */
function scheduleProbe(delayMs) {
  clearTimeout(probeTimer);
  probeTimer = window.setTimeout(() => void probe(), delayMs);
}

function stopProbing() {
  clearTimeout(probeTimer);
  probeTimer = undefined;
  probeDelayMs = PROBE_FIRST_MS;
}

/** Ask the server directly (the worker leaves /healthz to the network). */
async function probe() {
  if (!unreachable) return;
  if (browserOffline) return; // the "online" event will check
  try {
    await fetch(PROBE_URL, { cache: "no-store", credentials: "omit" });
    unreachable = false; // any answer at all: the server is reachable
    stopProbing();
    update();
  } catch {
    probeDelayMs = Math.min(probeDelayMs * 2, PROBE_MAX_MS);
    scheduleProbe(probeDelayMs);
  }
}

function update() {
  const offline = browserOffline || unreachable;
  document.body.classList.toggle("browser-offline", browserOffline);
  if (!offline) {
    if (notice) notice.hidden = true;
    return;
  }
  if (!notice) notice = create();
  notice.hidden = false;
}

function create() {
  const el = document.createElement("p");
  el.id = "offline-notice";
  el.className = "offline-notice";
  el.setAttribute("role", "status");
  el.setAttribute("aria-live", "polite");
  el.textContent = OFFLINE_TEXT;
  // Where the app's own connection banner is, below the top bar.
  const anchor = document.getElementById("connection") ?? document.getElementById("topbar");
  if (anchor) anchor.after(el);
  else document.body.prepend(el);
  return el;
}
