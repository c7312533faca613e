// Shapes of the server's JSON, as JSDoc types for `tsc --checkJs`.
// They mirror src/ringfence/services/views.py, api/calls.py and wire/calls.py.

/**
 * @typedef {object} User
 * @property {number} id
 * @property {string} username
 * @property {string} display_name
 * @property {boolean} verified
 */

/** @typedef {"audio" | "video"} Media */

/**
 * A finished call. "completed": media connected; "not_connected": answered, but media
 * never connected. duration_s runs from when media connected (0 unless completed).
 * @typedef {object} CallRecord
 * @property {string} call_id
 * @property {Media} media
 * @property {"completed" | "not_connected" | "missed" | "rejected" | "cancelled" | "busy"} outcome
 * @property {number} duration_s
 */

/**
 * @typedef {object} Message
 * @property {number} id
 * @property {string} sender
 * @property {string} recipient
 * @property {"text" | "call"} kind
 * @property {string} text
 * @property {string} created_at
 * @property {CallRecord | null} call
 * @property {string | null} [txn_id] Only on the sender's own copy.
 */

/**
 * @typedef {object} Conversation
 * @property {User} user
 * @property {Message | null} last_message
 * @property {boolean} is_request
 * @property {string} updated_at
 * @property {number} unread The other person's text messages past my read position.
 */

/** @typedef {"following" | "verified" | "everyone"} Audience */
/** @typedef {"nobody" | "following" | "everyone"} DirectConnections */

/**
 * @typedef {object} Settings
 * @property {boolean} calls_enabled
 * @property {Audience[]} call_audience
 * @property {DirectConnections} direct_connections
 * @property {boolean} silence_unknown_callers
 * @property {boolean} read_receipts Reciprocal: off, I don't see other people's either.
 * @property {boolean} typing_indicators Reciprocal, like read_receipts.
 * @property {MessageNotifications} message_notifications What a pushed new message shows.
 */

/**
 * @typedef {object} Session
 * @property {User} user
 * @property {string} token
 */

/**
 * One signed-in device of mine (GET /api/v1/me/sessions). The server keeps a short
 * description of the device, never its address.
 * @typedef {object} DeviceSession
 * @property {number} id
 * @property {string} created_at When it signed in.
 * @property {string} last_seen_at When it was last used.
 * @property {string} device "Chrome on Linux", "Ringfence terminal client 0.1.0"...
 * @property {boolean} current It is the session this client is using.
 */

/**
 * @typedef {object} IceServer
 * @property {string[]} urls
 * @property {string} [username]
 * @property {string} [credential]
 */

/** @typedef {"relay" | "all"} IcePolicy */

/**
 * @typedef {object} StartedCall
 * @property {string} call_id
 * @property {IceServer[]} ice_servers
 * @property {IcePolicy} ice_transport_policy
 * @property {number} ring_timeout_s
 */

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
 *   | UserUpdatedEvent | TypingEvent | CallEvent | ErrorEvent | {type: "pong"}} ServerEvent
 */

export {};

// --- call history (GET /api/v1/calls) -----------------------------------------------

/**
 * One call of mine, as GET /api/v1/calls lists them (newest first): the call record
 * of message `message_id`, with the other person and which way it went.
 * @typedef {object} CallHistoryItem
 * @property {number} message_id The call record's message id (the paging cursor).
 * @property {CallRecord} call
 * @property {User} peer The other person.
 * @property {"outgoing" | "incoming"} direction
 * @property {string} created_at
 */

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
