"""Prove, over the wire, that a TURN relay runs the configuration Ringfence wrote.

Answering STUN proves only that *something* listens on the port. A coturn that
could not read its config file answers too, on built-in defaults: an open relay
that grants allocations without credentials and refuses Ringfence's. So each
check here asks the relay the questions only Ringfence's configuration answers
the right way:

1. an Allocate without credentials must be challenged (401, with our realm);
2. an Allocate with credentials minted from the shared secret must succeed, and
   the answer must be signed with the key those credentials give;
3. a permission toward a denied peer must be refused (403): the peer denials are
   in effect;
4. the allocation is then released (Refresh, lifetime 0), so checks never hold
   relay ports.

This module is sans-I/O, like aioice's ``stun`` codec it builds on: it turns
responses into the next request and never touches a socket or a clock. The
driver (:mod:`ringfence.turn.verify`) owns sockets, retransmissions and timeouts.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Iterable

from aioice import stun
from aioice.turn import UDP_TRANSPORT, make_integrity_key

# Peers every Ringfence relay refuses, whatever its mode: the cloud metadata service
# and other link-local or private addresses (see coturn_config.DENIED_PEER_NETWORKS).
DENIED_PEER_PROBES: tuple[tuple[str, int], ...] = (
    ("169.254.169.254", 80),
    ("10.255.255.254", 9),
    ("fe80::1", 9),
    ("fc00::1", 9),
)
PROBE_LIFETIME_S = 60
# Errors that say "full", not "misconfigured" (RFC 8656 sections 7.2 and 7.3).
CAPACITY_ERRORS = frozenset({486, 508})


class RelayCheckFailed(Exception):
    """The relay is not the one Ringfence configured, or did not answer.

    ``definite`` tells a wrong answer (the relay is misconfigured: stop using it
    at once) from no answer (it may only be overloaded for a moment).
    """

    def __init__(self, problem: str, *, definite: bool = True) -> None:
        super().__init__(problem)
        self.problem = problem
        self.definite = definite


class RelayBusy(RelayCheckFailed):
    """The relay is at its allocation quota: it works, but cannot be checked now."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem, definite=False)


class Phase(enum.Enum):
    CHALLENGE = "an Allocate without credentials"
    ALLOCATE = "an Allocate with fresh credentials"
    DENIED_PEER = "a CreatePermission toward a denied peer"
    HOLDING = "holding the allocation"
    RELEASE = "a Refresh with lifetime 0"
    DONE = "done"


def _describe_error(message: stun.Message) -> str:
    code, reason = message.attributes.get("ERROR-CODE", (None, ""))
    return f"{code} {reason}".strip() if code is not None else "an error without a code"


class AllocationCheck:
    """One relay check as a state machine: feed it responses, send what it asks.

    ``request()`` is the message to send now (the same bytes again for a
    retransmission), or None while the check waits for the caller: once the
    allocation is held (so that its relay socket can be inspected; call
    :meth:`release`) and when it is finished. ``receive()`` raises
    :class:`RelayCheckFailed` naming what the relay did wrong.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        realm: str,
        avoid_peers: Iterable[str] = (),
    ) -> None:
        self._username = username
        self._password = password
        self._realm = realm
        self._avoid_peers = {ipaddress.ip_address(a) for a in avoid_peers}
        self._nonce: bytes | None = None
        self._key = make_integrity_key(username, realm, password)
        self._stale_nonce_retried = False
        self.phase = Phase.CHALLENGE
        self.relayed_address: tuple[str, int] | None = None
        self.denied_peer: tuple[str, int] | None = None
        self._request: stun.Message | None = self._build()

    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE

    def request(self) -> bytes | None:
        """What to send now, or None when it is the caller's turn (or all is done)."""
        return None if self._request is None else bytes(self._request)

    @property
    def transaction_id(self) -> bytes | None:
        return None if self._request is None else self._request.transaction_id

    def release(self) -> None:
        """Go on from HOLDING: free the allocation."""
        if self.phase is not Phase.HOLDING:
            raise RuntimeError(f"release() while {self.phase.value}")
        self._advance(Phase.RELEASE)

    def receive(self, data: bytes) -> None:
        """Take one message from the relay; ignore what does not answer the request."""
        if self._request is None:
            return
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if message.transaction_id != self._request.transaction_id or message.message_class not in (
            stun.Class.RESPONSE,
            stun.Class.ERROR,
        ):
            return
        if message.message_method != self._request.message_method:
            raise RelayCheckFailed(
                f"the relay answered {self.phase.value} with a "
                f"{message.message_method.name} message"
            )
        handler = {
            Phase.CHALLENGE: self._on_challenge,
            Phase.ALLOCATE: self._on_allocate,
            Phase.DENIED_PEER: self._on_denied_peer,
            Phase.RELEASE: self._on_release,
        }[self.phase]
        handler(message)

    # -- transitions ---------------------------------------------------------------

    def _advance(self, phase: Phase) -> None:
        self.phase = phase
        self._request = self._build()

    def _build(self) -> stun.Message | None:
        if self.phase is Phase.CHALLENGE:
            request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
            request.attributes["LIFETIME"] = PROBE_LIFETIME_S
            request.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
            return request
        if self.phase is Phase.ALLOCATE:
            request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
            request.attributes["LIFETIME"] = PROBE_LIFETIME_S
            request.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
            return self._signed(request)
        if self.phase is Phase.DENIED_PEER:
            assert self.denied_peer is not None
            request = stun.Message(stun.Method.CREATE_PERMISSION, stun.Class.REQUEST)
            request.attributes["XOR-PEER-ADDRESS"] = self.denied_peer
            return self._signed(request)
        if self.phase is Phase.RELEASE:
            request = stun.Message(stun.Method.REFRESH, stun.Class.REQUEST)
            request.attributes["LIFETIME"] = 0
            return self._signed(request)
        return None

    def _signed(self, request: stun.Message) -> stun.Message:
        assert self._nonce is not None
        request.attributes["USERNAME"] = self._username
        request.attributes["REALM"] = self._realm
        request.attributes["NONCE"] = self._nonce
        request.add_message_integrity(self._key)
        return request

    def _on_challenge(self, message: stun.Message) -> None:
        if message.message_class is stun.Class.RESPONSE:
            raise RelayCheckFailed("the relay answered an Allocate without credentials")
        if message.error_code != 401:
            raise RelayCheckFailed(
                "the relay answered an Allocate without credentials with "
                f"{_describe_error(message)} instead of 401 Unauthorized"
            )
        realm = message.attributes.get("REALM")
        if realm != self._realm:
            raise RelayCheckFailed(
                f"the relay challenges for realm {realm!r}, not Ringfence's {self._realm!r}"
            )
        if "NONCE" not in message.attributes:
            raise RelayCheckFailed("the relay's 401 challenge carries no NONCE")
        self._nonce = message.attributes["NONCE"]
        self._advance(Phase.ALLOCATE)

    def _stale_nonce(self, message: stun.Message) -> bool:
        """Take a fresh nonce once (438 Stale Nonce) and resend; True if it did."""
        if message.error_code != 438 or self._stale_nonce_retried:
            return False
        if "NONCE" not in message.attributes:
            return False
        self._stale_nonce_retried = True
        self._nonce = message.attributes["NONCE"]
        self._request = self._build()
        return True

    def _authentic(self, message: stun.Message) -> None:
        if not message.check_message_integrity(self._key):
            raise RelayCheckFailed(
                f"the relay's answer to {self.phase.value} is not signed with the key of "
                "Ringfence's credentials"
            )

    def _on_allocate(self, message: stun.Message) -> None:
        if message.message_class is stun.Class.ERROR:
            if self._stale_nonce(message):
                return
            if message.error_code in CAPACITY_ERRORS:
                raise RelayBusy(f"the relay is at capacity ({_describe_error(message)})")
            raise RelayCheckFailed(
                f"the relay refused freshly issued credentials ({_describe_error(message)})"
            )
        self._authentic(message)
        relayed = message.attributes.get("XOR-RELAYED-ADDRESS")
        if relayed is None:
            raise RelayCheckFailed("the relay's Allocate answer has no XOR-RELAYED-ADDRESS")
        self.relayed_address = relayed
        self.denied_peer = self._pick_denied_peer(relayed[0])
        self._advance(Phase.DENIED_PEER)

    def _pick_denied_peer(self, relayed_host: str) -> tuple[str, int]:
        version = ipaddress.ip_address(relayed_host).version
        for host, port in DENIED_PEER_PROBES:
            address = ipaddress.ip_address(host)
            if address.version == version and address not in self._avoid_peers:
                return host, port
        raise AssertionError("no denied peer left to probe with")  # pragma: no cover

    def _on_denied_peer(self, message: stun.Message) -> None:
        assert self.denied_peer is not None
        if message.message_class is stun.Class.RESPONSE:
            raise RelayCheckFailed(
                f"the relay granted a permission toward {self.denied_peer[0]}, an address "
                "Ringfence's configuration denies: its peer denials are not in effect"
            )
        if self._stale_nonce(message):
            return
        if message.error_code != 403:
            raise RelayCheckFailed(
                f"the relay answered a permission toward {self.denied_peer[0]} with "
                f"{_describe_error(message)} instead of 403 Forbidden"
            )
        self.phase = Phase.HOLDING
        self._request = None

    def _on_release(self, message: stun.Message) -> None:
        if message.message_class is stun.Class.ERROR:
            if self._stale_nonce(message):
                return
            # 437: the allocation is already gone, which is what was asked for.
            if message.error_code != 437:
                raise RelayCheckFailed(
                    f"the relay refused to release the probe's allocation "
                    f"({_describe_error(message)})"
                )
        else:
            self._authentic(message)
        self._advance(Phase.DONE)


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut STUN messages out of a TCP or TLS byte stream (RFC 8489 section 6.2.2).

    Returns the complete messages and the bytes left over. Over a stream each
    message is padded to four bytes; ChannelData frames (first two bits 01) are
    cut out too, so that a stray one cannot stall the stream.
    """
    messages = []
    while len(buffer) >= 4:
        first, length = struct.unpack("!HH", buffer[:4])
        if first & 0xC000 == 0x4000:  # ChannelData
            total = 4 + length + stun.padding_length(length)
        else:
            total = stun.HEADER_LENGTH + length
        if len(buffer) < total:
            break
        messages.append(buffer[:total])
        buffer = buffer[total:]
    return messages, buffer


def padded(data: bytes) -> bytes:
    """Pad a message to four bytes, as a stream transport requires."""
    return data + bytes(stun.padding_length(len(data)))
