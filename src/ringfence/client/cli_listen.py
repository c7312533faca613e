"""``ringfence listen``: messages, requests and calls as they arrive.

It reads the same WebSocket event stream as the web client, through
:class:`~ringfence.client.events.EventStream`, which resumes from the last position it
saw after a dropped connection, so nothing sent meanwhile is missed (the server replays
it). Only when the server says it cannot (``resync``: its stream was reset) is a gap
possible, and then a warning says so on stderr.

Call events carry session descriptions, ICE candidates and relay credentials meant for
a device answering the call; none of that is printed, with or without ``--json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Any

import typer
from rich.text import Text

from ringfence.client.events import Event, EventStream, EventStreamClosed
from ringfence.client.output import Output, local_time, plain, user_label
from ringfence.client.runner import (
    Account,
    CliError,
    JsonOpt,
    ProfileOpt,
    ServerOpt,
    TokenFileOpt,
    fail,
    resolve_account,
    run_async,
)
from ringfence.client.session import DEFAULT_PROFILE

__all__ = ["describe_event", "public_event", "register"]

# Never printed: what lets a device join a call, or sign in as you.
_SECRET_KEYS = frozenset({"sdp", "candidate", "candidates", "ice_servers", "credential", "token"})
# Frames of a call in progress, for the device taking part: nothing to tell a person.
_CALL_PLUMBING = frozenset(
    {"call.answer", "call.candidate", "call.transport", "call.reoffer", "call.reanswer"}
)


def public_event(event: Event) -> Event:
    """The event without anything secret in it, at any depth (for ``--json``)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in _SECRET_KEYS}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    cleaned: Event = clean(event)
    return cleaned


def describe_event(event: Event, me: str, callers: dict[str, str]) -> Text | None:
    """One line for a person, or None for an event that tells them nothing."""
    kind = event.get("type")
    if kind == "message.new":
        message = event["message"]
        when = Text(f"{local_time(message['created_at'])}  ", style="dim")
        mine = message["sender"] == me
        who = f"you → @{plain(message['recipient'])}" if mine else f"@{plain(message['sender'])}"
        when.append(who, style="cyan" if mine else "bold")
        if event.get("is_request") and not mine:
            when.append(" (message request)", style="bold yellow")
        if message["kind"] == "call":
            when.append("  call record", style="magenta")
        else:
            when.append(": ")
            when.append(plain(message["text"], multiline=True))
        return when
    if kind == "conversation.updated":
        conversation = event["conversation"]
        state = conversation.get("state") or ("request" if conversation["is_request"] else "")
        return Text(f"conversation with {user_label(conversation['user'])}: {plain(state)}")
    if kind == "message.read":
        return Text(f"@{plain(event.get('user', '?'))} read your messages", style="dim")
    if kind == "message.delivered":
        return Text(f"your messages reached @{plain(event.get('user', '?'))}", style="dim")
    if kind == "call.incoming":
        caller = event.get("from") or event.get("caller") or {}
        callers[str(event.get("call_id"))] = f"@{plain(caller.get('username', '?'))}"
        media = plain(event.get("media", "audio"))
        line = Text(f"incoming {media} call from {user_label(caller)}", style="bold green")
        line.append(f"; to answer: ringfence answer --from {plain(caller.get('username', ''))}")
        return line
    if kind == "call.ended":
        who = callers.pop(str(event.get("call_id")), "")
        reason = plain(event.get("reason", "ended"))
        return Text(f"call{' with ' + who if who else ''} ended: {reason}", style="dim")
    if kind == "error":
        return Text(f"server: {plain(event.get('detail') or event.get('error'))}", style="red")
    # Anything else (call plumbing, or an event newer than this client) is for scripts:
    # --json passes it on.
    return None


async def listen(out: Output, account: Account, *, since: int | None, count: int | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    events = EventStream(account.server, account.token, since=since)
    ready = await events.connect()
    me = str(ready["user"]["username"])
    out.note(f"listening as @{me} (Ctrl-C to stop)")
    callers: dict[str, str] = {}
    shown = 0

    async def read() -> None:
        nonlocal shown
        async for event in events:
            if event.get("type") == "ready":  # a reconnection
                if event.get("resync"):
                    out.note(
                        "warning: the server reset its event stream; events from while "
                        "this was disconnected may be missing (see: ringfence inbox)",
                        style="yellow",
                    )
                else:
                    out.note("reconnected; resuming where it left off", style="dim")
                continue
            await acknowledge(event)
            if out.json:
                if event.get("type") in _CALL_PLUMBING:
                    continue
                out.line(public_event(event))
            else:
                line = describe_event(event, me, callers)
                if line is None:
                    continue
                out.show(line)
            shown += 1
            if count is not None and shown >= count:
                return

    async def acknowledge(event: Event) -> None:
        # A message from someone else has reached this device: its sender may see
        # "Delivered" (the server decides). A receipt that can't go now is dropped.
        message = event.get("message") if event.get("type") == "message.new" else None
        if message and message["sender"] != me:
            receipt = {
                "type": "message.delivered",
                "user": message["sender"],
                "up_to": message["id"],
            }
            with contextlib.suppress(TimeoutError, ConnectionError, EventStreamClosed):
                await events.send(receipt)

    reader = asyncio.create_task(read())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader  # re-raises a fatal close (a revoked token), for the caller
        await events.close()
    return 0


def listen_command(
    since: Annotated[
        int | None,
        typer.Option(
            "--since",
            min=0,
            help="Start after this stream position (the pos of a --json line printed "
            "earlier), so nothing is missed between two runs.",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, help="Exit after this many events."),
    ] = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Print messages, requests and calls as they arrive, until Ctrl-C.

    With --json, one JSON object per line. A dropped connection is resumed where it
    left off.
    """
    out = Output(json_mode=json_)
    try:
        account = resolve_account(server, token_file, profile, warn=out.note)
    except CliError as exc:
        fail(out, exc)
    run_async(out, listen(out, account, since=since, count=count), server=account.server)


def register(app: typer.Typer) -> None:
    app.command("listen")(listen_command)
