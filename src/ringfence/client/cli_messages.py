"""``ringfence send``, ``inbox``, ``read``, ``accept`` and ``decline``: direct messages.

A send carries a transaction id (``--txn-id``, or a fresh one per run): the server
answers a repeat of the same id with the message it already stored, so a script that
retries a send whose answer it never saw cannot post it twice.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ringfence.client.api import Conversation, Message, RingfenceClient
from ringfence.client.output import Output, call_label, local_time, one_line, plain, user_label
from ringfence.client.runner import (
    EXIT_USAGE,
    Account,
    CliError,
    JsonOpt,
    ProfileOpt,
    ServerOpt,
    TokenFileOpt,
    fail,
    with_client,
)
from ringfence.client.session import DEFAULT_PROFILE

__all__ = ["message_lines", "register"]

TXN_ID_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
PAGE = 100  # the server's largest page of history

# A deleted account's messages stay with the people it wrote to, from a reserved
# username "deleted_account_" + hex (nobody can register "deleted_*", so nobody can
# pass for one) and the display name "Deleted account" (services/accounts.py and
# views.py on the server). Its handle means nothing to a reader: the name is shown.
DELETED_ACCOUNT_PREFIX = "deleted_account_"
DELETED_ACCOUNT_NAME = "Deleted account"


def is_deleted_account(username: str) -> bool:
    return username.startswith(DELETED_ACCOUNT_PREFIX)


UserArg = Annotated[str, typer.Argument(help="Their username.", show_default=False)]


def read_text_argument(text: str) -> str:
    """TEXT itself, or standard input for ``-`` (its final line break dropped)."""
    if text != "-":
        return text
    data = sys.stdin.read()
    return data.removesuffix("\n").removesuffix("\r")


def message_lines(messages: list[Message], peer: str) -> list[Text]:
    """A thread for people, oldest first: a dated header line per message, the text
    below it indented (made plain, so it cannot act on the terminal)."""
    lines = []
    for message in messages:
        mine = message["sender"] != peer
        sender = message["sender"]
        if mine:
            who = "you"
        elif is_deleted_account(sender):
            who = DELETED_ACCOUNT_NAME
        else:
            who = f"@{plain(sender)}"
        head = Text(f"{local_time(message['created_at'])}  ", style="dim")
        head.append(who, style="cyan" if mine else "bold")
        record = message.get("call")
        if message["kind"] == "call" and record is not None:
            head.append(f"  {call_label(record, outgoing=mine)}", style="magenta")
            lines.append(head)
            continue
        lines.append(head)
        body = plain(message["text"], multiline=True)
        lines.append(Text("\n".join(f"    {line}" for line in body.split("\n"))))
    return lines


def inbox_table(conversations: list[Conversation]) -> Table:
    counted = any("unread" in c for c in conversations)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("Who")
    if counted:
        table.add_column("Unread", justify="right")
    table.add_column("Last message")
    table.add_column("When", no_wrap=True)
    for conv in conversations:
        last = conv["last_message"]
        if last is None:
            preview = ""
        elif last["kind"] == "call" and last.get("call") is not None:
            record = last["call"]
            assert record is not None
            preview = call_label(record, outgoing=last["sender"] != conv["user"]["username"])
        else:
            mine = last["sender"] != conv["user"]["username"]
            preview = ("you: " if mine else "") + one_line(last["text"])
        row: list[Text] = [
            Text("request", style="bold yellow") if conv["is_request"] else Text(""),
            Text(user_label(conv["user"])),
        ]
        if counted:
            unread = int(conv.get("unread", 0))
            row.append(Text(str(unread) if unread else "", style="bold"))
        row += [Text(preview), Text(local_time(conv["updated_at"]), style="dim")]
        table.add_row(*row)
    return table


async def acknowledge_unread(rf: RingfenceClient, conversations: list[Conversation]) -> None:
    """The unread messages a listing brought have reached this device: say so, so
    their senders see "Delivered" (where both share read receipts)."""
    for conv in conversations:
        last, peer = conv["last_message"], conv["user"]["username"]
        if conv.get("unread") and last is not None and last["sender"] == peer:
            await rf.mark_delivered(peer, last["id"])


# --- commands -------------------------------------------------------------------------


def send_command(
    user: UserArg,
    text: Annotated[str, typer.Argument(help="The message, or - to read it from standard input.")],
    txn_id: Annotated[
        str | None,
        typer.Option(
            "--txn-id",
            help="Transaction id: sending again with the same id never posts a duplicate "
            "(default: a new one for each run)",
            show_default=False,
        ),
    ] = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Send USER a message."""
    out = Output(json_mode=json_)
    if txn_id is not None and not TXN_ID_RE.fullmatch(txn_id):
        fail(out, CliError("--txn-id is 1-64 letters, digits, '.', '_', '~' or '-'", EXIT_USAGE))
    body = read_text_argument(text)
    if not body.strip():
        fail(out, CliError("the message is empty", EXIT_USAGE))
    transaction = txn_id or uuid.uuid4().hex

    async def work(rf: RingfenceClient, _account: Account) -> int:
        message = await rf.send_message(user, body, transaction)
        if out.json:
            out.document({"message": message})
        else:
            out.show(f"sent to @{plain(user)} (message {message['id']})")
        return 0

    with_client(out, server, token_file, profile, work)


def inbox_command(
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=500, help="How many conversations.")
    ] = 50,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Your conversations, most recent first; message requests are marked."""
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        conversations = await rf.conversations(limit=limit)
        if out.json:
            out.document({"conversations": conversations})
        elif not conversations:
            out.note("no conversations yet")
        else:
            out.render(inbox_table(conversations))
            requests = sum(1 for c in conversations if c["is_request"])
            if requests:
                out.note(
                    f"{requests} message request(s): ringfence read USER, then "
                    "ringfence accept USER or ringfence decline USER"
                )
        await acknowledge_unread(rf, conversations)
        return 0

    with_client(out, server, token_file, profile, work)


def read_command(
    user: UserArg,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="How many of the latest messages.")
    ] = 20,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    keep_unread: Annotated[
        bool,
        typer.Option("--keep-unread", help="Don't mark these messages read (nobody is told)."),
    ] = False,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Your conversation with USER: the latest messages, oldest first, with dates.
    They count as read on all your devices (and USER sees that, where you both
    share read receipts), unless --keep-unread."""
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        messages: list[Message] = []
        before: int | None = None
        while len(messages) < limit:
            size = min(PAGE, limit - len(messages))
            page = await rf.history(user, before=before, limit=size)
            messages = page + messages
            if len(page) < size:
                break  # that was the beginning of the conversation
            before = page[0]["id"]
        if out.json:
            out.document({"messages": messages})
        elif not messages:
            name = DELETED_ACCOUNT_NAME if is_deleted_account(user) else f"@{plain(user)}"
            out.note(f"no messages with {name} yet")
        else:
            out.lines(message_lines(messages, user))
        if messages and not keep_unread:
            await rf.mark_read(user, messages[-1]["id"])  # read, so delivered too
        elif theirs := [m for m in messages if m["sender"] == user]:
            await rf.mark_delivered(user, theirs[-1]["id"])
        return 0

    with_client(out, server, token_file, profile, work)


# Answering a message request: what to ask the server, what to say, and the help.
_ANSWERS: dict[str, tuple[Callable[[RingfenceClient, str], Awaitable[Conversation]], str, str]] = {
    "accept": (
        lambda rf, user: rf.accept(user),
        "accepted @{}'s request: you can reply now",
        "Accept USER's message request: you can reply, and it joins your inbox.",
    ),
    "decline": (
        lambda rf, user: rf.decline(user),
        "declined @{}'s request",
        "Decline USER's message request: it leaves your inbox (they are not told).",
    ),
}


def _answer_command(name: str) -> Callable[..., None]:
    answer, done, help_text = _ANSWERS[name]

    def command(
        user: UserArg,
        server: ServerOpt = None,
        token_file: TokenFileOpt = None,
        profile: ProfileOpt = DEFAULT_PROFILE,
        json_: JsonOpt = False,
    ) -> None:
        out = Output(json_mode=json_)

        async def work(rf: RingfenceClient, _account: Account) -> int:
            conversation = await answer(rf, user)
            if out.json:
                out.document({"conversation": conversation})
            else:
                out.show(done.format(plain(user)))
            return 0

        with_client(out, server, token_file, profile, work)

    command.__doc__ = help_text
    command.__name__ = f"{name}_command"
    return command


def register(app: typer.Typer) -> None:
    app.command("send")(send_command)
    app.command("inbox")(inbox_command)
    app.command("read")(read_command)
    for name in _ANSWERS:
        app.command(name)(_answer_command(name))
