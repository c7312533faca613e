"""What reaches Ringfence's log from its embedded coturn, at the default level.

coturn at its default level prints no client's own address, but it does print every
peer address a client names and is refused (from someone's ICE candidates), and the
supervisor logs coturn's last lines at WARNING whenever it restarts the relay. Here a
client on 127.0.0.2 asks the real embedded relay (started as ``ringfence serve`` starts
it) for a private peer, coturn is killed, and the restart's WARNING must not carry the
address, while the relay's own address stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from ringfence.app import start_turn
from ringfence.clock import SystemClock
from tests.conftest import make_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn is not installed"),
]

PRIVATE_PEER = ("10.1.2.3", 5000)


async def test_restart_warnings_carry_no_client_named_address(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, database_url, turn_urls=[], turn_secret=None, turn_port=0)
    relay = await start_turn(settings, SystemClock())
    supervisor = relay.supervisor
    assert supervisor is not None
    try:
        server = relay.issuer.issue()
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(
                ("127.0.0.1", supervisor.port),
                username=server.username,
                password=server.credential,
                lifetime=600,
                channel_refresh_time=500,
            ),
            local_addr=("127.0.0.2", 0),
            remote_addr=("127.0.0.1", supervisor.port),
        )
        try:
            await client.connect()
            with pytest.raises(stun.TransactionFailed):
                await client.channel_bind(0x4000, PRIVATE_PEER)
        finally:
            with contextlib.suppress(Exception):
                await client.delete()
            transport.close()

        async with asyncio.timeout(10):  # coturn has printed the refusal
            while not any(PRIVATE_PEER[0] in line for line in supervisor._output):
                await asyncio.sleep(0.05)

        killed = supervisor.pid
        assert killed is not None
        with caplog.at_level(logging.INFO, logger="ringfence.turn"):
            os.kill(killed, signal.SIGKILL)
            async with asyncio.timeout(30):
                while supervisor.pid in (None, killed):
                    await asyncio.sleep(0.05)
                await supervisor.wait_serving()
    finally:
        await supervisor.stop()

    passed_on = [r for r in caplog.records if r.levelno >= logging.INFO]
    restart = [r.getMessage() for r in passed_on if "restarting it" in r.getMessage()]
    assert restart, [r.getMessage() for r in passed_on]
    assert "denied in the range" in restart[0]  # coturn's last lines are still there...
    assert "127.0.0.1" in "\n".join(r.getMessage() for r in passed_on)  # ...its own address
    for record in passed_on:
        assert PRIVATE_PEER[0] not in record.getMessage()  # but not the peer's
        assert "127.0.0.2" not in record.getMessage()
