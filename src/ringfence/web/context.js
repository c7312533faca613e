// What every signed-in view is given: the app's services and its shared actions.

/** @import { Api } from "./api.js" */
/** @import { Store } from "./store.js" */
/** @import { Outbox } from "./outbox.js" */
/** @import { CallManager } from "./callmanager.js" */
/** @import { User, Media } from "./types.js" */

/**
 * @typedef {object} AppContext
 * @property {Api} api
 * @property {Store} store
 * @property {Outbox} outbox
 * @property {CallManager} calls
 * @property {(hash: string) => void} navigate
 * @property {() => Promise<void>} signOut Sign this tab out (as the bar's Sign out does).
 * @property {(username: string) => Promise<void>} acceptRequest
 * @property {(username: string) => Promise<void>} declineRequest
 * @property {(username: string) => Promise<void>} blockUser
 * @property {(username: string) => Promise<void>} loadThread Newest page of a thread.
 * @property {(username: string) => Promise<void>} loadOlder The page before the oldest loaded.
 * @property {(username: string, upTo: number) => Promise<void>} markRead
 *   Mark this person's messages up to `upTo` read (on the server, then here).
 * @property {(username: string) => void} sendTyping Tell them I am typing, if the socket is open.
 * @property {() => Promise<void>} loadFollowing
 * @property {(peer: Pick<User, "username" | "display_name">, media: Media) => Promise<CallRefusal | null>} placeCall
 *   Start a call; resolves to why it was refused, or null.
 */

/**
 * A call that was not started, in the same neutral words whatever the reason (every
 * refusal looks the same, so nobody's settings can be probed).
 * @typedef {object} CallRefusal
 * @property {string} text
 * @property {number | null} retryAfterS Rate-limited: the call may be tried again after this long.
 */

export {};
