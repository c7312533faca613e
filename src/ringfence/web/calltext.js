// What a call says to the user, in one place: why it failed or ended, what the
// connection is doing, and what became of a transport switch. The call engine
// (call.js, callswitch.js) picks a sentence; it never composes one.
// Every sentence says what happened in plain words and, where the user can do
// something about it, what.

/** @import { Route } from "./peer.js" */
/** @import { SwitchRefusal } from "./callswitch.js" */

/**
 * The name of an error, for a message or the log (never its text, which may carry
 * an SDP or an address).
 * @param {unknown} error
 */
export function errorName(error) {
  return error instanceof Error ? error.name : "unknown error";
}

// --- setting the call up -------------------------------------------------------------

export const ALREADY_IN_CALL = "Hang up your current call first.";
export const MEDIA_UNUSABLE = "Your camera or microphone couldn't be used.";

/** @param {unknown} error */
export function setupFailed(error) {
  return `The call couldn't be set up (${errorName(error)}).`;
}

/** @param {unknown} error */
export function answerUnusable(error) {
  return `The answer couldn't be used (${errorName(error)}).`;
}

/** @param {unknown} error */
export function answerFailed(error) {
  return `The call couldn't be answered (${errorName(error)}).`;
}

/** @param {string} detail The server's own words. */
export function setupRefused(detail) {
  return `The server refused the call setup: ${detail}`;
}

export const CALL_GONE = "This call is no longer available.";
export const RELAY_UNREACHABLE = "Couldn't reach the relay server, so the call can't connect. Check your network and try again.";
export const RELAY_FAILED = "The call couldn't connect: the connection to the relay failed. Check your network and try again.";
export const CONNECT_TIMEOUT = "The call couldn't connect. Your network may be blocking the relay server.";

// --- a connection that drops mid-call ----------------------------------------------------

export const INTERRUPTED = "Connection interrupted. Trying to get it back…";
export const RECONNECTING = "Connection lost. Reconnecting through the relay…";
export const NOT_RESTORED = "The call was lost: the connection dropped and couldn't be restored.";
export const RESTART_FAILED = "The call was lost: the connection dropped and restarting it through the relay failed.";
export const DROPPED_TOO_OFTEN = "The call was lost: the connection dropped too often to restore it again so soon.";

// --- switching the transport ---------------------------------------------------------------

/** What the server's refusals of a call.transport mean, in one sentence. */
export const SWITCH_REFUSED = Object.freeze(/** @type {Record<SwitchRefusal, string>} */ ({
  direct_not_allowed: "Direct connection isn't allowed by your or their settings.",
  call_rate_limited: "The connection was switched too often. Wait a minute, then try again.",
  call_state: "The connection can't be switched right now. Try again in a moment.",
}));

/** @param {unknown} error */
export function switchBroke(error) {
  return `The connection couldn't be switched (${errorName(error)}).`;
}

export const SWITCH_NEXT_FAILED = "The new connection failed, so the call goes on as before.";
export const SWITCH_TIMED_OUT = "The switch didn't go through, so the call goes on as before. Try again.";
export const LOST_WHILE_SWITCHING = "The call was lost while its connection was being switched. Try calling again.";

/**
 * A switch that settled on the new connection, but its route never became the one
 * asked for: the badge shows the truth; this says it in words too.
 * @param {Route} asked
 */
export function routeNotReached(asked) {
  return asked === "direct"
    ? "A direct connection couldn't be made, so the call stays relayed."
    : "The call couldn't be moved to the relay.";
}

/**
 * What the other person's switch did to the call, by their name.
 * @param {string} name
 * @param {Route} route
 */
export function movedByPeer(name, route) {
  return route === "relay"
    ? `${name} moved the call behind the relay.`
    : `${name} switched the call to a direct connection: you can now see each other's IP addresses.`;
}
