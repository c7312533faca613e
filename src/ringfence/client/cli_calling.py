"""Running a call in a terminal, for ``ringfence call`` and ``ringfence answer``: the
lines that say what the call is doing, the commands typed while it is connected, and
the exit status.

While a call is connected, type a command and Enter on standard input: ``relay``
(or ``r``) moves the call behind the TURN relay, hiding your address from now on;
``direct`` (or ``d``) goes back to a direct connection where both people's settings
allow it; ``hangup`` (or ``q``) ends the call.

The call's state goes to stderr as it changes (including a connection that drops and
is restarted through the relay); with ``--json`` each step is also one JSON object per
line on stdout (``calling``, ``incoming``, ``state``), without any address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from websockets.exceptions import InvalidHandshake

from ringfence.client.api import Media, RingfenceClient, RingfenceError
from ringfence.client.call_types import CallEnded, StateChange, TransportSwitchFailed
from ringfence.client.cli_media import MediaOptions, opened_media
from ringfence.client.events import EventStream
from ringfence.client.output import plain
from ringfence.client.runner import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CliError
from ringfence.wire.call_states import CallState

if TYPE_CHECKING:  # WebRTC (aiortc) loads only when a call is placed or answered
    from ringfence.client.call import Call
    from ringfence.client.media import MediaSink

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "Emit",
    "console",
    "describe",
    "follow",
    "run",
    "run_answer",
    "run_call",
    "safe_markup",
    "state_record",
]

# The exit statuses of every `ringfence` client command (runner.py): 0 done (for a call:
# it connected and ended normally); 1 the server refused (a call not allowed, an invalid
# token, a rate limit: the message says which) or the call failed or never connected
# (the relay unreachable, say: known within seconds); 2 a usage problem (an unreadable
# token file, no session).
EXIT_FAILED = EXIT_REFUSED
NORMAL_ENDINGS = frozenset({"hangup"})

console = Console(stderr=True, highlight=False)
Emit = Callable[[dict[str, Any]], None]


def safe_markup(value: object) -> str:
    """Someone else's text, inside one of our markup strings: inert (see output.plain)."""
    return escape(plain(value))


def describe(change: StateChange, call: Call, previous: CallState | None = None) -> str:
    """One line for a state the call entered (``previous`` is the state it left)."""
    if change.state is CallState.ACCEPTING:
        return "answering…"
    if change.state is CallState.RECONNECTING:
        why = f" ({safe_markup(change.detail)})" if change.detail else ""
        return f"[yellow]connection lost{why}; restarting it through the relay…[/]"
    if change.state is CallState.CONNECTED and previous is CallState.RECONNECTING:
        pair = call.selected_candidate_pair()
        how = "" if pair is None else f" ({'relayed' if pair.relayed else 'direct'})"
        return f"[green]reconnected{how}[/]"
    if change.state is CallState.CONNECTED:
        pair = call.selected_candidate_pair()
        how = "" if pair is None else f" ({'relayed' if pair.relayed else 'direct'})"
        code = call.verification_code
        check = (
            f"\nverification code: [bold]{' '.join(code)}[/] "
            "(the other person should see the same five words)"
            if code
            else ""
        )
        hint = (
            "\ntype [bold]relay[/] and Enter to hide your address behind the relay"
            if pair is not None and not pair.relayed
            else ""
        )
        return f"[green]connected{how}[/]{check}{hint}"
    if change.state is CallState.ENDED:
        detail = f" ({safe_markup(change.detail)})" if change.detail else ""
        reason = safe_markup(change.reason or "failed")
        if previous is CallState.CONNECTING:
            # Answered, but media never flowed: say so, whoever gave up.
            return f"[red]the call didn't connect: {reason}[/]{detail}"
        colour = "green" if change.reason in NORMAL_ENDINGS else "red"
        return f"[{colour}]ended: {reason}[/]{detail}"
    return str(change.state)


def state_record(
    change: StateChange, call: Call, previous: CallState | None = None
) -> dict[str, Any]:
    """A state change for scripts (``--json``): no addresses, only whether the media
    is relayed."""
    record: dict[str, Any] = {"type": "state", "call_id": call.call_id, "state": change.state}
    if previous is not None:
        record["previous"] = previous
    if change.reason:
        record["reason"] = change.reason
    if change.detail:
        record["detail"] = change.detail
    if change.state is CallState.CONNECTED:
        pair = call.selected_candidate_pair()
        record["relayed"] = None if pair is None else pair.relayed
        record["verification_code"] = list(call.verification_code or [])
    return record


async def follow(
    call: Call, *, duration: float | None, stop: asyncio.Event, emit: Emit | None = None
) -> int:
    """Show state changes until the call ends; hang up after ``duration`` seconds of
    connection or when ``stop`` is set (Ctrl-C). Returns the exit code."""

    async def show() -> None:
        changes = call.state_changes()
        # Where it started: new, or ringing (already announced).
        previous = (await anext(changes)).state
        async for change in changes:
            console.print(describe(change, call, previous))
            if emit is not None:
                emit(state_record(change, call, previous))
            previous = change.state

    async def hang_up_when_due() -> None:
        try:
            await call.wait_connected()
        except CallEnded:
            return
        if duration is not None:
            await asyncio.sleep(duration)
            console.print(f"hanging up after {duration:g}s")
            await call.hangup()

    shower = asyncio.create_task(show())
    timer = asyncio.create_task(hang_up_when_due())
    commands = _CommandReader(call)
    ended = asyncio.create_task(call.wait_ended())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not ended.done():
            console.print("hanging up")
            await call.hangup()
        reason = await ended
    finally:
        commands.close()
        for task in (timer, stopped, ended):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(timer, stopped, ended, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(shower, 1.0)
    connected = any(change.state is CallState.CONNECTED for change in call.changes)
    return EXIT_OK if connected and reason in NORMAL_ENDINGS else EXIT_FAILED


_SWITCHES = {"relay": "relay", "r": "relay", "direct": "direct", "d": "direct"}
_REFUSALS = {
    "direct_not_allowed": "a direct connection is not allowed by your or their settings",
    "call_rate_limited": "too many switches; wait a minute and try again",
    "call_state": "the call cannot be switched right now",
}


class _CommandReader:
    """In-call commands typed on standard input (see the module docstring). Reads
    only when stdin can be watched by the event loop (a terminal or a pipe)."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._buffer = b""
        self._tasks: set[asyncio.Task[None]] = set()
        self._fd: int | None = None
        try:
            fd = sys.stdin.fileno()
            asyncio.get_running_loop().add_reader(fd, self._readable)
        except (AttributeError, OSError, ValueError, NotImplementedError):
            return  # no stdin, or one the loop cannot watch (a file, /dev/null)
        self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 1024)
        except OSError:
            data = b""
        if not data:  # end of input: commands are over, the call goes on
            self.close()
            return
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            task = asyncio.ensure_future(self._run(line.decode(errors="replace").strip()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, command: str) -> None:
        word = command.lower()
        if not word:
            return
        if word in ("hangup", "q"):
            await self._call.hangup()
            return
        transport = _SWITCHES.get(word)
        if transport is None:
            shown = safe_markup(repr(command[:40]))
            console.print(f"unknown command {shown}: relay, direct or hangup")
            return
        console.print(f"switching the call to {transport}…")
        try:
            await self._call.switch_transport("relay" if transport == "relay" else "direct")
        except TransportSwitchFailed as exc:
            why = _REFUSALS.get(exc.code, exc.detail)
            console.print(f"[yellow]not switched:[/] {safe_markup(why)}")
            return
        pair = self._call.selected_candidate_pair()
        how = "relayed: your address is hidden" if pair and pair.relayed else "direct"
        console.print(f"[green]now {how}[/]")


def report_recording(sink: MediaSink) -> None:
    from ringfence.client.media import WavRecorder

    if isinstance(sink, WavRecorder):
        console.print(f"recorded {sink.duration_s:.1f}s to {escape(str(sink.path))}")


@contextlib.asynccontextmanager
async def connected_events(server: str, token: str) -> AsyncIterator[EventStream]:
    events = EventStream(server, token)
    try:
        await events.connect()
    except RingfenceError as exc:
        if exc.status == 401:
            raise CliError("the server did not accept this token", EXIT_REFUSED) from exc
        raise CliError(f"the server refused the connection: {exc.detail}", EXIT_FAILED) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise CliError(f"cannot reach {server}: {type(exc).__name__}", EXIT_FAILED) from exc
    try:
        yield events
    finally:
        await events.close()


def refusal_message(exc: RingfenceError, username: str) -> CliError:
    if exc.status == 403:
        # Neutral on purpose: the server does not say why, and neither do we.
        return CliError(f"{username} cannot be called right now", EXIT_REFUSED)
    if exc.status == 429:
        wait = f"; try again in {exc.retry_after_s:g}s" if exc.retry_after_s else ""
        return CliError(f"too many call attempts{wait}", EXIT_REFUSED)
    if exc.status == 401:
        return CliError("the server did not accept this token", EXIT_REFUSED)
    if exc.status == 409:
        return CliError(f"cannot call now: {exc.detail}", EXIT_REFUSED)
    return CliError(f"the server refused the call: {exc.code}: {exc.detail}", EXIT_FAILED)


async def run_call(
    *,
    server: str,
    token: str,
    username: str,
    options: MediaOptions,
    duration: float | None,
    connect_timeout: float,
    stop: asyncio.Event,
    emit: Emit | None = None,
) -> int:
    from ringfence.client.call import place_call

    media: Media = "video" if options.video else "audio"
    async with (
        opened_media(options) as (tracks, sink),
        RingfenceClient(server, token) as rf,
        connected_events(server, token) as events,
    ):
        console.print(f"calling {safe_markup(username)} ({media})")
        try:
            call = await place_call(
                rf,
                events,
                username,
                media=media,
                tracks=tracks,
                sink=sink,
                connect_timeout_s=connect_timeout,
            )
        except RingfenceError as exc:
            raise refusal_message(exc, username) from exc
        except CallEnded as exc:
            raise CliError(f"call failed: {exc.detail or exc.reason}", EXIT_FAILED) from exc
        if emit is not None:
            emit({"type": "calling", "call_id": call.call_id, "user": username, "media": media})
        code = await follow(call, duration=duration, stop=stop, emit=emit)
        report_recording(sink)
        return code


async def run_answer(
    *,
    server: str,
    token: str,
    from_user: str | None,
    options: MediaOptions,
    duration: float | None,
    wait_timeout: float | None,
    connect_timeout: float,
    stop: asyncio.Event,
    emit: Emit | None = None,
) -> int:
    from ringfence.client.call import wait_for_incoming

    async with (
        opened_media(options) as (tracks, sink),
        connected_events(server, token) as events,
    ):
        who = f" from {safe_markup(from_user)}" if from_user else ""
        console.print(f"waiting for a call{who}")
        waiting = asyncio.create_task(
            wait_for_incoming(events, from_user=from_user, connect_timeout_s=connect_timeout)
        )
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {waiting, stopped}, timeout=wait_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            if not waiting.done():
                waiting.cancel()
        if waiting not in done:
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            if stop.is_set():
                raise CliError("stopped before a call arrived", EXIT_FAILED)
            raise CliError(f"no call arrived within {wait_timeout:g}s", EXIT_FAILED)
        call = waiting.result()
        caller = call.caller
        badge = " (verified)" if caller.verified else ""
        console.print(
            f"incoming {call.media} call from {safe_markup(caller.display_name)} "
            f"(@{safe_markup(caller.username)}){badge}; accepting"
        )
        if emit is not None:
            emit(
                {
                    "type": "incoming",
                    "call_id": call.call_id,
                    "caller": {
                        "username": caller.username,
                        "display_name": caller.display_name,
                        "verified": caller.verified,
                    },
                    "media": call.media,
                }
            )
        try:
            await call.accept(tracks=tracks, sink=sink)
        except CallEnded as exc:
            raise CliError(f"could not answer: {exc.detail or exc.reason}", EXIT_FAILED) from exc
        code = await follow(call, duration=duration, stop=stop, emit=emit)
        report_recording(sink)
        return code


def run(work: Callable[[asyncio.Event], Awaitable[int]]) -> None:
    """Run a command's coroutine; the first Ctrl-C (or SIGTERM) asks it to hang up
    cleanly, a second one stops it at once."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
                handled.append(sig)
        try:
            return await work(stop)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    try:
        code = asyncio.run(main())
    except CliError as exc:
        console.print(f"[bold red]error:[/] {safe_markup(exc.message)}")
        raise typer.Exit(exc.code) from None
    except asyncio.CancelledError:
        console.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    raise typer.Exit(code)
