"""``ringfence call`` and ``ringfence answer`` against a real ``ringfence serve``.

Everything here is a real process: the server, the coturn it supervises, and two
terminal clients placing a WebRTC call through the relay. The callee records what it
hears and the recording must carry the caller's 440 Hz tone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.client import RingfenceClient, dominant_frequency
from tests.serve import free_port

pytestmark = pytest.mark.integration

RINGFENCE = str(Path(sys.executable).with_name("ringfence"))
PASSWORD = "correct horse battery"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus any RINGFENCE_* setting that could change the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def wait(self, timeout: float) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            pytest.fail(f"{self.name} did not finish within {timeout}s:\n{self.output()}")

    async def wait_for_output(self, text: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.output():
            if self.process.returncode is not None:
                pytest.fail(f"{self.name} exited early:\n{self.output()}")
            if loop.time() > deadline:
                pytest.fail(f"{self.name} never printed {text!r}:\n{self.output()}")
            await asyncio.sleep(0.05)

    async def type(self, line: str) -> None:
        """Type a line on the process's stdin (started with ``interactive=True``)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[Proc] = []

    async def start(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        interactive: bool = False,
    ) -> Proc:
        """Start ``ringfence *args``; with ``interactive`` its stdin is a pipe
        (``proc.type(...)``), otherwise /dev/null."""
        log = self.tmp / f"{name}.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                RINGFENCE,
                *args,
                stdin=asyncio.subprocess.PIPE if interactive else asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                env=env or clean_env(),
                cwd=self.tmp,
            )
        proc = Proc(name, process, log)
        self.started.append(proc)
        return proc

    async def stop_all(self) -> None:
        for proc in reversed(self.started):
            await proc.stop()


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        await procs.stop_all()


async def start_serve(
    processes: Processes, tmp_path: Path, database_url: str, port: int = 0, **env: str
) -> str:
    """``ringfence serve`` with its embedded coturn, on free ports (or on ``port``, with
    the data of an earlier server there: a restart); ``env`` adds RINGFENCE_* settings.
    Returns its URL once healthy; the process is ``processes.started[-1]``."""
    port = port or free_port()
    server = await processes.start(
        f"server-{port}-{len(processes.started)}",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / f"data-{port}"),
        "--database-url",
        database_url,
        env=clean_env(RINGFENCE_TURN_PORT=str(free_port()), **env),
    )
    url = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while True:
            if server.process.returncode is not None:
                pytest.fail(f"ringfence serve exited:\n{server.output()}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return url
            if loop.time() > deadline:
                pytest.fail(f"ringfence serve did not become healthy:\n{server.output()}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def server_url(processes: Processes, tmp_path: Path, database_url: str) -> str:
    """``ringfence serve`` with its embedded coturn, on free ports."""
    return await start_serve(processes, tmp_path, database_url)


# --- a person at a terminal (used by the other test_cli_* modules too) --------------------


@dataclass
class Ran:
    """One finished ``ringfence`` command: its exit status, stdout and stderr."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return (
            f"$ ringfence {' '.join(self.args)}\n[{self.code}]\n{self.out}\n--- stderr\n{self.err}"
        )


class Running:
    """A ``ringfence`` command still running (``listen``, ``answer``), its stdout and
    stderr in files of their own."""

    def __init__(self, process: asyncio.subprocess.Process, out: Path, err: Path) -> None:
        self.process = process
        self.out_path = out
        self.err_path = err

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def lines(self) -> list[Any]:
        """Standard output as JSON lines (``--json``)."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    async def wait_for(self, text: str, timeout: float = 30, *, stream: str = "out") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in (self.out if stream == "out" else self.err):
            if self.process.returncode is not None:
                pytest.fail(f"exited early ({self.process.returncode}):\n{self.out}\n{self.err}")
            if loop.time() > deadline:
                pytest.fail(f"never printed {text!r}:\n{self.out}\n--- stderr\n{self.err}")
            await asyncio.sleep(0.05)

    async def stop(self) -> int:
        """SIGINT, as Ctrl-C; the exit status."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


class Terminal:
    """Someone at a terminal: a home and config directory of their own, and
    ``ringfence`` run as a child process, the way a person runs it. Standard input is
    not a terminal and there is no controlling terminal (a new session)."""

    def __init__(self, tmp: Path, name: str, server: str) -> None:
        self.name = name
        self.server = server
        self.home = tmp / f"home-{name}"
        self.home.mkdir()
        self.config = self.home / "xdg-config"
        self.running: list[Running] = []

    def env(self, **extra: str) -> dict[str, str]:
        # TZ: dates print in a known zone; COLUMNS: tables are not squeezed to 80.
        return clean_env(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.config),
            TZ="UTC",
            COLUMNS="200",
            **extra,
        )

    def session_file(self, profile: str = "default") -> Path:
        return self.config / "ringfence" / "sessions" / f"{profile}.json"

    async def run(
        self,
        *args: str,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        program: str = RINGFENCE,
    ) -> Ran:
        """``ringfence *args`` (or ``program *args``), to completion."""
        process = await asyncio.create_subprocess_exec(
            program,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env or self.env(),
            cwd=self.home,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(None if stdin is None else stdin.encode()), timeout
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"ringfence {' '.join(args)} did not finish within {timeout}s")
        assert process.returncode is not None
        ran = Ran(args, process.returncode, out.decode(errors="replace"), err.decode())
        assert "Traceback" not in ran.err, str(ran)
        return ran

    async def ok(self, *args: str, **kwargs: Any) -> Ran:
        ran = await self.run(*args, **kwargs)
        assert ran.code == 0, str(ran)
        return ran

    async def signup(self, username: str, *extra: str) -> Ran:
        return await self.ok(
            "signup",
            username,
            "--server",
            self.server,
            "--password-stdin",
            *extra,
            stdin=PASSWORD + "\n",
        )

    async def start(self, *args: str) -> Running:
        """Start a long-running command (stdin /dev/null)."""
        index = len(self.running)
        out = self.home / f"run-{index}.out"
        err = self.home / f"run-{index}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            process = await asyncio.create_subprocess_exec(
                RINGFENCE,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                env=self.env(),
                cwd=self.home,
                start_new_session=True,
            )
        running = Running(process, out, err)
        self.running.append(running)
        return running

    async def close(self) -> None:
        for running in self.running:
            await running.stop()


class Terminals:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.made: list[Terminal] = []

    def __call__(self, name: str, server: str) -> Terminal:
        terminal = Terminal(self.tmp, name, server)
        self.made.append(terminal)
        return terminal


@pytest.fixture
async def terminals(tmp_path: Path) -> AsyncIterator[Terminals]:
    made = Terminals(tmp_path)
    try:
        yield made
    finally:
        for terminal in made.made:
            await terminal.close()


async def token_file(url: str, tmp: Path, username: str) -> tuple[RingfenceClient, Path]:
    client = RingfenceClient(url)
    session = await client.register(username, PASSWORD)
    path = tmp / f"{username}.token"
    path.write_text(session["token"] + "\n")
    path.chmod(0o600)
    return client, path


async def alice_may_call_bob(
    url: str, tmp: Path
) -> tuple[RingfenceClient, Path, RingfenceClient, Path]:
    """Alice and Bob with token files; Bob takes calls from people he follows who have
    messaged him, and follows Alice, whose message he accepted."""
    alice, alice_token = await token_file(url, tmp, "alice")
    bob, bob_token = await token_file(url, tmp, "bob")
    await bob.follow("alice")
    await alice.send_message("bob", "can I call you?")
    await bob.accept("alice")
    return alice, alice_token, bob, bob_token


async def test_terminal_call_carries_a_tone_through_the_relay(
    server_url: str, processes: Processes, tmp_path: Path
) -> None:
    alice, alice_token, bob, bob_token = await alice_may_call_bob(server_url, tmp_path)
    try:
        recording = tmp_path / "out.wav"
        common = ["--server", server_url]
        answer = await processes.start(
            "answer",
            "answer",
            *common,
            "--token-file",
            str(bob_token),
            "--from",
            "alice",
            "--record",
            str(recording),
            "--timeout",
            "60",
        )
        await answer.wait_for_output("waiting for a call", timeout=30)
        call = await processes.start(
            "call",
            "call",
            "bob",
            *common,
            "--token-file",
            str(alice_token),
            "--tone",
            "440",
            "--duration",
            "4",
        )
        call_rc = await call.wait(timeout=90)
        answer_rc = await answer.wait(timeout=30)
        logs = f"--- call ---\n{call.output()}\n--- answer ---\n{answer.output()}"
        assert call_rc == 0, logs
        assert answer_rc == 0, logs

        # Default settings relay both sides: neither learns the other's address.
        assert "connected (relayed)" in call.output(), logs
        assert "connected (relayed)" in answer.output(), logs
        assert "ended: hangup" in answer.output(), logs
        for secret in (alice_token.read_text().strip(), bob_token.read_text().strip()):
            assert secret not in logs

        assert dominant_frequency(recording) == pytest.approx(440, abs=5)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            calls = [m for m in await alice.history("bob") if m["kind"] == "call"]
            if calls or loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        assert len(calls) == 1, calls
        record = calls[0]["call"]
        assert record is not None
        assert (record["media"], record["outcome"]) == ("audio", "completed")
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_typing_relay_moves_a_direct_call_behind_the_relay(
    server_url: str, processes: Processes, tmp_path: Path
) -> None:
    alice, alice_token, bob, bob_token = await alice_may_call_bob(server_url, tmp_path)
    try:
        for person in (alice, bob):
            await person.update_settings(direct_connections="everyone")

        common = ["--server", server_url]
        answer = await processes.start(
            "answer", "answer", *common, "--token-file", str(bob_token), "--timeout", "60"
        )
        await answer.wait_for_output("waiting for a call", timeout=30)
        call = await processes.start(
            "call",
            "call",
            "bob",
            *common,
            "--token-file",
            str(alice_token),
            "--tone",
            "440",
            interactive=True,
        )
        await call.wait_for_output("connected (direct)", timeout=60)
        await call.wait_for_output("type relay and Enter", timeout=5)
        await call.type("relay")
        await call.wait_for_output("now relayed: your address is hidden", timeout=60)
        await call.type("q")
        call_rc = await call.wait(timeout=30)
        answer_rc = await answer.wait(timeout=30)
        logs = f"--- call ---\n{call.output()}\n--- answer ---\n{answer.output()}"
        assert (call_rc, answer_rc) == (0, 0), logs
        assert "ended: hangup" in answer.output(), logs
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_refused_call_says_nothing_about_why(
    server_url: str, processes: Processes, tmp_path: Path
) -> None:
    alice, alice_token = await token_file(server_url, tmp_path, "alice")
    carol, _ = await token_file(server_url, tmp_path, "carol")
    try:
        await carol.update_settings(calls_enabled=False)
        call = await processes.start(
            "call",
            "call",
            "carol",
            "--server",
            server_url,
            "--token-file",
            str(alice_token),
            "--tone",
            "440",
        )
        assert await call.wait(timeout=30) == 1, call.output()
        assert "carol cannot be called right now" in call.output()
    finally:
        await alice.aclose()
        await carol.aclose()


async def test_answer_gives_up_when_nobody_calls(
    server_url: str, processes: Processes, tmp_path: Path
) -> None:
    bob, bob_token = await token_file(server_url, tmp_path, "bob")
    try:
        answer = await processes.start(
            "answer",
            "answer",
            "--server",
            server_url,
            "--token-file",
            str(bob_token),
            "--timeout",
            "1",
        )
        assert await answer.wait(timeout=30) == 1, answer.output()
        assert "no call arrived within 1s" in answer.output()
    finally:
        await bob.aclose()


async def test_ctrl_c_hangs_up_cleanly(
    server_url: str, processes: Processes, tmp_path: Path
) -> None:
    alice, alice_token = await token_file(server_url, tmp_path, "alice")
    bob, bob_token = await token_file(server_url, tmp_path, "bob")
    try:
        await bob.follow("alice")
        await alice.send_message("bob", "ring ring")
        common = ["--server", server_url]
        answer = await processes.start(
            "answer", "answer", *common, "--token-file", str(bob_token), "--timeout", "60"
        )
        await answer.wait_for_output("waiting for a call", timeout=30)
        call = await processes.start(
            "call", "call", "bob", *common, "--token-file", str(alice_token), "--tone", "300"
        )
        await call.wait_for_output("connected", timeout=60)
        call.process.send_signal(signal.SIGINT)
        logs = f"--- call ---\n{call.output()}\n--- answer ---\n{answer.output()}"
        assert await call.wait(timeout=30) == 0, logs
        assert await answer.wait(timeout=30) == 0, logs
        assert "hanging up" in call.output()
        assert "ended: hangup" in answer.output()
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_call_and_answer_use_the_stored_session_and_speak_json(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice.signup("alice")
    await bob.signup("bob")
    await bob.ok("follow", "alice")
    await alice.ok("send", "bob", "can I call you?")
    await bob.ok("accept", "alice")

    # No --server, no --token-file: the sessions from `ringfence signup`.
    answer = await bob.start("answer", "--from", "alice", "--timeout", "60", "--json")
    await answer.wait_for("waiting for a call", stream="err")
    call = await alice.start("call", "bob", "--tone", "440", "--duration", "3", "--json")
    call_rc = await asyncio.wait_for(call.process.wait(), 90)
    answer_rc = await asyncio.wait_for(answer.process.wait(), 30)
    logs = f"--- call ---\n{call.out}{call.err}\n--- answer ---\n{answer.out}{answer.err}"
    assert (call_rc, answer_rc) == (0, 0), logs

    caller_steps, callee_steps = call.lines(), answer.lines()
    assert caller_steps[0]["type"] == "calling"
    assert (caller_steps[0]["user"], caller_steps[0]["media"]) == ("bob", "audio")
    assert callee_steps[0]["type"] == "incoming"
    assert callee_steps[0]["caller"]["username"] == "alice"
    for steps in (caller_steps, callee_steps):
        connected = next(s for s in steps if s.get("state") == "connected")
        assert connected["relayed"] is True  # the defaults: nobody sees an address
        assert len(connected["verification_code"]) == 5
        assert steps[-1]["state"] == "ended"
        assert steps[-1]["reason"] == "hangup"
    # The two sides see the same verification words.
    words = [next(s for s in steps if s.get("state") == "connected")["verification_code"]
             for steps in (caller_steps, callee_steps)]  # fmt: skip
    assert words[0] == words[1]
    assert "connected (relayed)" in call.err  # the lines for people, on stderr

    history = await alice.ok("calls", "--json")
    [item] = history.json()["calls"]
    assert (item["direction"], item["peer"]["username"]) == ("outgoing", "bob")
    assert (item["call"]["media"], item["call"]["outcome"]) == ("audio", "completed")
    table = await bob.ok("calls")
    assert "from" in table.out
    assert "@bob" not in table.out
    assert "Audio call · 0:0" in table.out


async def test_call_without_a_session_or_token_file_is_a_usage_error(
    server_url: str, terminals: Terminals
) -> None:
    nobody = terminals("nobody", server_url)
    ran = await nobody.run("call", "bob", "--tone", "440")
    assert ran.code == 2
    assert "not signed in" in ran.err
    ran = await nobody.run("answer", "--timeout", "1")
    assert ran.code == 2
