// Generated from the server's response models and socket events
// (scripts/lib/render_generated.py). Do not edit: tests/unit/test_generated.py fails
// while this file and its source differ.

/**
 * @typedef {object} User
 * @property {number} id
 * @property {string} username
 * @property {string} display_name
 * @property {boolean} verified
 * @property {boolean} deleted
 */

/**
 * @typedef {object} Session
 * @property {User} user
 * @property {string} token
 */

/**
 * A finished call, as its thread and call history show it.
 * @typedef {object} CallRecord
 * @property {string} call_id
 * @property {"audio" | "video"} media
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
 * @property {CallRecord | null} [call]
 * @property {string | null} [txn_id]
 */

/**
 * @typedef {object} Conversation
 * @property {User} user
 * @property {Message | null} last_message
 * @property {boolean} is_request
 * @property {"accepted" | "request" | "declined"} state
 * @property {string} updated_at
 * @property {number} unread
 * @property {number} peer_read_up_to
 * @property {number} peer_delivered_up_to
 */

/**
 * @typedef {object} Settings
 * @property {boolean} calls_enabled
 * @property {("following" | "verified" | "everyone")[]} call_audience
 * @property {"nobody" | "following" | "everyone"} direct_connections
 * @property {boolean} silence_unknown_callers
 * @property {boolean} read_receipts
 * @property {boolean} typing_indicators
 * @property {"off" | "name_only" | "name_and_text"} message_notifications
 */

/**
 * One signed-in device, for the account page. No address is kept or shown.
 * @typedef {object} DeviceSession
 * @property {number} id
 * @property {string} created_at
 * @property {string} last_seen_at
 * @property {string} device
 * @property {boolean} current
 */

/**
 * @typedef {object} IceServerView
 * @property {string[]} urls
 * @property {string} username
 * @property {string} credential
 */

/**
 * @typedef {object} StartedCall
 * @property {string} call_id
 * @property {IceServerView[]} ice_servers
 * @property {"relay" | "all"} ice_transport_policy
 * @property {number} ring_timeout_s
 */

/**
 * @typedef {object} CallHistoryItem
 * @property {number} message_id
 * @property {CallRecord} call
 * @property {User} peer
 * @property {"outgoing" | "incoming"} direction
 * @property {string} created_at
 */

/**
 * @typedef {object} PushSubscriptionInfo
 * @property {number} id
 * @property {string} created_at
 * @property {string} push_service
 * @property {boolean} current
 */

/**
 * @typedef {object} PushSubscriptionKeys
 * @property {string} p256dh
 * @property {string} auth
 */

/**
 * A browser's `PushSubscription.toJSON()`.
 * @typedef {object} PushSubscriptionJSON
 * @property {string} endpoint
 * @property {number | null} [expirationTime]
 * @property {PushSubscriptionKeys} keys
 */

/**
 * The answer to `auth`: who the socket belongs to, its device id, and the stream
 * position it starts at. `resync` (only when true): drop everything held and reload.
 * @typedef {object} ReadyEvent
 * @property {"ready"} type
 * @property {User} user
 * @property {string} device_id
 * @property {number} pos
 * @property {true} [resync]
 */

/**
 * A frame was refused: `error` is a code, `detail` says why in words, and `call_id`
 * names the call a refused call frame was about. A refused `message.send` carries its
 * `txn_id` and what the HTTP route would have answered: `status`, with `retry_after`
 * (seconds) for 429 and 503, and `fields` for 422.
 * @typedef {object} ErrorEvent
 * @property {"error"} type
 * @property {string} error
 * @property {string} detail
 * @property {string} [call_id]
 * @property {string} [txn_id]
 * @property {number} [status]
 * @property {number} [retry_after]
 * @property {string[]} [fields]
 */

/**
 * The answer to `message.send`: the message, stored and committed, with the frame's
 * `txn_id` (the original message when that txn_id was sent before).
 * @typedef {object} MessageAckEvent
 * @property {"message.ack"} type
 * @property {string} txn_id
 * @property {Message} message
 */

/**
 * A message to or from me, on every device of mine; `is_request`: it is in a message
 * request (not yet accepted by its recipient).
 * @typedef {object} MessageNewEvent
 * @property {Message} message
 * @property {boolean} is_request
 * @property {"message.new"} type
 * @property {number} pos
 */

/**
 * I accepted or declined a conversation, on some device.
 * @typedef {object} ConversationUpdatedEvent
 * @property {Conversation} conversation
 * @property {"conversation.updated"} type
 * @property {number} pos
 */

/**
 * My read position with `user` (the other person) moved to `up_to`, on some device.
 * @typedef {object} ConversationReadEvent
 * @property {string} user
 * @property {number} up_to
 * @property {"conversation.read"} type
 * @property {number} pos
 */

/**
 * `user` read my messages up to `up_to` (only where we both share read receipts).
 * @typedef {object} MessageReadEvent
 * @property {string} user
 * @property {number} up_to
 * @property {"message.read"} type
 * @property {number} pos
 */

/**
 * One of `user`'s devices has my messages up to `up_to` (on the same terms as
 * message.read).
 * @typedef {object} MessageDeliveredEvent
 * @property {string} user
 * @property {number} up_to
 * @property {"message.delivered"} type
 * @property {number} pos
 */

/**
 * Someone I have a conversation with (or I, on any device) changed their display name,
 * or deleted their account (`user.deleted`, under the username I knew).
 * @typedef {object} UserUpdatedEvent
 * @property {User} user
 * @property {"user.updated"} type
 * @property {number} pos
 */

/**
 * `user` is typing to me. Never stored, so it has no position.
 * @typedef {object} TypingEvent
 * @property {string} user
 * @property {"typing"} type
 */

/** @typedef {MessageNewEvent | ConversationUpdatedEvent | ConversationReadEvent | MessageReadEvent | MessageDeliveredEvent | UserUpdatedEvent | TypingEvent} StreamEvent */

export {};
