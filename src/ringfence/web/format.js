// Words and numbers shown to people: call records, durations, times, days.

/** @import { Message, CallRecord, Media, EndReason } from "./types.js" */

/** @param {number} seconds */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** @param {Media} media */
const noun = (media) => (media === "video" ? "video call" : "audio call");
/** @param {string} text */
const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/**
 * What became of a call, from the viewer's side: one reading of the server's outcome,
 * shared by the thread's call records, the Calls page and its missed-call count.
 * A call that rang here and was never answered (its caller gave up, or I was busy)
 * is "missed"; one I declined is "declined", not missed.
 * @typedef {"completed" | "failed" | "missed" | "no_answer" | "declined" | "cancelled" | "busy"} CallResult
 * @param {CallRecord} call
 * @param {boolean} outgoing The viewer placed the call.
 * @returns {CallResult}
 */
export function callResult(call, outgoing) {
  switch (call.outcome) {
    case "completed":
      return "completed";
    case "not_connected":
      return "failed"; // answered, but no conversation: no duration
    case "missed":
      return outgoing ? "no_answer" : "missed";
    case "rejected":
      return "declined";
    case "cancelled":
      return outgoing ? "cancelled" : "missed";
    case "busy":
      return outgoing ? "busy" : "missed";
  }
}

/**
 * "Audio call · 3:12", "Missed video call", "Call didn't connect"... from the
 * viewer's side.
 * @param {CallRecord} call
 * @param {boolean} outgoing The viewer placed the call.
 */
export function callLabel(call, outgoing) {
  const what = noun(call.media);
  switch (callResult(call, outgoing)) {
    case "completed":
      return `${capital(what)} · ${duration(call.duration_s)}`;
    case "failed":
      return "Call didn't connect";
    case "missed":
      return `Missed ${what}`;
    case "no_answer":
      return `${capital(what)} · No answer`;
    case "declined":
      return outgoing ? `${capital(what)} · Declined` : `Declined ${what}`;
    case "cancelled":
      return `Cancelled ${what}`;
    case "busy":
      return `${capital(what)} · Busy`;
  }
}

/**
 * The outcome alone, in a word or two, for a list that says the direction and the
 * kind of call beside it: "Missed", "No answer", "Declined", "2 min 14 s"...
 * @param {CallRecord} call
 * @param {boolean} outgoing The viewer placed the call.
 */
export function callOutcome(call, outgoing) {
  switch (callResult(call, outgoing)) {
    case "completed":
      return spokenDuration(call.duration_s);
    case "failed":
      return "Didn't connect";
    case "missed":
      return "Missed";
    case "no_answer":
      return "No answer";
    case "declined":
      return "Declined";
    case "cancelled":
      return "Cancelled";
    case "busy":
      return "Busy";
  }
}

/**
 * A length of time in words that read well aloud too: "45 s", "2 min 14 s", "1 h 5 min".
 * @param {number} seconds
 */
export function spokenDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = s % 60;
  if (hours) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  if (minutes) return secs ? `${minutes} min ${secs} s` : `${minutes} min`;
  return `${secs} s`;
}

/**
 * One line for the inbox.
 * @param {Message} message
 * @param {string} me
 */
export function preview(message, me) {
  const outgoing = message.sender === me;
  if (message.kind === "call" && message.call) return callLabel(message.call, outgoing);
  return `${outgoing ? "You: " : ""}${message.text}`;
}

/** @param {string} iso */
export function time(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

/**
 * The time of day, "14:05": beside a message, under a separator that gives its day.
 * @param {string} iso
 */
export function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * When something happened, for a list where the time of day matters on any day (the
 * Calls page): "14:05" today, "Yesterday 14:05", "9 Mar 14:05", "9 Mar 2025 14:05".
 * @param {string} iso
 * @param {Date} [now]
 */
export function dayAndTime(iso, now = new Date()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const at = clock(iso);
  const key = dayKey(date);
  if (key === dayKey(now)) return at;
  if (key === dayKey(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1))) return `Yesterday ${at}`;
  const year = date.getFullYear() === now.getFullYear() ? undefined : "numeric";
  return `${date.toLocaleDateString([], { day: "numeric", month: "short", year })} ${at}`;
}

/**
 * The local calendar day of a moment, "2025-03-09": messages with the same key were
 * sent on the same day where the reader is.
 * @param {Date} date
 */
export function dayKey(date) {
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * The words of a day separator in a conversation: "Today", "Yesterday", or the date
 * ("Sunday 9 March", with the year when it isn't this year's).
 * @param {Date} date
 * @param {Date} [now]
 */
export function dayLabel(date, now = new Date()) {
  const key = dayKey(date);
  if (key === dayKey(now)) return "Today";
  // Built from the calendar, not by subtracting 24 hours, which a DST change breaks.
  if (key === dayKey(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1))) return "Yesterday";
  const year = date.getFullYear() === now.getFullYear() ? undefined : "numeric";
  return date.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year });
}

/**
 * How many characters the server counts in a text: code points (an emoji is one),
 * where JavaScript's `length` counts UTF-16 units (an emoji is two).
 * @param {string} text
 */
export function characters(text) {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/**
 * Why a call ended, in plain words.
 * @param {EndReason | "local"} reason
 * @param {"outgoing" | "incoming"} direction
 * @param {string} peer Display name.
 */
export function endedText(reason, direction, peer) {
  switch (reason) {
    case "hangup":
    case "local":
      return "Call ended";
    case "rejected":
      return direction === "outgoing" ? `${peer} declined the call` : "Call declined";
    case "timeout":
      return direction === "outgoing" ? `${peer} didn't answer` : "Missed call";
    case "answered_elsewhere":
      return "Answered on another device";
    case "busy":
      return `${peer} is on another call`;
    case "failed":
      return "The call was lost: the connection failed";
    case "cancelled":
      return direction === "outgoing" ? "Call cancelled" : `Missed call from ${peer}`;
  }
}

/** What each of the server's per-account limits means, to the person who met it. */
const LIMITS = {
  message_rate_limited: "You're sending messages too quickly.",
  message_request_rate_limited: "You've written to several people who haven't accepted your messages yet.",
  follow_rate_limited: "You've followed and unfollowed people too often.",
  lookup_rate_limited: "You've looked up too many people.",
  report_rate_limited: "You've sent several reports recently.",
  call_rate_limited: "Too many calls or call changes.",
  rename_rate_limited: "You've changed your display name too many times today.",
};

/**
 * "Try again in 42 seconds (at 14:05)." from a Retry-After in seconds; a minute when
 * the server gave none.
 * @param {number | null} retryAfterS
 * @param {Date} [now]
 */
export function tryAgain(retryAfterS, now = new Date()) {
  if (!retryAfterS || retryAfterS <= 0) return "Try again in a minute.";
  const seconds = Math.ceil(retryAfterS);
  const wait = seconds < 90 ? `${seconds} second${seconds === 1 ? "" : "s"}`
    : seconds < 5400 ? `${Math.round(seconds / 60)} minutes`
      : `${Math.round(seconds / 3600)} hours`;
  const at = new Date(now.getTime() + seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return `Try again in ${wait} (at ${at}).`;
}

/**
 * A refusal for going too fast (429), in words that say what happened and when to
 * try again; null for any other error.
 * @param {{status: number, code: string, retryAfterS: number | null}} err
 */
export function limitText(err) {
  if (err.status !== 429) return null;
  const what = Object.hasOwn(LIMITS, err.code) ? LIMITS[/** @type {keyof typeof LIMITS} */ (err.code)] : "That was too much at once.";
  return `${what} ${tryAgain(err.retryAfterS)}`;
}

/**
 * The problems of a refused request (422 "invalid_request"), as sentences a person
 * reads. The server names each field by its JSON key ("password: use at least 10
 * characters; username: ..."); a form knows its own fields, so the keys become its
 * labels, or go when there is just one problem (the form marks that field). Null for
 * any other error.
 * @param {{status: number, code: string, detail: string}} err
 * @param {Record<string, string>} [labels] JSON key -> the form's label for it.
 * @returns {{fields: string[], text: string} | null}
 */
export function validationText(err, labels = {}) {
  if (err.status !== 422 || err.code !== "invalid_request") return null;
  const parts = err.detail.split("; ").map((part) => {
    const match = /^([A-Za-z0-9_.]+): (.+)$/.exec(part);
    return { field: (match?.[1] ?? "").split(".")[0] ?? "", words: match?.[2] ?? part };
  });
  const sentences = parts.map(({ field, words }) => {
    const label = parts.length > 1 ? (labels[field] ?? "") : "";
    return asSentence(label ? `${label}: ${words}` : words);
  });
  return { fields: parts.map((p) => p.field).filter(Boolean), text: sentences.join(" ") };
}

/** @param {string} text */
function asSentence(text) {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/**
 * True for an account that was deleted: the server renames it to a reserved
 * "deleted_account_…" username (nobody can register "deleted_*") and the display
 * name "Deleted account". Its messages stay readable; it can't be messaged or called.
 * The event that tells of a deletion as it happens still uses the old username, and
 * says `deleted`.
 * @param {{username: string, deleted?: boolean} | null | undefined} user
 */
export function isDeletedAccount(user) {
  return !!user && (user.deleted === true || user.username.startsWith("deleted_account_"));
}

/** What a deleted account is called on screen (never its reserved @handle). */
export const DELETED_ACCOUNT_NAME = "Deleted account";
