// Shapes of the server's JSON, as JSDoc types for `tsc --checkJs`.
// The HTTP shapes and call frames are generated (apitypes.js, callframes.js); the rest
// mirror src/ringfence/services/ (events) by hand.

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

/**
 * @typedef {object} MessageNewEvent
 * @property {"message.new"} type
 * @property {number} pos
 * @property {Message} message
 * @property {boolean} is_request
 */

/**
 * @typedef {object} ConversationUpdatedEvent
 * @property {"conversation.updated"} type
 * @property {number} pos
 * @property {Conversation} conversation
 */

/**
 * My read position in the conversation with `user` moved (on any of my devices).
 * @typedef {object} ConversationReadEvent
 * @property {"conversation.read"} type
 * @property {number} pos
 * @property {string} user The other person.
 * @property {number} up_to
 */

/**
 * `user` read my messages up to `up_to` (only where we both share read receipts).
 * @typedef {object} MessageReadEvent
 * @property {"message.read"} type
 * @property {number} pos
 * @property {string} user The reader.
 * @property {number} up_to
 */

/**
 * One of `user`'s devices has my messages up to `up_to` (only where we both share
 * read receipts).
 * @typedef {object} MessageDeliveredEvent
 * @property {"message.delivered"} type
 * @property {number} pos
 * @property {string} user The recipient.
 * @property {number} up_to
 */

/**
 * Someone I have a conversation with (or I, on any device) changed their display name.
 * @typedef {object} UserUpdatedEvent
 * @property {"user.updated"} type
 * @property {number} pos
 * @property {User} user
 */

/**
 * `user` is typing to me. Ephemeral: never stored, so it has no position.
 * @typedef {object} TypingEvent
 * @property {"typing"} type
 * @property {string} user
 */

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
 * @typedef {ReadyEvent | MessageNewEvent | ConversationUpdatedEvent | ConversationReadEvent | MessageReadEvent
 *   | MessageDeliveredEvent | UserUpdatedEvent | TypingEvent | CallEvent | ErrorEvent | {type: "pong"}} ServerEvent
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
