// Generated from ringfence/wire/calls.py (scripts/lib/render_generated.py).
// Do not edit: tests/unit/test_generated.py fails while this file and its source differ.

/**
 * RTCIceServer. `username`/`credential` are left out when absent (STUN).
 * @typedef {object} IceServer
 * @property {string[]} urls
 * @property {string} [username]
 * @property {string} [credential]
 */

/**
 * Who is calling: just enough for the callee's ringing screen.
 * @typedef {object} UserRef
 * @property {number} id
 * @property {string} username
 * @property {string} display_name
 * @property {boolean} verified
 */

/**
 * @typedef {object} CallIncomingEvent
 * @property {"call.incoming"} type
 * @property {string} call_id
 * @property {UserRef} from
 * @property {"audio" | "video"} media
 * @property {string} sdp
 * @property {IceServer[]} ice_servers
 * @property {"relay" | "all"} ice_transport_policy
 * @property {boolean} direct_allowed
 */

/**
 * @typedef {object} CallAnswerEvent
 * @property {"call.answer"} type
 * @property {string} call_id
 * @property {string} sdp
 * @property {boolean} direct_allowed
 */

/**
 * RTCIceCandidateInit as the browser's `RTCIceCandidate` reports it. `candidate == ""`
 * is the end-of-candidates signal. Any other candidate needs `sdp_mid` or
 * `sdp_mline_index`, or the receiving browser's `addIceCandidate` would throw.
 * @typedef {object} IceCandidate
 * @property {string} candidate
 * @property {string | null} [sdpMid]
 * @property {number | null} [sdpMLineIndex]
 * @property {string} [usernameFragment]
 */

/**
 * @typedef {object} CallCandidateEvent
 * @property {"call.candidate"} type
 * @property {string} call_id
 * @property {IceCandidate} candidate
 */

/**
 * @typedef {object} CallEndedEvent
 * @property {"call.ended"} type
 * @property {string} call_id
 * @property {"hangup" | "rejected" | "timeout" | "answered_elsewhere" | "busy" | "failed" | "cancelled"} reason
 */

/**
 * The call's transport changed: to both devices in the call, each with its own policy
 * and fresh TURN credentials. The device that asked (`restart`) now sends an
 * ICE-restart offer (`call.reoffer`); the other one applies its new policy and waits
 * for that offer.
 * @typedef {object} CallTransportEvent
 * @property {"call.transport"} type
 * @property {string} call_id
 * @property {"relay" | "direct"} transport
 * @property {IceServer[]} ice_servers
 * @property {"relay" | "all"} ice_transport_policy
 * @property {boolean} restart
 * @property {boolean} direct_allowed
 */

/**
 * @typedef {object} CallReofferEvent
 * @property {"call.reoffer"} type
 * @property {string} call_id
 * @property {string} sdp
 */

/**
 * @typedef {object} CallReanswerEvent
 * @property {"call.reanswer"} type
 * @property {string} call_id
 * @property {string} sdp
 */

/**
 * The other person's microphone and camera are on or off (see MediaFrame).
 * @typedef {object} CallMediaEvent
 * @property {"call.media"} type
 * @property {string} call_id
 * @property {boolean} audio
 * @property {boolean} video
 */

/**
 * @typedef {object} OfferFrame
 * @property {"call.offer"} type
 * @property {string} call_id
 * @property {string} sdp
 */

/**
 * @typedef {object} AnswerFrame
 * @property {"call.answer"} type
 * @property {string} call_id
 * @property {string} sdp
 */

/**
 * @typedef {object} CandidateFrame
 * @property {"call.candidate"} type
 * @property {string} call_id
 * @property {IceCandidate} candidate
 */

/**
 * @typedef {object} RejectFrame
 * @property {"call.reject"} type
 * @property {string} call_id
 */

/**
 * @typedef {object} HangupFrame
 * @property {"call.hangup"} type
 * @property {string} call_id
 */

/**
 * Ask to switch an answered call to the relay (or back to direct): see
 * :class:`CallTransportFrame` for what follows.
 * @typedef {object} TransportFrame
 * @property {"call.transport"} type
 * @property {string} call_id
 * @property {"relay" | "direct"} transport
 */

/**
 * The ICE-restart offer of the device that asked for a transport switch.
 * @typedef {object} ReofferFrame
 * @property {"call.reoffer"} type
 * @property {string} call_id
 * @property {string} sdp
 */

/**
 * The other device's answer to a :class:`ReofferFrame`.
 * @typedef {object} ReanswerFrame
 * @property {"call.reanswer"} type
 * @property {string} call_id
 * @property {string} sdp
 */

/**
 * Media of the call connected on this device (its peer connection reached "connected"
 * for the first time). Only the two in-call devices of an answered call may say so;
 * the server uses it for nothing but the call's own record, which then counts as a
 * conversation, timed from now.
 * @typedef {object} ConnectedFrame
 * @property {"call.connected"} type
 * @property {string} call_id
 */

/**
 * What this in-call device sends now: its microphone (`audio`) and camera (`video`) on
 * or off. Handed to the other in-call device only, so it can show "Muted" or "Camera
 * off" instead of silence or a black picture; nothing else.
 * @typedef {object} MediaFrame
 * @property {"call.media"} type
 * @property {string} call_id
 * @property {boolean} audio
 * @property {boolean} video
 */

/** @typedef {CallIncomingEvent | CallAnswerEvent | CallCandidateEvent | CallEndedEvent | CallTransportEvent | CallReofferEvent | CallReanswerEvent | CallMediaEvent} CallEvent */

/** @typedef {OfferFrame | AnswerFrame | CandidateFrame | RejectFrame | HangupFrame | TransportFrame | ReofferFrame | ReanswerFrame | ConnectedFrame | MediaFrame} ClientCallFrame */

export {};
