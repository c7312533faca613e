// Generated from ringfence/wire/call_states.py (scripts/lib/render_generated.py).
// Do not edit: tests/unit/test_generated.py fails while this file and its source differ.

/** @typedef {"new" | "ringing" | "incoming" | "accepting" | "connecting" | "connected" | "reconnecting" | "ended"} CallState */

/** The moves a call may make between states: the same table as the Python client's. */
export const TRANSITIONS = /** @type {Readonly<Record<CallState, readonly CallState[]>>} */ (
  Object.freeze({
    new: Object.freeze(["ended", "ringing"]),
    ringing: Object.freeze(["connecting", "ended"]),
    incoming: Object.freeze(["accepting", "ended"]),
    accepting: Object.freeze(["connecting", "ended", "incoming"]),
    connecting: Object.freeze(["connected", "ended"]),
    connected: Object.freeze(["ended", "reconnecting"]),
    reconnecting: Object.freeze(["connected", "ended"]),
    ended: Object.freeze([]),
  })
);
