"""What the terminal client prints, and how it keeps other people's text harmless.

Everything another person chose (a display name, a message, a report reason, even the
server's own error text) reaches the terminal only through :func:`plain`: terminal
control characters and bidirectional overrides become visible escapes (``\\x1b``), and
the result goes into a Rich :class:`~rich.text.Text`, which is never parsed as markup.
So ``[/]`` prints as ``[/]`` and an escape sequence cannot recolour, move the cursor or
rewrite a line. JSON output is ASCII-only, so it is just as inert when someone ``cat``s it.

Output for people goes to standard output through Rich (colour only on a terminal:
Rich decides, and honours ``NO_COLOR``); notes and errors go to standard error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ringfence.client.api import CallRecord

__all__ = [
    "Output",
    "call_label",
    "duration",
    "local_time",
    "one_line",
    "people_table",
    "plain",
    "user_label",
]

# Bidirectional embeddings, overrides and isolates: they reorder what follows them on
# the line, so a name could make the rest of a line read backwards ("Trojan source").
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))


def _escape_char(code: int) -> str:
    if code in (0x0D,):
        return "\\r"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def plain(value: object, *, multiline: bool = False) -> str:
    """``value`` as text that cannot act on a terminal: C0/C1 control characters, DEL,
    bidi overrides and line separators become visible escapes. ``multiline`` keeps line
    breaks and tabs (message bodies); otherwise they are escaped too (names, one-line
    fields), so nothing can forge a line of output."""
    text = str(value)
    out: list[str] = []
    for char in text:
        code = ord(char)
        if multiline and char in "\n\t":
            out.append(char)
        elif code < 0x20 or 0x7F <= code <= 0x9F or code in _BIDI:
            out.append("\\n" if char == "\n" else "\\t" if char == "\t" else _escape_char(code))
        elif code in (0x2028, 0x2029):
            out.append("\n" if multiline else _escape_char(code))
        else:
            out.append(char)
    return "".join(out)


def one_line(value: str, width: int = 60) -> str:
    """A preview of a message: its first line, made plain, cut to ``width``."""
    lines = value.strip().splitlines() or [""]
    first = plain(lines[0])
    more = len(lines) > 1
    if len(first) > width:
        return first[: width - 1] + "…"
    return first + (" …" if more else "")


def local_time(iso: str) -> str:
    """``2024-05-01 14:03`` in this machine's time zone (``TZ``), from the server's
    ISO 8601 timestamp; the raw text if it does not parse."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return plain(iso)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def duration(seconds: int) -> str:
    minutes, secs = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def call_label(record: CallRecord, *, outgoing: bool) -> str:
    """How a finished call reads, from the viewer's side: the same words as the web
    client's thread ("Audio call · 3:12", "Call didn't connect", "Missed video call")."""
    what = "video call" if record["media"] == "video" else "audio call"
    what_ = what.capitalize()
    outcome = record["outcome"]
    if outcome == "completed":
        return f"{what_} · {duration(record['duration_s'])}"
    if outcome == "not_connected":
        return "Call didn't connect"  # no duration: there was no conversation
    if outcome == "missed":
        return f"{what_} · No answer" if outgoing else f"Missed {what}"
    if outcome == "rejected":
        return f"{what_} · Declined" if outgoing else f"Declined {what}"
    if outcome == "busy":
        return f"{what_} · Busy" if outgoing else f"Missed {what}"
    return f"Cancelled {what}" if outgoing else f"Missed {what}"


def user_label(user: Mapping[str, Any]) -> str:
    """``Alice (@alice) ✓``: the display name, the handle, and the verified badge."""
    name = plain(user.get("display_name") or "")
    handle = f"@{plain(user.get('username', '?'))}"
    badge = " ✓" if user.get("verified") else ""
    return f"{name} ({handle}){badge}" if name and name != user.get("username") else handle + badge


def people_table(users: Sequence[Mapping[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("Username")
    table.add_column("Display name")
    table.add_column("Verified")
    for user in users:
        table.add_row(
            Text(f"@{plain(user.get('username', '?'))}", style="bold"),
            Text(plain(user.get("display_name") or "")),
            Text("✓ verified" if user.get("verified") else "", style="green"),
        )
    return table


class Output:
    """One command's output: JSON for scripts (``--json``) or Rich for people.

    In JSON mode standard output carries exactly one JSON document (:meth:`document`)
    or one object per line (:meth:`line`), and nothing else.
    """

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        # soft_wrap: a long message or URL is never broken with a hard newline.
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    # --- scripts ------------------------------------------------------------------

    def document(self, data: object) -> None:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=True) + "\n")
        sys.stdout.flush()

    def line(self, data: object) -> None:
        sys.stdout.write(json.dumps(data, ensure_ascii=True, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    # --- people -------------------------------------------------------------------

    def show(self, *parts: Text | str, style: str | None = None) -> None:
        """One line (or a message's lines) for people, on stdout. ``str`` parts go
        through :func:`plain` (idempotent, so text made plain already is unchanged) and
        are never parsed as markup; ``Text`` parts must be built from plain text."""
        text = Text(style=style or "")
        for part in parts:
            text.append(part if isinstance(part, Text) else Text(plain(part, multiline=True)))
        self.out.print(text)
        self.out.file.flush()

    def render(self, renderable: Table) -> None:
        self.out.print(renderable)

    def note(self, message: str, *, style: str | None = None) -> None:
        """A remark on stderr (never part of the output a script reads)."""
        self.err.print(Text(plain(message, multiline=True), style=style or ""))

    def error(self, message: str) -> None:
        """The one line an error gets, on stderr."""
        line = Text("error: ", style="bold red")
        line.append(Text(plain(message)))
        self.err.print(line)

    def lines(self, items: Iterable[Text]) -> None:
        for item in items:
            self.out.print(item)
        self.out.file.flush()
