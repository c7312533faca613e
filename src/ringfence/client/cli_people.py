"""``ringfence follow``, ``unfollow``, ``block``, ``unblock`` and ``report``, and the
lists ``following``, ``followers`` and ``blocked``: the people around you.

Each does what the web client does, through the same API calls: blocking someone whose
message request is waiting also declines the request, as the web client's Block does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from ringfence.client.api import RingfenceClient, User
from ringfence.client.output import Output, people_table, plain
from ringfence.client.runner import (
    Account,
    JsonOpt,
    ProfileOpt,
    ServerOpt,
    TokenFileOpt,
    with_client,
)
from ringfence.client.session import DEFAULT_PROFILE

__all__ = ["register"]

UserArg = Annotated[str, typer.Argument(help="Their username.", show_default=False)]


async def _block(rf: RingfenceClient, user: str) -> None:
    await rf.block(user)
    # As the web client does: a waiting request from someone you block is cleared away.
    for conversation in await rf.conversations(limit=500):
        if conversation["user"]["username"] == user and conversation["is_request"]:
            await rf.decline(user)
            break


_ACTIONS: dict[str, tuple[Callable[[RingfenceClient, str], Awaitable[None]], str, str]] = {
    "follow": (lambda rf, u: rf.follow(u), "following @{}", "Follow USER."),
    "unfollow": (lambda rf, u: rf.unfollow(u), "no longer following @{}", "Stop following USER."),
    "block": (
        _block,
        "blocked @{}: they cannot message or call you (ringfence unblock to undo)",
        "Block USER: no messages, no calls, and a waiting request from them is declined.",
    ),
    "unblock": (lambda rf, u: rf.unblock(u), "unblocked @{}", "Unblock USER."),
}


def _action_command(name: str) -> Callable[..., None]:
    act, done, help_text = _ACTIONS[name]

    def command(
        user: UserArg,
        server: ServerOpt = None,
        token_file: TokenFileOpt = None,
        profile: ProfileOpt = DEFAULT_PROFILE,
        json_: JsonOpt = False,
    ) -> None:
        out = Output(json_mode=json_)

        async def work(rf: RingfenceClient, _account: Account) -> int:
            await act(rf, user)
            if out.json:
                out.document({"action": name, "user": user, "ok": True})
            else:
                out.show(done.format(plain(user)))
            return 0

        with_client(out, server, token_file, profile, work)

    command.__doc__ = help_text
    command.__name__ = f"{name}_command"
    return command


_LISTS: dict[str, tuple[Callable[[RingfenceClient], Awaitable[list[User]]], str, str]] = {
    "following": (lambda rf: rf.following(), "People you follow", "People you follow."),
    "followers": (lambda rf: rf.followers(), "Your followers", "People who follow you."),
    "blocked": (lambda rf: rf.blocked(), "People you blocked", "People you have blocked."),
}


def _list_command(name: str) -> Callable[..., None]:
    fetch, title, help_text = _LISTS[name]

    def command(
        server: ServerOpt = None,
        token_file: TokenFileOpt = None,
        profile: ProfileOpt = DEFAULT_PROFILE,
        json_: JsonOpt = False,
    ) -> None:
        out = Output(json_mode=json_)

        async def work(rf: RingfenceClient, _account: Account) -> int:
            users = await fetch(rf)
            if out.json:
                out.document({"users": users})
            elif not users:
                out.note(f"{title}: nobody")
            else:
                out.render(people_table(users, title))
            return 0

        with_client(out, server, token_file, profile, work)

    command.__doc__ = help_text
    command.__name__ = f"{name}_command"
    return command


def report_command(
    user: UserArg,
    reason: Annotated[
        str, typer.Option("--reason", help="What happened, for the admins (up to 1000 characters).")
    ] = "",
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Report USER to this server's admins. They are not told who reported them."""
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        receipt = await rf.report(user, reason)
        if out.json:
            out.document({"report": receipt, "user": user})
        else:
            out.show(f"reported @{plain(user)} to the admins (report {receipt['id']})")
            out.note("to stop them reaching you as well: ringfence block USER")
        return 0

    with_client(out, server, token_file, profile, work)


def register(app: typer.Typer) -> None:
    for name in _ACTIONS:
        app.command(name)(_action_command(name))
    for name in _LISTS:
        app.command(name)(_list_command(name))
    app.command("report")(report_command)
