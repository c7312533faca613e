"""``ringfence listen`` against a real ``ringfence serve``: what arrives is printed as
it arrives, and a dropped connection is resumed without a gap.

The drop is real: ``listen`` reaches the server through a TCP proxy in this test,
which cuts every connection at once (as a network drop or a restarted load balancer
would) and refuses new ones for a while. What is sent meanwhile goes straight to the
server, so only the stream's resume (``since``) can bring it to ``listen``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import Processes, Terminal, Terminals, start_serve

pytestmark = pytest.mark.integration

processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals


class CuttableProxy:
    """127.0.0.1:port → the server, until :meth:`cut`; then every connection is
    dropped and new ones are closed at once, until :meth:`restore`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.down = False
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.down = True
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a polite close

    def restore(self) -> None:
        self.down = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def token_file(person: Terminal) -> str:
    path = person.home / "token"
    path.write_text(json.loads(person.session_file().read_text())["token"])
    path.chmod(0o600)
    return str(path)


async def test_listen_prints_what_arrives_as_people_read_it(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice.signup("alice", "--display-name", "Alice")
    await bob.signup("bob")

    listening = await bob.start("listen")
    await listening.wait_for("listening as @bob", stream="err")
    await alice.ok("send", "bob", "a request [/] for you")
    await listening.wait_for("@alice (message request): a request [/] for you")
    await bob.ok("accept", "alice")
    await listening.wait_for("conversation with Alice (@alice): accepted")
    await bob.ok("send", "alice", "accepted!")
    await listening.wait_for("you → @alice: accepted!")
    assert await listening.stop() == 0
    assert "\x1b" not in listening.out

    # --count: a script waiting for the next event, then going on.
    waiting = await bob.start("listen", "--json", "--count", "1")
    await waiting.wait_for("listening as @bob", stream="err")
    await alice.ok("send", "bob", "one more")
    assert await asyncio.wait_for(waiting.process.wait(), 30) == 0
    [event] = waiting.lines()
    assert event["type"] == "message.new"
    assert event["message"]["text"] == "one more"
    assert isinstance(event["pos"], int)

    # --since that position: what came after it, even though nobody was listening.
    await alice.ok("send", "bob", "while nobody listened")
    later = await bob.start("listen", "--json", "--since", str(event["pos"]), "--count", "1")
    assert await asyncio.wait_for(later.process.wait(), 30) == 0
    assert [e["message"]["text"] for e in later.lines()] == ["while nobody listened"]

    # Signed out (the token revoked) while listening: one line, status 1.
    revoked = await bob.start("listen")
    await revoked.wait_for("listening as @bob", stream="err")
    await bob.ok("logout")
    assert await asyncio.wait_for(revoked.process.wait(), 30) == 1
    assert revoked.err.splitlines()[-1].startswith("error: ")
    assert len(revoked.err.splitlines()) == 2, revoked.err  # "listening as", then the error
    assert "Traceback" not in revoked.err


async def test_listen_resumes_after_a_dropped_connection_without_a_gap(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice.signup("alice")
    await bob.signup("bob")
    await bob.ok("follow", "alice")

    proxy = CuttableProxy(int(server_url.rsplit(":", 1)[1]))
    via_proxy = await proxy.start()
    try:
        listening = await bob.start(
            "listen", "--json", "--server", via_proxy, "--token-file", token_file(bob)
        )
        await listening.wait_for("listening as @bob", stream="err")
        await alice.ok("send", "bob", "before the drop")
        await listening.wait_for("before the drop")

        proxy.cut()
        # Sent while listen cannot reach the server (straight to the server).
        await alice.ok("send", "bob", "during the drop 1")
        await alice.ok("send", "bob", "during the drop 2")
        await asyncio.sleep(1.5)  # a few reconnection attempts fail
        assert "during the drop" not in listening.out
        proxy.restore()

        await listening.wait_for("during the drop 2", timeout=60)
        await listening.wait_for("reconnected", stream="err")
        await alice.ok("send", "bob", "after the drop")
        await listening.wait_for("after the drop")
        assert await listening.stop() == 0
    finally:
        await proxy.close()

    texts = [e["message"]["text"] for e in listening.lines() if e["type"] == "message.new"]
    assert texts == ["before the drop", "during the drop 1", "during the drop 2", "after the drop"]
    assert proxy.accepted >= 2  # it really did connect again


async def test_listen_resumes_when_the_server_restarts(
    processes: Processes, tmp_path: Path, database_url: str, terminals: Terminals
) -> None:
    url = await start_serve(processes, tmp_path, database_url)
    port = int(url.rsplit(":", 1)[1])
    alice = terminals("alice", url)
    bob = terminals("bob", url)
    await alice.signup("alice")
    await bob.signup("bob")

    listening = await bob.start("listen", "--json")
    await listening.wait_for("listening as @bob", stream="err")
    await alice.ok("send", "bob", "before the restart")
    await listening.wait_for("before the restart")

    await processes.started[-1].stop()  # SIGTERM: the server closes every socket
    await start_serve(processes, tmp_path, database_url, port=port)
    # Most likely before listen's next attempt (its backoff has grown), so it comes
    # through the resume; if listen was quicker, live. Either way: exactly once.
    await alice.ok("send", "bob", "after the restart")
    await listening.wait_for("after the restart", timeout=60)
    assert await listening.stop() == 0
    texts = [e["message"]["text"] for e in listening.lines() if e["type"] == "message.new"]
    assert texts == ["before the restart", "after the restart"]
    assert "reconnected" in listening.err
