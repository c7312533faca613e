"""The supervisor only serves a coturn that proves it runs Ringfence's configuration,
at start and for as long as it runs. Real coturn throughout: the wrong relays here are
real coturns started the wrong way (built-in defaults, an extra listener, a second
process on the same port), the way they happen in the field."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ringfence.turn import CoturnOptions, CoturnSupervisor, TurnCredentialIssuer, generate_secret
from ringfence.turn.probe import RelayCheckFailed
from ringfence.turn.supervisor import RelayNotVerified
from tests.integration.turn.test_coturn import allocation, refused_with

TURNSERVER = shutil.which("turnserver")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(TURNSERVER is None, reason="coturn is not installed"),
]


def dev_options(secret: str, port: int = 0) -> CoturnOptions:
    return CoturnOptions(
        listen_ip="127.0.0.1",
        relay_ip="127.0.0.1",
        port=port,
        realm="ringfence",
        secret=secret,
        allow_loopback_peers=True,
    )


def shim(tmp_path: Path, name: str, body: str) -> str:
    """A stand-in for `turnserver` that runs the real one differently. The supervisor
    calls it as ``shim -c /abs/turnserver.conf``."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\nREAL={TURNSERVER}\n{body}\n")
    path.chmod(0o700)
    return str(path)


# A real coturn on Ringfence's port but on its built-in defaults, as happens when it
# cannot find its config file: every interface, no authentication.
ON_DEFAULTS = (
    'port=$(sed -n "s/^listening-port=//p" "$2")\n'
    'dir=$(dirname "$2")\n'
    'exec "$REAL" -n --listening-port "$port" --log-file stdout --no-cli '
    '--pidfile "$dir/defaults.pid" --userdb "$dir/defaults.db"'
)


async def test_a_relative_workdir_still_runs_our_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's default data dir is relative; coturn runs inside it, so every path
    it is given must be absolute or it misses its config and runs open."""
    monkeypatch.chdir(tmp_path)
    secret = generate_secret()
    supervisor = CoturnSupervisor(
        dev_options(secret), Path("ringfence-data/coturn"), production=False
    )
    await supervisor.start()
    try:
        pid = supervisor.pid
        assert pid is not None
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[1:3] == [
            b"-c",
            str(tmp_path / "ringfence-data/coturn/turnserver.conf").encode(),
        ]
        assert Path(os.readlink(f"/proc/{pid}/cwd")) == tmp_path / "ringfence-data/coturn"
        config = supervisor.config_path.read_text().splitlines()
        for line in config:
            if line.startswith(("pidfile=", "userdb=", "cert=", "pkey=")):
                value = line.split("=", 1)[1]
                assert value == ":memory:" or Path(value).is_absolute(), line
        issuer = TurnCredentialIssuer(secret.encode(), supervisor.urls, ttl_s=60)
        async with allocation(supervisor.port, issuer.issue()) as (_, relayed):
            assert relayed[0] == "127.0.0.1"
        forger = TurnCredentialIssuer(generate_secret().encode(), supervisor.urls, ttl_s=60)
        assert await refused_with(supervisor.port, forger.issue()) == 401
    finally:
        await supervisor.stop()


async def test_every_fresh_start_is_verified(tmp_path: Path) -> None:
    """Right after a start coturn used to refuse valid credentials now and then (its
    threads raced to create a fresh SQLite user database: "database is locked"). The
    verification caught it; now nothing is there to race over."""
    for attempt in range(5):
        supervisor = CoturnSupervisor(
            dev_options(generate_secret()), tmp_path / str(attempt), production=False
        )
        await supervisor.start()
        await supervisor.stop()
        assert not (tmp_path / str(attempt) / "turndb").exists()


async def test_a_coturn_on_its_defaults_is_refused(tmp_path: Path) -> None:
    supervisor = CoturnSupervisor(
        dev_options(generate_secret()),
        tmp_path / "coturn",
        shim(tmp_path, "turnserver-defaults", ON_DEFAULTS),
        production=False,
    )

    with pytest.raises(RelayNotVerified) as refusal:
        await supervisor.start()

    message = str(refusal.value)
    assert message.startswith(
        "the relay answered an Allocate without credentials: coturn is not running the "
        "configuration Ringfence wrote"
    )
    assert refusal.value.failure.definite
    assert supervisor.pid is None  # and the open relay it found was stopped


async def test_a_coturn_listening_on_an_extra_address_is_refused(tmp_path: Path) -> None:
    # Our configuration, plus a listener on another loopback address: the check reads
    # the sockets coturn really holds, not only the ones it answers on.
    extra = shim(tmp_path, "turnserver-extra", 'exec "$REAL" "$@" --listening-ip 127.0.0.2')
    supervisor = CoturnSupervisor(
        dev_options(generate_secret()), tmp_path / "coturn", extra, production=False
    )

    with pytest.raises(RelayNotVerified, match=r"coturn has sockets on 127\.0\.0\.2 \("):
        await supervisor.start()
    assert supervisor.pid is None


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[CoturnSupervisor, str]]:
    secret = generate_secret()
    supervisor = CoturnSupervisor(
        dev_options(secret),
        tmp_path / "coturn",
        production=False,
        verify_every_s=0.3,
        verify_timeout_s=0.5,
        stop_timeout_s=1.0,
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
    )
    await supervisor.start()
    try:
        yield supervisor, secret
    finally:
        await supervisor.stop()


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(10)


async def test_a_second_coturn_on_the_same_port_is_refused(
    running: tuple[CoturnSupervisor, str], tmp_path: Path
) -> None:
    """coturn binds with SO_REUSEPORT, so a second one on the same port starts fine and
    takes part of the traffic: a coturn left over from an earlier run would answer
    some clients with another secret."""
    first, _ = running
    second = CoturnSupervisor(
        dev_options(generate_secret(), port=first.port), tmp_path / "second", production=False
    )

    with pytest.raises(RelayNotVerified) as refusal:
        await second.start()

    # Whichever check notices first: the other process's sockets, or its answers.
    assert "another process also has a" in str(
        refusal.value
    ) or "refused freshly issued credentials" in str(refusal.value), refusal.value


async def wait_for_restart(supervisor: CoturnSupervisor, killed: int, within: float) -> None:
    async with asyncio.timeout(within):
        while supervisor.restarts == 0 or supervisor.pid in (None, killed):
            await asyncio.sleep(0.05)
        await supervisor.wait_serving()


async def test_watchdog_replaces_a_relay_that_later_fails_verification(
    running: tuple[CoturnSupervisor, str],
    rogue: list[subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    supervisor, secret = running
    first = supervisor.pid
    assert first is not None
    caplog.set_level(logging.INFO, logger="ringfence.turn.supervisor")

    # Another coturn, on its defaults, joins the relay's port while it runs.
    assert TURNSERVER is not None
    rogue.append(
        subprocess.Popen(
            [
                *(TURNSERVER, "-n", "-L", "127.0.0.1", "-p", str(supervisor.port), "--no-cli"),
                *("--pidfile", str(tmp_path / "rogue.pid"), "--userdb", str(tmp_path / "rogue.db")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    async with asyncio.timeout(20):
        while not any("failed verification" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.05)
    failure = next(r for r in caplog.records if "failed verification" in r.getMessage())
    assert failure.levelno == logging.ERROR
    # Whichever check noticed first: the rogue's sockets, or the rogue's open answers.
    assert (
        "another process also has a" in failure.getMessage()
        or "answered an Allocate without credentials" in failure.getMessage()
    ), failure.getMessage()
    assert not Path(f"/proc/{first}").exists()  # the unverified relay is gone
    # While the rogue stays, no replacement passes either: none is served.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await supervisor.wait_serving()

    rogue[0].kill()
    rogue[0].wait(10)
    await wait_for_restart(supervisor, first, within=20)
    issuer = TurnCredentialIssuer(secret.encode(), supervisor.urls, ttl_s=60)
    async with allocation(supervisor.port, issuer.issue()) as (_, relayed):
        assert relayed[0] == "127.0.0.1"


async def test_watchdog_replaces_a_relay_that_stops_answering(
    running: tuple[CoturnSupervisor, str], caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, _ = running
    stopped = supervisor.pid
    assert stopped is not None
    caplog.set_level(logging.WARNING, logger="ringfence.turn.supervisor")

    os.kill(stopped, signal.SIGSTOP)  # hung: alive, holding its ports, answering nothing
    try:
        await wait_for_restart(supervisor, stopped, within=30)
    finally:
        if Path(f"/proc/{stopped}").exists():
            os.kill(stopped, signal.SIGKILL)

    messages = [r.getMessage() for r in caplog.records]
    # Not on the first silence: only after several checks in a row went unanswered.
    assert any("failed check 1 of 3" in m for m in messages)
    assert any("failed verification 3 times in a row" in m for m in messages)
    await supervisor.verify()


async def test_verify_names_the_problem_of_a_relay_that_is_not_running(tmp_path: Path) -> None:
    supervisor = CoturnSupervisor(
        dev_options(generate_secret()), tmp_path / "coturn", production=False
    )

    with pytest.raises(RelayCheckFailed, match="coturn is not running"):
        await supervisor.verify()
