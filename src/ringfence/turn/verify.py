"""Talk to a live coturn: does it answer at all, and does it pass the relay checks.

:func:`stun_answers` only asks whether something answers STUN (the first sign of a
start). :func:`verify_relay` runs the checks of :mod:`ringfence.turn.probe`.

This is the I/O half: it opens a UDP socket, a TCP connection and (when the
relay offers it) a TLS connection, drives one :class:`AllocationCheck` over
each, and, while the UDP allocation is held, compares the sockets the coturn
process really has with the ones Ringfence configured. Any difference raises
:class:`RelayCheckFailed` with a sentence that names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aioice import stun

from ringfence.turn.coturn_config import CoturnOptions
from ringfence.turn.credentials import TurnCredentialIssuer
from ringfence.turn.probe import AllocationCheck, RelayCheckFailed, padded, split_stream
from ringfence.turn.sockets import ListenPlan, process_sockets

FIRST_RETRANSMIT_S = 0.1


@dataclass(frozen=True)
class RelayTarget:
    """What a relay must look like to pass: where it is, and what Ringfence wrote."""

    host: str  # where to send the checks: the listen address, or loopback
    port: int
    realm: str
    secret: str
    plan: ListenPlan
    tls_port: int | None = None
    cert_file: Path | None = None  # the certificate the TLS listener must present
    # Where XOR-RELAYED-ADDRESS may point; None when coturn chooses (listens everywhere).
    relayed_addresses: frozenset[str] | None = None
    # Addresses the relay is allowed to reach (its own): not usable as a denied peer.
    allowed_peers: frozenset[str] = frozenset()

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"RelayTarget(host={self.host!r}, port={self.port}, tls_port={self.tls_port})"


def target_for(options: CoturnOptions, probe_host: str) -> RelayTarget:
    """What Ringfence wrote in ``options``, as the checks must find it on the wire."""
    listen = ipaddress.ip_address(options.listen_ip)
    addresses = None
    if not listen.is_unspecified:
        addresses = frozenset({listen})
        if options.relay_ip is not None:
            addresses |= {ipaddress.ip_address(options.relay_ip)}
    relayed = options.advertised_relay_ip
    return RelayTarget(
        host=probe_host,
        port=options.port,
        realm=options.realm,
        secret=options.secret,
        plan=ListenPlan(
            addresses=addresses,
            port=options.port,
            tls_port=options.tls_port,
            relay_ports=(options.min_port, options.max_port),
        ),
        tls_port=options.tls_port,
        cert_file=options.cert_file,
        relayed_addresses=None if relayed is None else frozenset({str(relayed)}),
        allowed_peers=frozenset(str(a) for a in options.own_addresses),
    )


async def verify_relay(target: RelayTarget, pid: int, timeout_s: float = 5.0) -> None:
    """Raise :class:`RelayCheckFailed` unless the relay at ``target`` (run by ``pid``)
    behaves exactly as Ringfence's configuration says, over UDP, TCP and TLS."""
    issuer = TurnCredentialIssuer(
        target.secret.encode(), [_url(target.host, target.port)], ttl_s=60
    )

    async def while_held(check: AllocationCheck) -> None:
        _check_relayed_address(target, check)
        _check_sockets(target, pid)

    async with _udp(target.host, target.port) as (send, receive):
        await _run(_new_check(target, issuer), "UDP", send, receive, timeout_s, while_held)
    async with _stream(target.host, target.port, "TCP", timeout_s) as (send, receive):
        await _run(_new_check(target, issuer), "TCP", send, receive, timeout_s)
    if target.tls_port is not None:
        context = ssl.create_default_context()
        # This is our own relay on our own certificate, which may be self-signed or
        # name a host that does not resolve here: compare the certificate instead.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        certificate = None if target.cert_file is None else leaf_certificate(target.cert_file)
        async with _stream(
            target.host, target.tls_port, "TLS", timeout_s, context, certificate
        ) as (send, receive):
            await _run(_new_check(target, issuer), "TLS", send, receive, timeout_s)


def _url(host: str, port: int) -> str:
    return f"turn:[{host}]:{port}" if ":" in host else f"turn:{host}:{port}"


def _new_check(target: RelayTarget, issuer: TurnCredentialIssuer) -> AllocationCheck:
    server = issuer.issue()
    return AllocationCheck(
        server.username, server.credential, realm=target.realm, avoid_peers=target.allowed_peers
    )


def _check_relayed_address(target: RelayTarget, check: AllocationCheck) -> None:
    assert check.relayed_address is not None
    host = check.relayed_address[0]
    if target.relayed_addresses is not None and host not in target.relayed_addresses:
        raise RelayCheckFailed(
            f"the relay allocated a relayed address on {host}, not on "
            f"{', '.join(sorted(target.relayed_addresses))} as configured"
        )


def _check_sockets(target: RelayTarget, pid: int) -> None:
    try:
        ours, others = process_sockets(pid)
    except OSError as exc:
        raise RelayCheckFailed(
            f"cannot read which addresses coturn (pid {pid}) listens on from /proc ({exc}); "
            "the embedded relay needs Linux"
        ) from exc
    problems = list(dict.fromkeys(target.plan.problems(ours, others)))
    if problems:
        raise RelayCheckFailed("; ".join(problems))


Send = Callable[[bytes], None]
Receive = Callable[[float], Awaitable[bytes | None]]


async def _run(
    check: AllocationCheck,
    transport: str,
    send: Send,
    receive: Receive,
    timeout_s: float,
    while_held: Callable[[AllocationCheck], Awaitable[None]] | None = None,
) -> None:
    """Drive ``check`` to the end: send, retransmit (UDP), feed answers, hold, release."""
    loop = asyncio.get_running_loop()
    retransmit = transport == "UDP"
    while not check.finished:
        data = check.request()
        if data is None:  # the allocation is held
            if while_held is not None:
                await while_held(check)
            check.release()
            continue
        transaction = check.transaction_id
        deadline = loop.time() + timeout_s
        wait = FIRST_RETRANSMIT_S
        send(data)
        while check.transaction_id == transaction and not check.finished:
            left = deadline - loop.time()
            if left <= 0:
                raise RelayCheckFailed(
                    f"the relay did not answer {check.phase.value} over {transport} "
                    f"within {timeout_s:g}s",
                    definite=False,
                )
            message = await receive(min(wait, left) if retransmit else left)
            if message is None:
                if retransmit:
                    send(data)
                    wait *= 2
                continue
            check.receive(message)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable: the timeout reports it


@contextlib.asynccontextmanager
async def _udp(host: str, port: int) -> AsyncIterator[tuple[Send, Receive]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(host, port))

    async def receive(wait_s: float) -> bytes | None:
        try:
            return await asyncio.wait_for(protocol.queue.get(), wait_s)
        except TimeoutError:
            return None

    try:
        yield transport.sendto, receive
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def _stream(
    host: str,
    port: int,
    transport: str,
    timeout_s: float,
    context: ssl.SSLContext | None = None,
    certificate: bytes | None = None,
) -> AsyncIterator[tuple[Send, Receive]]:
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except ConnectionRefusedError as exc:
        raise RelayCheckFailed(f"the relay refuses {transport} connections on port {port}") from exc
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise RelayCheckFailed(
            f"could not connect to the relay over {transport} on port {port} ({exc!r})",
            definite=isinstance(exc, ssl.SSLError),
        ) from exc
    try:
        if certificate is not None:
            _check_certificate(writer, port, certificate)
        buffered = b""
        ready: deque[bytes] = deque()

        async def receive(wait_s: float) -> bytes | None:
            nonlocal buffered
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_s
            while not ready:
                left = deadline - loop.time()
                if left <= 0:
                    return None
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), left)
                except TimeoutError:
                    return None
                if not chunk:
                    raise RelayCheckFailed(
                        f"the relay closed the {transport} connection mid-check", definite=False
                    )
                messages, buffered = split_stream(buffered + chunk)
                ready.extend(messages)
            return ready.popleft()

        yield (lambda data: writer.write(padded(data))), receive
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _check_certificate(writer: asyncio.StreamWriter, port: int, expected: bytes) -> None:
    ssl_object = writer.get_extra_info("ssl_object")
    presented = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
    if presented != expected:
        raise RelayCheckFailed(
            f"the relay's TLS listener on port {port} presents a certificate other than "
            "the one Ringfence configured"
        )


def leaf_certificate(cert_file: Path) -> bytes:
    """The DER bytes of the first certificate in a PEM chain: the one a server presents."""
    text = cert_file.read_text()
    end = "-----END CERTIFICATE-----"
    first = text[: text.index(end) + len(end)]
    return ssl.PEM_cert_to_DER_cert(first[first.index("-----BEGIN CERTIFICATE-----") :])


class _BindingProbe(asyncio.DatagramProtocol):
    def __init__(self, transaction_id: bytes, answered: asyncio.Future[None]) -> None:
        self._transaction_id = transaction_id
        self._answered = answered

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if (
            message.transaction_id == self._transaction_id
            and message.message_class == stun.Class.RESPONSE
            and not self._answered.done()
        ):
            self._answered.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while coturn is still starting: just retry.
        pass


async def stun_answers(host: str, port: int, timeout_s: float = 0.25) -> bool:
    """Tell whether a STUN server answers a Binding request on ``host:port`` over UDP.

    An open port is not enough: coturn binds its sockets before its relay
    threads are ready, and only a real STUN answer proves it serves requests.
    """
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[None] = loop.create_future()
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _BindingProbe(request.transaction_id, answered), remote_addr=(host, port)
    )
    try:
        transport.sendto(bytes(request))
        await asyncio.wait_for(answered, timeout_s)
    except TimeoutError:
        return False
    finally:
        transport.close()
    return True
