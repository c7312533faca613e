// The tab's title: the screen's own ("Inbox · Ringfence"), led by the number of
// things waiting when there are any ("(3) Inbox · Ringfence"), as mail and chat apps
// do, so a glance at the tab says whether anything is waiting. That number is the
// unread messages plus the missed calls not yet seen on the Calls page, as a phone's
// app badge counts both. Views set their title here rather than on document.title,
// so neither part overwrites the other.

let page = "Ringfence";
let unread = 0;
let missed = 0;
/** @type {string | null} */
let alert = null;
/** @type {number | undefined} */
let blink;
let showAlert = false;
const BLINK_MS = 1000;

/** @param {string} title The screen's title, without the count. */
export function setPageTitle(title) {
  page = title;
  apply();
}

/** @param {number} count Unread messages in all conversations. */
export function setUnreadCount(count) {
  unread = count;
  apply();
}

/** @param {number} count Missed calls since the Calls page was last opened. */
export function setMissedCalls(count) {
  missed = count;
  apply();
}

/**
 * Something that must not wait ("Incoming call — Alice"): the title alternates
 * between it and the usual title until it is cleared (null).
 * @param {string | null} text
 */
export function setAlert(text) {
  alert = text;
  clearInterval(blink);
  blink = undefined;
  showAlert = text !== null;
  if (text !== null) {
    blink = window.setInterval(() => {
      showAlert = !showAlert;
      apply();
    }, BLINK_MS);
  }
  apply();
}

function apply() {
  const waiting = unread + missed;
  const usual = waiting > 0 ? `(${waiting}) ${page}` : page;
  const title = showAlert && alert !== null ? alert : usual;
  if (document.title !== title) document.title = title;
}
