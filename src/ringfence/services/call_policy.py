"""Who may call whom, and whether a call is relayed: the callee decides who may call,
and a call is direct only when both people allow it.

Both questions are answered on the server from stored settings, every time, so they
hold for every client (browser, API or Python) and take effect for the very next call.
The facts about a pair are read in three queries (:func:`pair_facts`); the rules are
pure functions of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ringfence.calls.live import TransportPolicy
from ringfence.services.views import DEFAULT_SETTINGS, settings_view
from ringfence.storage.repositories import Store, User
from ringfence.wire.models import SettingsView

Verdict = Literal["ring", "silence", "refuse"]


@dataclass(frozen=True, slots=True)
class PairFacts:
    """Everything the call rules look at for one caller and one callee."""

    caller: User
    callee: User
    caller_settings: SettingsView
    callee_settings: SettingsView
    caller_follows_callee: bool
    callee_follows_caller: bool
    blocked: bool  # either way
    callee_state: str | None  # the callee's state in their conversation, if any


async def pair_facts(store: Store, caller: User, callee: User) -> PairFacts:
    stored = await store.settings.get_many([caller.id, callee.id])
    caller_follows, callee_follows, blocked = await store.social.between(caller.id, callee.id)

    def settings_of(user: User) -> SettingsView:
        row = stored.get(user.id)
        return DEFAULT_SETTINGS if row is None else settings_view(row)

    return PairFacts(
        caller=caller,
        callee=callee,
        caller_settings=settings_of(caller),
        callee_settings=settings_of(callee),
        caller_follows_callee=caller_follows,
        callee_follows_caller=callee_follows,
        blocked=blocked,
        callee_state=await store.conversations.member_state_between(
            caller.id, callee.id, callee.id
        ),
    )


def call_verdict(facts: PairFacts) -> Verdict:
    """``ring`` only when every rule admits the call. ``silence`` when only the audience
    does not match and the callee chose to silence unknown callers: the call is then
    recorded as missed without ringing. Callers are told a plain no for ``refuse``,
    whichever rule refused, so it is never revealed."""
    caller, callee, settings = facts.caller, facts.callee, facts.callee_settings
    if caller.id == callee.id or caller.suspended or callee.suspended:
        return "refuse"
    if not settings.calls_enabled or facts.blocked:
        return "refuse"
    # X's "the caller must have messaged you", made stronger: a conversation the callee
    # has not accepted (a pending or declined request) does not count.
    if facts.callee_state != "accepted":
        return "refuse"
    audience = set(settings.call_audience)
    if (
        "everyone" in audience
        or ("verified" in audience and caller.verified)
        or ("following" in audience and facts.callee_follows_caller)
    ):
        return "ring"
    return "silence" if settings.silence_unknown_callers else "refuse"


def transport_policies(facts: PairFacts) -> tuple[TransportPolicy, TransportPolicy]:
    """``(caller's, callee's)`` policy: ``("all", "all")`` only when *both* people allow
    a direct connection with each other, and ``("relay", "relay")`` otherwise.

    Consent must be mutual because a direct connection is two-way. If only one side
    were relayed, the other side's host and NAT addresses would still be handed to the
    protected person's device; a buggy or modified client could dial them from its own
    address, and the call would run direct with the protected person's address exposed
    as peer-reflexive. So a side that has not consented is never given anything it
    could dial either.
    """
    if direct_consent(facts):
        return ("all", "all")
    return ("relay", "relay")


def direct_consent(facts: PairFacts) -> bool:
    """Whether both people allow a direct connection with each other right now."""
    return _allows_direct(facts.caller_settings, facts.caller_follows_callee) and _allows_direct(
        facts.callee_settings, facts.callee_follows_caller
    )


def _allows_direct(settings: SettingsView, follows_other: bool) -> bool:
    setting = settings.direct_connections
    return setting == "everyone" or (setting == "following" and follows_other)
