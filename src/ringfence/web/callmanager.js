// The one call this tab may be in: placing it, taking an incoming one, routing the
// server's call frames to it, ringing (ringing.js), and keeping its peer's name and
// picture current while it lasts. The call itself is call.js's.

import { ApiError } from "./api.js";
import { CallSession } from "./call.js";
import * as text from "./calltext.js";
import { Ringer } from "./ringing.js";

/** @import { Api } from "./api.js" */
/** @import { EventSocket } from "./events.js" */
/** @import { User, Media, CallEvent, ErrorEvent, CallIncomingEvent } from "./types.js" */

/**
 * Owns the one call this tab may be in, routes signaling to it, and rings.
 */
export class CallManager {
  /**
   * @param {Api} api
   * @param {EventSocket} events
   * @param {(session: CallSession | null) => void} onChange
   */
  constructor(api, events, onChange) {
    this.api = api;
    this.events = events;
    this.onChange = onChange;
    /** @type {CallSession | null} */
    this.current = null;
    this.ringer = new Ringer(() => {
      const session = this.current;
      const elsewhere = this.ringer.place === "elsewhere";
      if (!session || session.ringsElsewhere === elsewhere) return;
      session.ringsElsewhere = elsewhere;
      // Only a call still ringing shows it; an ended one has been drawn for good.
      if (session.state === "incoming") this.onChange(session);
    });
  }

  /** Where the ringing call rings: in this tab, or in another tab of this browser. */
  get ringPlace() {
    return this.ringer.place;
  }

  get busy() {
    return this.current !== null && this.current.active;
  }

  /**
   * Place a call. Throws ApiError when the server refuses (403 call_not_allowed,
   * 429) or cannot be reached; everything after that shows on the call screen.
   * @param {Pick<User, "username" | "display_name">} peer
   * @param {Media} media
   */
  async start(peer, media) {
    if (this.busy) throw new ApiError(409, "already_in_call", text.ALREADY_IN_CALL);
    const started = await this.api.startCall(peer.username, media);
    const session = new CallSession({
      direction: "outgoing",
      callId: started.call_id,
      peer,
      media,
      iceServers: started.ice_servers,
      policy: started.ice_transport_policy,
      directAllowed: false, // the callee's call.answer says
      offerSdp: null,
      events: this.events,
      onChange: () => this.changed(session),
    });
    this.adopt(session);
    await session.place();
  }

  /** @param {CallSession} session */
  adopt(session) {
    this.current = session;
    this.changed(session);
  }

  /** @param {CallSession} session */
  changed(session) {
    if (session !== this.current) return;
    this.ringer.update(session);
    this.onChange(session);
  }

  /**
   * "Try again" after a call that failed to connect: place it again, to the same
   * person with the same media (for a call that came in, that calls them back).
   * Throws ApiError like start(); the failed call's screen then stays.
   */
  async retry() {
    const ended = this.current;
    if (!ended || ended.active || !ended.retryable) return;
    this.current = null;
    try {
      await this.start(ended.peer, ended.media);
    } catch (error) {
      if (this.current === null) this.current = ended;
      throw error;
    }
  }

  /** Close the finished call's screen. */
  dismiss() {
    if (this.current && !this.current.active) {
      this.current = null;
      this.onChange(null);
    }
  }

  /** @param {CallEvent | ErrorEvent} event */
  handle(event) {
    if (event.type === "call.incoming") {
      this.onIncoming(event);
      return;
    }
    const session = this.current;
    if (!session || event.call_id !== session.callId) return;
    if (event.type === "error") session.onServerError(event);
    else void session.onSignal(event);
  }

  /** @param {CallIncomingEvent} event */
  onIncoming(event) {
    if (this.current?.callId === event.call_id) return; // rung again after a reconnect
    // Already in a call here: leave this one to the user's other devices (or it
    // shows as missed in the thread).
    if (this.busy) return;
    const session = new CallSession({
      direction: "incoming",
      callId: event.call_id,
      peer: event.from,
      media: event.media,
      iceServers: event.ice_servers,
      policy: event.ice_transport_policy,
      directAllowed: event.direct_allowed === true,
      offerSdp: event.sdp,
      events: this.events,
      onChange: () => this.changed(session),
    });
    this.adopt(session);
  }

  /**
   * The page is going away (reload, tab closed): hang up a call in progress so the
   * other side isn't left waiting for the server's grace period. A call still ringing
   * here is left alone: it goes on ringing on the user's other devices.
   */
  leave() {
    const session = this.current;
    if (session?.active && session.state !== "incoming") session.hangup();
  }

  /**
   * Someone changed their name (or deleted their account): a call with them, in
   * progress or just ended, shows them as they are now.
   * @param {User} user
   */
  updateUser(user) {
    const session = this.current;
    if (!session || session.peer.username !== user.username) return;
    session.peer = { ...session.peer, ...user };
    this.onChange(session);
  }

  /** Sign-out: end whatever is going on. */
  stop() {
    this.current?.hangup();
    this.ringer.stop();
    this.current = null;
  }
}
