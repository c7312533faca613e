"""Who may call whom, and whether each side of a call is relayed: the callee decides.

Both questions are answered on the server from stored settings, every time, so they
hold for every client (browser, API or Python) and take effect for the very next call.
"""

from __future__ import annotations

from typing import Literal

from ringfence.realtime.ephemeral import TransportPolicy
from ringfence.services.settings import load_settings
from ringfence.storage.repositories import Store, User

Verdict = Literal["ring", "silence", "refuse"]


async def call_verdict(store: Store, caller: User, callee: User) -> Verdict:
    """``ring`` only when every rule admits the call. ``silence`` when only the audience
    does not match and the callee chose to silence unknown callers: the call is then
    recorded as missed without ringing. Callers are told a plain no for ``refuse``,
    whichever rule refused, so it is never revealed."""
    if caller.id == callee.id or caller.suspended or callee.suspended:
        return "refuse"
    settings = await load_settings(store, callee.id)
    if not settings.calls_enabled:
        return "refuse"
    if await store.social.blocked_either_way(caller.id, callee.id):
        return "refuse"
    # X's "the caller must have messaged you", made stronger: a conversation the callee
    # has not accepted (a pending or declined request) does not count.
    conv = await store.conversations.between(caller.id, callee.id)
    if conv is None or await store.conversations.member_state(conv.id, callee.id) != "accepted":
        return "refuse"
    audience = set(settings.call_audience)
    if (
        "everyone" in audience
        or ("verified" in audience and caller.verified)
        or ("following" in audience and await store.social.follows(callee.id, caller.id))
    ):
        return "ring"
    return "silence" if settings.silence_unknown_callers else "refuse"


async def transport_policy(store: Store, side: User, other: User) -> TransportPolicy:
    """``"all"`` (direct allowed) only if ``side``'s own setting admits ``other``;
    anything else keeps ``side`` behind the relay, its address hidden."""
    setting = (await load_settings(store, side.id)).direct_connections
    if setting == "everyone":
        return "all"
    if setting == "following" and await store.social.follows(side.id, other.id):
        return "all"
    return "relay"
