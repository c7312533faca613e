"""``ringfence call`` and ``ringfence answer``: real WebRTC calls from a terminal;
``ringfence calls``: your call history. :func:`register` also adds the rest of the
terminal client (sessions, messages, people, settings, ``listen``) from the sibling
``cli_*`` modules.

Both calling commands use your stored session (``ringfence login``), or ``--server``
with ``--token-file`` as before.

While a call is connected, type a command and Enter on standard input: ``relay``
(or ``r``) moves the call behind the TURN relay, hiding your address from now on;
``direct`` (or ``d``) goes back to a direct connection where both people's settings
allow it; ``hangup`` (or ``q``) ends the call.

Both commands show the call's state on stderr as it changes (including a connection
that drops and is restarted through the relay) and exit with:
0 when the call connected and ended normally, 1 when it failed or never connected
(the relay unreachable, say: that is known within seconds), 2 for a usage problem
(such as an unreadable token file, or no session), 3 when the server said no (refused
call, invalid token, rate limit). With ``--json``, standard output carries one JSON
object per line for each step (``calling``, ``incoming``, ``state``); the lines for
people stay on standard error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from websockets.exceptions import InvalidHandshake

from ringfence.client import cli_account, cli_listen, cli_messages, cli_people, cli_settings
from ringfence.client.api import CallHistoryItem, Media, RingfenceClient, RingfenceError
from ringfence.client.call import (
    Call,
    CallEnded,
    CallState,
    StateChange,
    TransportSwitchFailed,
    place_call,
    wait_for_incoming,
)
from ringfence.client.events import EventStream
from ringfence.client.media import (
    ColourBarsTrack,
    DiscardSink,
    MediaSink,
    ToneTrack,
    WavRecorder,
    wav_player,
)
from ringfence.client.output import Output, call_label, local_time, plain, user_label
from ringfence.client.runner import (
    Account,
    CliError,
    JsonOpt,
    ProfileOpt,
    ServerOpt,
    TokenFileOpt,
    resolve_account,
    with_client,
)
from ringfence.client.session import DEFAULT_PROFILE

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "call_label",
    "describe",
    "register",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
NORMAL_ENDINGS = frozenset({"hangup"})

console = Console(stderr=True, highlight=False)
Emit = Callable[[dict[str, Any]], None]


def _safe(value: object) -> str:
    """Someone else's text, inside one of our markup strings: inert (see output.plain)."""
    return escape(plain(value))


# --- shared options -----------------------------------------------------------------

PlayOpt = Annotated[
    Path | None,
    typer.Option("--play", help="Send this WAV file as your audio.", dir_okay=False),
]
ToneOpt = Annotated[
    float | None,
    typer.Option("--tone", help="Send a sine tone of this frequency (Hz) as your audio."),
]
RecordOpt = Annotated[
    Path | None,
    typer.Option(
        "--record", help="Record the other side's audio to this WAV file.", dir_okay=False
    ),
]
VideoOpt = Annotated[bool, typer.Option("--video", help="Send synthetic colour-bar video.")]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration",
        min=0.1,
        help="Hang up this many seconds after connecting (default: until Ctrl-C or the "
        "other side hangs up)",
        show_default=False,
    ),
]
ConnectTimeoutOpt = Annotated[
    float, typer.Option("--connect-timeout", min=1, help="Seconds media may take to connect.")
]


def audio_tracks(play: Path | None, tone: float | None, video: bool) -> list[MediaStreamTrack]:
    """What to send: a WAV file, a tone, or silence; plus colour bars with --video."""
    tracks: list[MediaStreamTrack] = []
    try:
        if play is not None:
            tracks.append(wav_player(play))
        elif tone is not None:
            tracks.append(ToneTrack(tone))
        else:
            tracks.append(AudioStreamTrack())  # silence, so the other side gets a stream
    except (OSError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if video:
        tracks.append(ColourBarsTrack())
    return tracks


def make_sink(record: Path | None) -> MediaSink:
    return DiscardSink() if record is None else WavRecorder(record)


# --- running a call -------------------------------------------------------------------


def describe(change: StateChange, call: Call, previous: CallState | None = None) -> str:
    """One line for a state the call entered (``previous`` is the state it left)."""
    if change.state is CallState.RECONNECTING:
        why = f" ({_safe(change.detail)})" if change.detail else ""
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
        detail = f" ({_safe(change.detail)})" if change.detail else ""
        reason = _safe(change.reason or "failed")
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
            console.print(f"unknown command {_safe(repr(command[:40]))}: relay, direct or hangup")
            return
        console.print(f"switching the call to {transport}…")
        try:
            await self._call.switch_transport("relay" if transport == "relay" else "direct")
        except TransportSwitchFailed as exc:
            why = _REFUSALS.get(exc.code, exc.detail)
            console.print(f"[yellow]not switched:[/] {_safe(why)}")
            return
        pair = self._call.selected_candidate_pair()
        how = "relayed: your address is hidden" if pair and pair.relayed else "direct"
        console.print(f"[green]now {how}[/]")


def history_table(items: list[CallHistoryItem]) -> Table:
    """Recent calls for people: when, with whom, and how it went (the web's words)."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("When", no_wrap=True)
    table.add_column("")
    table.add_column("Who")
    table.add_column("Call")
    for item in items:
        outgoing = item["direction"] == "outgoing"
        label = call_label(item["call"], outgoing=outgoing)
        missed = not outgoing and label.startswith("Missed")
        table.add_row(
            Text(local_time(item["created_at"]), style="dim"),
            Text("to" if outgoing else "from"),
            Text(user_label(item["peer"])),
            Text(label, style="red" if missed else ""),
        )
    return table


def report_recording(sink: MediaSink) -> None:
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


@contextlib.asynccontextmanager
async def opened_media(
    options: MediaOptions,
) -> AsyncIterator[tuple[list[MediaStreamTrack], MediaSink]]:
    """The tracks to send and the sink for what arrives, released on the way out
    (a call releases them when it ends; this covers the paths where none started)."""
    tracks, sink = options.open()
    try:
        yield tracks, sink
    finally:
        for track in tracks:
            track.stop()
        await sink.stop()


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


@dataclass(frozen=True, slots=True)
class MediaOptions:
    play: Path | None
    tone: float | None
    video: bool
    record: Path | None

    def check(self) -> None:
        """Refuse bad combinations before anything touches the network."""
        if self.play is not None and self.tone is not None:
            raise CliError("use either --play or --tone, not both", EXIT_USAGE)
        if self.play is not None and not self.play.is_file():
            raise CliError(f"{self.play} does not exist", EXIT_USAGE)
        if self.tone is not None and not 20 <= self.tone <= 20_000:
            raise CliError("--tone must be between 20 and 20000 Hz", EXIT_USAGE)
        if self.record is not None and not self.record.parent.is_dir():
            raise CliError(f"cannot record to {self.record}: no such directory", EXIT_USAGE)

    def open(self) -> tuple[list[MediaStreamTrack], MediaSink]:
        """Create the tracks and the sink (inside the event loop that will use them)."""
        return audio_tracks(self.play, self.tone, self.video), make_sink(self.record)


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
    media: Media = "video" if options.video else "audio"
    async with (
        opened_media(options) as (tracks, sink),
        RingfenceClient(server, token) as rf,
        connected_events(server, token) as events,
    ):
        console.print(f"calling {_safe(username)} ({media})")
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
    async with (
        opened_media(options) as (tracks, sink),
        connected_events(server, token) as events,
    ):
        who = f" from {_safe(from_user)}" if from_user else ""
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
            f"incoming {call.media} call from {_safe(caller.display_name)} "
            f"(@{_safe(caller.username)}){badge}; accepting"
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
        console.print(f"[bold red]error:[/] {_safe(exc.message)}")
        raise typer.Exit(exc.code) from None
    except asyncio.CancelledError:
        console.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _prepare(
    server: str | None, token_file: Path | None, profile: str, options: MediaOptions
) -> Account:
    try:
        options.check()
        return resolve_account(
            server, token_file, profile, warn=lambda text: console.print(Text(text, "yellow"))
        )
    except CliError as exc:
        console.print(f"[bold red]error:[/] {_safe(exc.message)}")
        raise typer.Exit(exc.code) from None


def _emitter(json_mode: bool) -> Emit | None:
    """With ``--json``: each step as one JSON line on stdout (people's lines stay on
    stderr, so a script reads only JSON)."""
    return Output(json_mode=True).line if json_mode else None


# --- commands -------------------------------------------------------------------------


def call_command(
    user: Annotated[str, typer.Argument(help="Username to call.", show_default=False)],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    play: PlayOpt = None,
    tone: ToneOpt = None,
    record: RecordOpt = None,
    video: VideoOpt = False,
    duration: DurationOpt = None,
    connect_timeout: ConnectTimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Call USER. Media is always relayed unless the server allows otherwise."""
    options = MediaOptions(play=play, tone=tone, video=video, record=record)
    account = _prepare(server, token_file, profile, options)
    run(
        lambda stop: run_call(
            server=account.server,
            token=account.token,
            username=user,
            options=options,
            duration=duration,
            connect_timeout=connect_timeout,
            stop=stop,
            emit=_emitter(json_),
        )
    )


def answer_command(
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    from_user: Annotated[
        str | None,
        typer.Option("--from", help="Only answer calls from this user (others keep ringing)."),
    ] = None,
    record: RecordOpt = None,
    play: PlayOpt = None,
    tone: ToneOpt = None,
    video: VideoOpt = False,
    duration: DurationOpt = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.1, help="Give up if no call arrives within this many seconds."
        ),
    ] = None,
    connect_timeout: ConnectTimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Wait for a call, accept it, and exit when it ends."""
    options = MediaOptions(play=play, tone=tone, video=video, record=record)
    account = _prepare(server, token_file, profile, options)
    run(
        lambda stop: run_answer(
            server=account.server,
            token=account.token,
            from_user=from_user,
            options=options,
            duration=duration,
            wait_timeout=timeout,
            connect_timeout=connect_timeout,
            stop=stop,
            emit=_emitter(json_),
        )
    )


def calls_command(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many calls.")] = 20,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Show your recent calls, newest first.

    A call answered but never connected shows as "Call didn't connect", no duration.
    """
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        items = await rf.call_history(limit=limit)
        if out.json:
            out.document({"calls": items})
        elif not items:
            out.note("no calls yet")
        else:
            out.render(history_table(items))
        return EXIT_OK

    with_client(out, server, token_file, profile, work)


def register(app: typer.Typer) -> None:
    """Add the terminal client's commands to the ``ringfence`` command."""
    cli_account.register(app)
    cli_messages.register(app)
    cli_people.register(app)
    cli_settings.register(app)
    cli_listen.register(app)
    app.command("call")(call_command)
    app.command("answer")(answer_command)
    app.command("calls")(calls_command)
