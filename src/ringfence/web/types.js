// Shapes of the server's JSON, as JSDoc types for `tsc --checkJs`. Every one comes from
// the server's models: the HTTP shapes, the socket's own frames and its events are
// generated into apitypes.js, the call frames into callframes.js (both by
// scripts/lib/render_generated.py). This module only gives them the names the client
// uses, and names parts of them (a setting's values, a call's end reasons).

// The HTTP API's shapes (apitypes.js).
/** @typedef {import("./apitypes.js").User} User */
/** @typedef {import("./apitypes.js").Session} Session */
/** @typedef {import("./apitypes.js").CallRecord} CallRecord */
/** @typedef {import("./apitypes.js").Message} Message */
/** @typedef {import("./apitypes.js").Conversation} Conversation */
/** @typedef {import("./apitypes.js").Settings} Settings */
/** @typedef {import("./apitypes.js").DeviceSession} DeviceSession */
/** @typedef {import("./apitypes.js").StartedCall} StartedCall */
/** @typedef {import("./apitypes.js").CallHistoryItem} CallHistoryItem */

/** @typedef {CallRecord["media"]} Media */
/** @typedef {Settings["call_audience"][number]} Audience */
/** @typedef {Settings["direct_connections"]} DirectConnections */
/** @typedef {Settings["message_notifications"]} MessageNotifications */
/** @typedef {StartedCall["ice_transport_policy"]} IcePolicy */

// Web Push (apitypes.js): what the browser's PushSubscription.toJSON() gives, and one
// of my subscriptions as the server lists it (without its endpoint).
/** @typedef {import("./apitypes.js").PushSubscriptionJSON} PushSubscriptionJSON */
/** @typedef {import("./apitypes.js").PushSubscriptionInfo} PushSubscriptionInfo */

// --- the WebSocket ---------------------------------------------------------------

// The socket's own frames (wire/frames.py) and the events of wire/events.py.
/** @typedef {import("./apitypes.js").ReadyEvent} ReadyEvent */
/** @typedef {import("./apitypes.js").ErrorEvent} ErrorEvent */
/** @typedef {import("./apitypes.js").MessageAckEvent} MessageAckEvent */
/** @typedef {import("./apitypes.js").MessageNewEvent} MessageNewEvent */
/** @typedef {import("./apitypes.js").ConversationUpdatedEvent} ConversationUpdatedEvent */
/** @typedef {import("./apitypes.js").ConversationReadEvent} ConversationReadEvent */
/** @typedef {import("./apitypes.js").MessageReadEvent} MessageReadEvent */
/** @typedef {import("./apitypes.js").MessageDeliveredEvent} MessageDeliveredEvent */
/** @typedef {import("./apitypes.js").UserUpdatedEvent} UserUpdatedEvent */
/** @typedef {import("./apitypes.js").TypingEvent} TypingEvent */
/** @typedef {import("./apitypes.js").StreamEvent} StreamEvent */

// Call frames (callframes.js, wire/calls.py).
/** @typedef {import("./callframes.js").IceServer} IceServer */
/** @typedef {import("./callframes.js").IceCandidate} WireCandidate */
/** @typedef {import("./callframes.js").CallIncomingEvent} CallIncomingEvent */
/** @typedef {import("./callframes.js").CallAnswerEvent} CallAnswerEvent */
/** @typedef {import("./callframes.js").CallCandidateEvent} CallCandidateEvent */
/** @typedef {import("./callframes.js").CallEndedEvent} CallEndedEvent */
/** @typedef {import("./callframes.js").CallTransportEvent} CallTransportEvent */
/** @typedef {import("./callframes.js").CallReofferEvent} CallReofferEvent */
/** @typedef {import("./callframes.js").CallReanswerEvent} CallReanswerEvent */
/** @typedef {import("./callframes.js").CallMediaEvent} CallMediaEvent */
/** @typedef {import("./callframes.js").CallEvent} CallEvent */
/** @typedef {CallEndedEvent["reason"]} EndReason */
/** @typedef {CallTransportEvent["transport"]} Transport */

/** @typedef {ReadyEvent | StreamEvent | CallEvent | ErrorEvent | MessageAckEvent | {type: "pong"}} ServerEvent */

export {};
