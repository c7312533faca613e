// The installable app: registers the service worker (sw.js, served by the server at
// /sw.js so that its scope is the whole app) and starts the offline notice.
//
// Loaded by index.html beside app.js, and independent of it: if the worker can't be
// registered (an insecure origin, a browser without workers), Ringfence works as a
// plain page.

import { startOfflineNotice } from "./offline.js";

const WORKER_URL = "/sw.js";

startOfflineNotice();
registerWorker();

function registerWorker() {
  // Service workers exist only in secure contexts (https://, and http://localhost or
  // 127.0.0.1 for development and tests).
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  const register = () => {
    // updateViaCache "none": the browser always asks the server for a new worker.
    navigator.serviceWorker.register(WORKER_URL, { scope: "/", updateViaCache: "none" }).catch((err) => {
      console.warn(`Ringfence works, but can't be installed or start offline: ${err}`);
    });
  };
  // After the page has loaded, so that the worker's first downloads don't compete with it.
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register, { once: true });
}
