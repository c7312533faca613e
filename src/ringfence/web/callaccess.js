// Who may call me, as my own settings and follows say: one place for the words that
// the message-request boxes, a conversation just accepted and the settings screen use,
// so that what they say about calls is true.
//
// Only my own side is known here. The server also needs a conversation I accepted and
// no block either way (services/call_policy.py); nothing here is, or could be, about
// anyone else's settings.

/** @import { Audience, Settings, User } from "./types.js" */

/**
 * The server takes any list of audiences; these are the ones that mean different
 * things ("everyone" with anything else is just everyone). The settings screen offers
 * them as radio buttons, so no two can contradict each other.
 * @typedef {"everyone" | "following_verified" | "following" | "verified" | "nobody"} AudienceChoice
 */

/**
 * @typedef {object} AudienceOption
 * @property {AudienceChoice} choice
 * @property {Audience[]} audience What the server is sent.
 * @property {string} label The radio button's label.
 * @property {string} who Who may ring me, in a sentence ("You take calls only from ...").
 */

/** @type {AudienceOption[]} The settings screen's choices, in its order. "nobody" is not offered: that is "Allow calls" off. */
export const AUDIENCE_OPTIONS = [
  { choice: "everyone", audience: ["everyone"], label: "Everyone you've accepted a conversation with", who: "everyone you've accepted a conversation with" },
  { choice: "following_verified", audience: ["following", "verified"], label: "People you follow and verified accounts", who: "people you follow and verified accounts" },
  { choice: "following", audience: ["following"], label: "Only people you follow", who: "people you follow" },
  { choice: "verified", audience: ["verified"], label: "Only verified accounts", who: "verified accounts" },
];

/**
 * What a stored audience means, as one choice.
 * @param {readonly Audience[]} audience
 * @returns {AudienceChoice}
 */
export function audienceChoice(audience) {
  if (audience.includes("everyone")) return "everyone";
  const following = audience.includes("following");
  const verified = audience.includes("verified");
  if (following && verified) return "following_verified";
  if (following) return "following";
  return verified ? "verified" : "nobody";
}

/**
 * Who may ring me, as a sentence.
 * @param {Settings} settings
 */
export function takesCallsFrom(settings) {
  if (!settings.calls_enabled) return "Your calls are off: nobody can call you.";
  const choice = audienceChoice(settings.call_audience);
  if (choice === "everyone") return "Everyone you've accepted a conversation with can call you.";
  if (choice === "nobody") return "Nobody can call you: your settings allow no one.";
  const option = AUDIENCE_OPTIONS.find((o) => o.choice === choice);
  return `You take calls only from ${option?.who ?? "nobody"}.`;
}

/**
 * What a person can do about calls from someone, by my own settings:
 * - "allowed": they can ring me (in a conversation I accepted);
 * - "off": my calls are off;
 * - "follow": my audience has "people you follow", and I don't follow them (yet);
 * - "audience": my audience leaves them out, and following them would not change it;
 * - "unknown": my settings or follows are not loaded yet.
 * `silenced`: instead of being refused, their calls show as missed calls.
 * @typedef {object} CallAccess
 * @property {"allowed" | "off" | "follow" | "audience" | "unknown"} kind
 * @property {boolean} silenced
 */

/**
 * @param {Settings | null} settings Mine.
 * @param {Set<string> | null} following Whom I follow.
 * @param {Pick<User, "username" | "verified">} peer
 * @returns {CallAccess}
 */
export function callAccess(settings, following, peer) {
  if (!settings) return { kind: "unknown", silenced: false };
  if (!settings.calls_enabled) return { kind: "off", silenced: false };
  const audience = settings.call_audience;
  const silenced = settings.silence_unknown_callers;
  if (audience.includes("everyone") || (audience.includes("verified") && peer.verified)) {
    return { kind: "allowed", silenced: false };
  }
  if (!audience.includes("following")) return { kind: "audience", silenced };
  if (following === null) return { kind: "unknown", silenced: false };
  if (following.has(peer.username)) return { kind: "allowed", silenced: false };
  return { kind: "follow", silenced };
}

/**
 * With whom I allow direct connections, in plain words.
 * @param {Settings} settings
 */
export function directWords(settings) {
  switch (settings.direct_connections) {
    case "nobody":
      return "Direct connections: with nobody. Every call goes through the relay, so your IP address stays hidden.";
    case "following":
      return "Direct connections: with people you follow, when they allow it with you too. They can then see your IP address.";
    case "everyone":
      return "Direct connections: with anyone you call or who calls you, when they allow it with you too. They can then see your IP address.";
  }
}

/**
 * What the list of message requests says about calls from their senders, true for
 * all of them whatever my settings (it used to promise that accepting lets them call,
 * which the default audience, people you follow, does not).
 * @param {Settings | null} settings
 */
export function requestsCallText(settings) {
  if (!settings) return "They can't call you while they wait here.";
  if (!settings.calls_enabled) return "Your calls are off, so nobody can call you.";
  switch (audienceChoice(settings.call_audience)) {
    case "everyone":
      return "Until you accept, they can't call you.";
    case "following":
      return "They can't call you, and accepting alone doesn't change that: you take calls only from people you follow.";
    case "following_verified":
    case "verified":
      return "Until you accept, they can't call you; after that, only the verified accounts among them can.";
    case "nobody":
      return "They can't call you: your settings allow no one to.";
  }
}
