"""Live calls and their deadlines in Redis, shared by every node (see ``ringfence.backends.redis``
for the keys). The offer SDP is stored here only, with a TTL, and never logged."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import cast

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from ringfence.calls.live import LiveCall, TransportPolicy
from ringfence.calls.state import IN_CALL, Call
from ringfence.services.calls.store import CallStore, Deadline


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def live_call_to_json(live: LiveCall) -> str:
    return json.dumps(
        {
            "call": live.call.to_dict(),
            "offer_sdp": live.offer_sdp,
            "pending_candidates": list(live.pending_candidates),
            "caller_policy": live.caller_policy,
            "callee_policy": live.callee_policy,
            "silenced": live.silenced,
            "switching_device": live.switching_device,
            "switch_started": live.switch_started,
        },
        separators=(",", ":"),
    )


def live_call_from_json(text: str | bytes) -> LiveCall:
    """Rebuild a stored LiveCall; ValueError for anything malformed."""
    raw = json.loads(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("call"), dict):
        raise ValueError("stored call is malformed")
    sdp, pending = raw.get("offer_sdp"), raw.get("pending_candidates")
    if not (sdp is None or isinstance(sdp, str)) or not isinstance(pending, list):
        raise ValueError("stored call is malformed")
    if not all(isinstance(body, dict) for body in pending):
        raise ValueError("stored call is malformed")
    return LiveCall(
        Call.from_dict(raw["call"]),
        offer_sdp=sdp,
        pending_candidates=tuple(pending),
        caller_policy=_policy(raw.get("caller_policy")),
        callee_policy=_policy(raw.get("callee_policy")),
        silenced=raw.get("silenced") is True,
        switching_device=_optional(raw.get("switching_device"), str),
        switch_started=_optional_time(raw.get("switch_started")),
    )


def _read(data: bytes | str | None, rev: bytes | str | None) -> LiveCall | None:
    """A stored call with the revision it was read at; None if it is gone."""
    if data is None:
        return None
    live = live_call_from_json(data)
    try:
        revision = int(text(rev)) if rev is not None else 0
    except ValueError:
        raise ValueError("stored call has a bad revision") from None
    return dataclasses.replace(live, revision=revision)


def _optional(value: object, kind: type[str]) -> str | None:
    if value is None or isinstance(value, kind):
        return value
    raise ValueError("stored call is malformed")


def _optional_time(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError("stored call is malformed")


def _policy(value: object) -> TransportPolicy:
    if value == "relay":
        return "relay"
    if value == "all":
        return "all"
    raise ValueError("stored call has a bad transport policy")


# KEYS: call. ARGV: expected revision, new state, data, ttl.
_REPLACE = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev or rev ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'data', ARGV[3], 'rev', tonumber(rev) + 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: call, its deadline kinds, deadlines. ARGV: user-calls key prefix, call id.
_REMOVE = """
local users = redis.call('HGET', KEYS[1], 'users')
redis.call('DEL', KEYS[1])
if users then
  for uid in string.gmatch(users, '%S+') do redis.call('SREM', ARGV[1] .. uid, ARGV[2]) end
end
for _, kind in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('ZREM', KEYS[3], ARGV[2] .. ' ' .. kind)
end
redis.call('DEL', KEYS[2])
"""

# A deadline is set only for a call that exists; setting one also keeps the call (and
# its indexes) from expiring: the periodic liveness check is what keeps a call alive.
# KEYS: call, its deadline kinds, deadlines. ARGV: due, member, kind, NX or XX-less
# flag ("1" replaces), ringing ttl, answered ttl, user-calls key prefix.
_SET_DEADLINE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
else
  redis.call('ZADD', KEYS[3], 'NX', ARGV[1], ARGV[2])
end
redis.call('SADD', KEYS[2], ARGV[3])
local ttl = ARGV[5]
if state == 'answered' or state == 'connected' then ttl = ARGV[6] end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[5]) + tonumber(ARGV[6]))
local users = redis.call('HGET', KEYS[1], 'users')
for uid in string.gmatch(users or '', '%S+') do
  redis.call('EXPIRE', ARGV[7] .. uid, ttl, 'GT')
end
return 1
"""

# KEYS: deadlines. ARGV: now, lease end, limit.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return due
"""

# KEYS: deadlines, the call's deadline kinds. ARGV: member, lease end, kind.
_RELEASE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
end
"""


class RedisCallStore(CallStore):
    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        ringing_ttl_s: int,
        answered_ttl_s: int = 120,
    ) -> None:
        self._r = client
        self._p = prefix
        self._ringing_ttl = ringing_ttl_s
        self._answered_ttl = answered_ttl_s
        self._replace = client.register_script(_REPLACE)
        self._remove = client.register_script(_REMOVE)
        self._set_deadline = client.register_script(_SET_DEADLINE)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def _call(self, call_id: str) -> str:
        return f"{self._p}call:{call_id}"

    def _kinds(self, call_id: str) -> str:
        return f"{self._p}call-deadline-kinds:{call_id}"

    def _user(self, user_id: int) -> str:
        return f"{self._p}user-calls:{user_id}"

    @property
    def _deadlines(self) -> str:
        return f"{self._p}call-deadlines"

    def _ttl(self, live: LiveCall) -> int:
        return self._answered_ttl if live.call.state in IN_CALL else self._ringing_ttl

    async def get(self, call_id: str) -> LiveCall | None:
        data, rev = await self._r.hmget(self._call(call_id), ["data", "rev"])
        return _read(data, rev)

    async def put(self, live: LiveCall) -> None:
        call = live.call
        key, ttl = self._call(call.call_id), self._ttl(live)
        mapping: dict[FieldT, EncodableT] = {
            "state": call.state.value,
            "users": f"{call.caller_id} {call.callee_id}",
            "data": live_call_to_json(live),
            "rev": 1,
        }
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, ttl)
            for user_id in (call.caller_id, call.callee_id):
                # Lengthen the index's lifetime, never shorten it (GT), and give a new
                # index one (NX): it must outlive every call it lists.
                pipe.sadd(self._user(user_id), call.call_id)
                pipe.expire(self._user(user_id), max(ttl, self._answered_ttl), gt=True)
                pipe.expire(self._user(user_id), max(ttl, self._answered_ttl), nx=True)
            await pipe.execute()

    async def replace(self, expected: LiveCall, live: LiveCall) -> bool:
        if expected.call.call_id != live.call.call_id or expected.revision < 1:
            return False
        done = await self._replace(
            keys=[self._call(live.call.call_id)],
            args=[
                str(expected.revision),
                live.call.state.value,
                live_call_to_json(live),
                self._ttl(live),
            ],
        )
        return bool(done)

    async def remove(self, call_id: str) -> None:
        await self._remove(
            keys=[self._call(call_id), self._kinds(call_id), self._deadlines],
            args=[f"{self._p}user-calls:", call_id],
        )

    async def calls_of(self, user_id: int) -> list[LiveCall]:
        ids = sorted(await self._r.smembers(self._user(user_id)))
        if not ids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for call_id in ids:
                pipe.hmget(self._call(text(call_id)), ["data", "rev"])
            found = await pipe.execute()
        gone = [call_id for call_id, (data, _) in zip(ids, found, strict=True) if data is None]
        if gone:  # expired: drop them from the index
            await self._r.srem(self._user(user_id), *gone)
        return [live for data, rev in found if (live := _read(data, rev)) is not None]

    async def set_deadline(
        self, call_id: str, kind: str, due: float, *, replace: bool = True
    ) -> None:
        await self._set_deadline(
            keys=[self._call(call_id), self._kinds(call_id), self._deadlines],
            args=[
                repr(due),
                f"{call_id} {kind}",
                kind,
                "1" if replace else "0",
                self._ringing_ttl,
                self._answered_ttl,
                f"{self._p}user-calls:",
            ],
        )

    async def cancel_deadline(self, call_id: str, kind: str) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.zrem(self._deadlines, f"{call_id} {kind}")
            pipe.srem(self._kinds(call_id), kind)
            await pipe.execute()

    async def claim_due(self, now: float, *, lease_s: float, limit: int) -> list[Deadline]:
        lease = now + lease_s
        members = await self._claim(keys=[self._deadlines], args=[repr(now), repr(lease), limit])
        claimed = []
        for member in cast(Iterable[bytes | str], members):
            call_id, _, kind = text(member).partition(" ")
            claimed.append(Deadline(call_id, kind, lease))
        return claimed

    async def release(self, deadline: Deadline) -> None:
        await self._release(
            keys=[self._deadlines, self._kinds(deadline.call_id)],
            args=[f"{deadline.call_id} {deadline.kind}", repr(deadline.lease), deadline.kind],
        )
