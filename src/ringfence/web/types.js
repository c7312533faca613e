// Shapes of the server's JSON, as JSDoc types for `tsc --checkJs`.
// The HTTP shapes, the socket's events and the call frames are generated (apitypes.js,
// callframes.js); the socket's own frames (ready, error) are written here.

// The HTTP API's shapes: generated from the server's response models (apitypes.js).
/** @typedef {import("./apitypes.js").User} User */
/** @typedef {import("./apitypes.js").CallRecord} CallRecord */
/** @typedef {import("./apitypes.js").Message} Message */
/** @typedef {import("./apitypes.js").Conversation} Conversation */
/** @typedef {import("./apitypes.js").Settings} Settings */
/** @typedef {import("./apitypes.js").DeviceSession} DeviceSession */
/** @typedef {import("./apitypes.js").StartedCall} StartedCall */
/** @typedef {import("./apitypes.js").CallHistoryItem} CallHistoryItem */

/** @typedef {"audio" | "video"} Media */

/** @typedef {"following" | "verified" | "everyone"} Audience */
/** @typedef {"nobody" | "following" | "everyone"} DirectConnections */

/**
 * @typedef {object} Session
 * @property {User} user
 * @property {string} token
 */

/**
 * @typedef {object} IceServer
 * @property {string[]} urls
 * @property {string} [username]
 * @property {string} [credential]
 */

/** @typedef {"relay" | "all"} IcePolicy */

/**
 * @typedef {object} WireCandidate
 * @property {string} candidate
 * @property {string | null} [sdpMid]
 * @property {number | null} [sdpMLineIndex]
 * @property {string} [usernameFragment]
 */

/**
 * @typedef {"hangup" | "rejected" | "timeout" | "answered_elsewhere" | "busy" | "failed" | "cancelled"} EndReason
 */

// --- events from the WebSocket -------------------------------------------------

/**
 * @typedef {object} ReadyEvent
 * @property {"ready"} type
 * @property {User} user
 * @property {string} device_id
 * @property {number} pos
 * @property {boolean} [resync]
 */

// The events of the server's event models (wire/events.py), generated into apitypes.js.
/** @typedef {import("./apitypes.js").MessageNewEvent} MessageNewEvent */
/** @typedef {import("./apitypes.js").ConversationUpdatedEvent} ConversationUpdatedEvent */
/** @typedef {import("./apitypes.js").ConversationReadEvent} ConversationReadEvent */
/** @typedef {import("./apitypes.js").MessageReadEvent} MessageReadEvent */
/** @typedef {import("./apitypes.js").MessageDeliveredEvent} MessageDeliveredEvent */
/** @typedef {import("./apitypes.js").UserUpdatedEvent} UserUpdatedEvent */
/** @typedef {import("./apitypes.js").TypingEvent} TypingEvent */
/** @typedef {import("./apitypes.js").StreamEvent} StreamEvent */

/**
 * @typedef {object} ErrorEvent
 * @property {"error"} type
 * @property {string} error
 * @property {string} detail
 * @property {string} [call_id]
 */

/** @typedef {"relay" | "direct"} Transport */

// Call frames: generated from the server's models (callframes.js, wire/calls.py).
/** @typedef {import("./callframes.js").CallIncomingEvent} CallIncomingEvent */
/** @typedef {import("./callframes.js").CallAnswerEvent} CallAnswerEvent */
/** @typedef {import("./callframes.js").CallCandidateEvent} CallCandidateEvent */
/** @typedef {import("./callframes.js").CallEndedEvent} CallEndedEvent */
/** @typedef {import("./callframes.js").CallTransportEvent} CallTransportEvent */
/** @typedef {import("./callframes.js").CallReofferEvent} CallReofferEvent */
/** @typedef {import("./callframes.js").CallReanswerEvent} CallReanswerEvent */
/** @typedef {import("./callframes.js").CallMediaEvent} CallMediaEvent */
/** @typedef {import("./callframes.js").CallEvent} CallEvent */

/**
 * @typedef {ReadyEvent | StreamEvent | CallEvent | ErrorEvent | {type: "pong"}} ServerEvent
 */

export {};

// --- call history (GET /api/v1/calls) -----------------------------------------------

// --- Web Push ---------------------------------------------------------------------

/** @typedef {"off" | "name_only" | "name_and_text"} MessageNotifications */

/**
 * A browser's push subscription, as PushSubscription.toJSON() gives it.
 * @typedef {object} PushSubscriptionJSON
 * @property {string} endpoint
 * @property {number | null} [expirationTime]
 * @property {{p256dh: string, auth: string}} keys
 */

/**
 * @typedef {object} PushSubscriptionInfo One of my subscriptions, without its endpoint.
 * @property {number} id
 * @property {string} created_at
 * @property {string} push_service The push service's host.
 * @property {boolean} current Made by this session.
 */
