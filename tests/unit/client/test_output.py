"""What the terminal client prints: other people's text is inert, JSON is pure, and
the lines read as the web client's do."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from ringfence.client.cli_listen import describe_event, public_event
from ringfence.client.cli_messages import inbox_table, message_lines
from ringfence.client.output import (
    Output,
    local_time,
    one_line,
    people_table,
    plain,
    user_label,
)

HOSTILE = [
    "\x1b[2J\x1b[31mred",  # clear the screen, colour
    "\x9b31m",  # the one-byte C1 CSI
    "a\rb",  # rewrite the line
    "\x07\x08\x7f",  # bell, backspace, DEL
    "\u202egnp.exe",  # right-to-left override
    "\u2066isolate\u2069",
    "line\u2028separator",
]


UNSAFE = {*range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029}


def dangerous(text: str) -> bool:
    return any((ord(c) < 0x20 and c not in "\n\t") or ord(c) in UNSAFE for c in text)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("value", HOSTILE)
def test_plain_leaves_nothing_a_terminal_would_act_on(value: str) -> None:
    assert not dangerous(plain(value))
    assert not dangerous(plain(value, multiline=True))


def test_plain_shows_what_it_escaped() -> None:
    assert plain("\x1b[31mred") == "\\x1b[31mred"
    assert plain("a\rb") == "a\\rb"
    assert plain("\u202eabc") == "\\u202eabc"
    assert plain("two\nlines\tand tab") == "two\\nlines\\tand tab"
    assert plain("two\nlines\tand tab", multiline=True) == "two\nlines\tand tab"
    assert (
        plain("[/] [bold]not markup[/bold] 👩‍👩‍👧 émoji")
        == "[/] [bold]not markup[/bold] 👩‍👩‍👧 émoji"
    )


@given(st.text())
def test_plain_is_idempotent_and_safe(value: str) -> None:
    once = plain(value, multiline=True)
    assert plain(once, multiline=True) == once
    assert not dangerous(once)
    assert "\n" not in plain(value)


def test_show_never_parses_markup(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output(json_mode=False)
    out.show("@mallory: ", "[/] [red]x[/red] [link=http://evil]y[/link] \x1b[2J")
    out.note("[bold]note[/bold]")
    out.error("bad [/] value \x1b]0;title\x07")
    captured = capsys.readouterr()
    assert captured.out == "@mallory: [/] [red]x[/red] [link=http://evil]y[/link] \\x1b[2J\n"
    assert "[bold]note[/bold]" in captured.err
    assert "error: bad [/] value \\x1b]0;title\\x07" in captured.err
    assert "\x1b" not in captured.out + captured.err  # no colour off a terminal


def test_json_is_one_ascii_document_or_one_object_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = Output(json_mode=True)
    out.document({"text": "\x1b[31m ‮ é [/]"})
    document = capsys.readouterr().out
    assert document.isascii()
    assert json.loads(document) == {"text": "\x1b[31m ‮ é [/]"}
    out.line({"a": 1})
    out.line({"b": "\x9b"})
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"b": "\x9b"}]
    assert all(line.isascii() for line in lines)


def test_people_and_times() -> None:
    alice = {"username": "alice", "display_name": "Alice [/]", "verified": True}
    assert user_label(alice) == "Alice [/] (@alice) ✓"
    assert user_label({"username": "bob", "display_name": "bob", "verified": False}) == "@bob"
    assert user_label({"username": "m", "display_name": "\x1b[2J", "verified": False}) == (
        "\\x1b[2J (@m)"
    )
    console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(people_table([alice], "People you follow"))
    text = console.export_text()
    assert "@alice" in text
    assert "Alice [/]" in text
    assert "✓ verified" in text
    console.file.close()


@pytest.mark.usefixtures("utc")
def test_dates_and_previews() -> None:
    assert local_time("2024-05-01T14:03:59.123456Z") == "2024-05-01 14:03"
    assert local_time("2024-05-01T14:03:00+02:00") == "2024-05-01 12:03"
    assert local_time("garbage\x1b") == "garbage\\x1b"
    assert one_line("first\nsecond") == "first …"
    assert one_line("x" * 100, width=10) == "x" * 9 + "…"
    assert one_line("\x1b[2J") == "\\x1b[2J"


def message(id_: int, sender: str, text: str, kind: str = "text") -> dict[str, Any]:
    call = (
        {"call_id": "c", "media": "audio", "outcome": "missed", "duration_s": 0}
        if kind == "call"
        else None
    )
    return {
        "id": id_,
        "sender": sender,
        "recipient": "bob" if sender == "alice" else "alice",
        "kind": kind,
        "text": text,
        "created_at": "2024-05-01T14:03:00Z",
        "call": call,
    }


def render(lines: Any) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    for line in lines:
        console.print(line)
    console.file.close()
    return console.export_text()


@pytest.mark.usefixtures("utc")
def test_a_thread_reads_oldest_first_with_calls_in_the_webs_words() -> None:
    thread = [
        message(1, "alice", "hi [/]\nsecond \x1b[2J line"),
        message(2, "bob", "hello"),
        message(3, "alice", "", kind="call"),
    ]
    text = render(message_lines(thread, peer="alice"))  # type: ignore[arg-type]
    assert text.splitlines() == [
        "2024-05-01 14:03  @alice",
        "    hi [/]",
        "    second \\x1b[2J line",
        "2024-05-01 14:03  you",
        "    hello",
        "2024-05-01 14:03  @alice  Missed audio call",
    ]


def test_the_inbox_marks_requests_and_counts_unread_once_the_server_does() -> None:
    conversation = {
        "user": {"username": "alice", "display_name": "Alice", "verified": False},
        "last_message": message(1, "alice", "hello"),
        "is_request": True,
        "updated_at": "2024-05-01T14:03:00Z",
    }
    text = render([inbox_table([conversation])])  # type: ignore[list-item]
    assert "request" in text
    assert "Unread" not in text
    counted = render([inbox_table([{**conversation, "unread": 3}])])  # type: ignore[list-item]
    assert "Unread" in counted
    assert " 3 " in counted


def test_listen_lines_and_json_keep_secrets_out() -> None:
    incoming = {
        "type": "call.incoming",
        "call_id": "call-1",
        "from": {"id": 1, "username": "alice", "display_name": "Alice\x1b[2J", "verified": False},
        "media": "video",
        "sdp": "v=0\r\nc=IN IP4 192.0.2.7\r\n",
        "ice_servers": [{"urls": ["turn:x"], "username": "1:u", "credential": "s3cret"}],
        "ice_transport_policy": "relay",
    }
    cleaned = public_event(incoming)
    assert "sdp" not in cleaned
    assert "ice_servers" not in cleaned
    assert "192.0.2.7" not in json.dumps(cleaned)
    assert "s3cret" not in json.dumps(cleaned)
    assert cleaned["from"]["username"] == "alice"

    callers: dict[str, str] = {}
    line = describe_event(incoming, "bob", callers)
    assert line is not None
    assert line.plain.startswith("incoming video call from Alice\\x1b[2J (@alice)")
    assert "ringfence answer --from alice" in line.plain
    ended = describe_event(
        {"type": "call.ended", "call_id": "call-1", "reason": "cancelled"}, "bob", callers
    )
    assert ended is not None
    assert ended.plain == "call with @alice ended: cancelled"

    new = {
        "type": "message.new",
        "pos": 4,
        "message": message(5, "alice", "[/]"),
        "is_request": True,
    }
    shown = describe_event(new, "bob", {})
    assert shown is not None
    assert shown.plain.endswith("@alice (message request): [/]")
    assert describe_event({"type": "call.candidate", "candidate": {}}, "bob", {}) is None
    assert describe_event({"type": "typing", "user": "alice"}, "bob", {}) is None
    assert public_event({"type": "typing", "user": "alice"}) == {"type": "typing", "user": "alice"}
