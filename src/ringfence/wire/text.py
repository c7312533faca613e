"""What counts as text a person wrote: messages, report reasons and display names.

The one place these rules live. The API schema (which documents them in OpenAPI) and
the services both use them, so a request the schema accepts is never refused by a
service for its text.

- No control characters anywhere, except tab and newline in multi-line text (messages
  and reasons). A carriage return is a line break from another platform, so CRLF and
  CR become LF first (:func:`normalise_newlines`). Control characters are how text
  turns into terminal commands (escape sequences: hidden links, window titles,
  clipboard writes) in whatever shows it later, an admin's terminal included.
- Display names, which people go by when deciding whom to trust, also refuse
  characters that are invisible or reorder what is shown: bidirectional controls
  (U+202E turns "Support ✓" plus a handle around), zero-width spaces, fillers that
  render as nothing, tag characters that carry hidden text. Zero-width joiners are
  kept between two visible characters, where emoji sequences and Persian or Indic
  spelling need them.

What is stored from before these rules (and anything else printed to a terminal)
goes through :func:`printable`.
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls and DEL, but tab and the line breaks: what multi-line text may not
# hold. A carriage return is let through here only because it is turned into a line
# feed before anything is stored (normalise_newlines); these patterns describe what a
# client may send.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# Every control character: what one line of text may not hold.
_ALL_CONTROL = r"\x00-\x1f\x7f-\x9f"
# A message: at least one visible character; no control characters but tab and newline.
VISIBLE_TEXT_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
# A reason: the same, and it may be empty.
PLAIN_TEXT_PATTERN = rf"^[^{_CONTROL}]*$"
# A name: the same on one line, without tabs or line breaks.
VISIBLE_LINE_PATTERN = rf"^[^{_ALL_CONTROL}]*[^\s{_ALL_CONTROL}][^{_ALL_CONTROL}]*$"
_VISIBLE = re.compile(VISIBLE_TEXT_PATTERN)
_PLAIN = re.compile(PLAIN_TEXT_PATTERN)
_VISIBLE_LINE = re.compile(VISIBLE_LINE_PATTERN)
_NEWLINES = re.compile(r"\r\n?")

ZWNJ, ZWJ = "\u200c", "\u200d"
# Arabic letter mark, LRM and RLM, the embeddings and overrides, the isolates.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Not format characters (Cf) by category, but shown as nothing or as blank space.
_BLANK_LOOKING = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
)
# Every character of category Cc, Cf, Cs, Co, Zl or Zp but ZWNJ and ZWJ, as ranges of
# Python 3.11's Unicode (14.0); test_text.py recomputes them from unicodedata, so a
# newer Unicode that adds some fails a test instead of going unnoticed. Only the
# display-name pattern below needs them spelled out (a regular expression has no
# categories); the checks themselves ask unicodedata.
HIDDEN_RANGES = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605),
    (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891),
    (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200B), (0x200E, 0x200F),
    (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xD800, 0xF8FF),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD),
)  # fmt: skip


def _char_class(ranges: tuple[tuple[int, int], ...], extra: frozenset[str]) -> str:
    """The inside of a regex character class, in a form Python's re and JSON Schema's
    (ECMA 262) dialect read alike: \\uXXXX escapes in the BMP, the characters
    themselves beyond it. Surrogates are left out: no JSON text can carry one alone."""

    def esc(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    parts = []
    for first, last in ranges:
        if first <= 0xDFFF and last >= 0xD800:  # the surrogates: keep what is around them
            parts += [(first, 0xD7FF)] if first < 0xD800 else []
            parts += [(0xE000, last)] if last > 0xDFFF else []
        else:
            parts.append((first, last))
    text = [esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in parts]
    return "".join(text + [esc(ord(c)) for c in sorted(extra)])


_HIDDEN = _char_class(HIDDEN_RANGES, _BLANK_LOOKING)
# The whitespace a name may hold: Unicode's space separators (Zs). Every other
# character str.isspace() knows is hidden above (tab, line breaks, U+2028...).
SPACES = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_SPACE = rf"[{SPACES}]"
_SHOWN = rf"[^{_HIDDEN}{SPACES}\u200c\u200d]"  # a character that shows
_WORD = rf"{_SHOWN}(?:[\u200c\u200d]?{_SHOWN})*"  # joiners only inside a word
# A display name, exactly as is_visible_line() decides it: words of characters that
# show, joined at most by one ZWNJ or ZWJ between two of them, apart by spaces.
DISPLAY_NAME_PATTERN = rf"^{_SPACE}*{_WORD}(?:{_SPACE}+{_WORD})*{_SPACE}*$"


def normalise_newlines(value: str) -> str:
    """CRLF and lone CR become LF: one line break whatever platform wrote it."""
    return _NEWLINES.sub("\n", value)


def is_visible_text(value: str) -> bool:
    """Multi-line text with something visible in it (a message)."""
    return _VISIBLE.match(value) is not None


def is_plain_text(value: str) -> bool:
    """Multi-line text, possibly empty (a report's reason)."""
    return _PLAIN.match(value) is not None


def is_visible_line(value: str) -> bool:
    """One line with something visible and nothing invisible (a display name)."""
    return _VISIBLE_LINE.match(value) is not None and hidden_character(value) is None


def hidden_character(name: str) -> str | None:
    """Why ``name`` cannot be a display name because of a character that is invisible or
    reorders the text, or None when it has none. The reason names the character."""
    for index, char in enumerate(name):
        if char in (ZWJ, ZWNJ):
            before = name[index - 1] if index > 0 else " "
            after = name[index + 1] if index + 1 < len(name) else " "
            if _joinable(before) and _joinable(after):
                continue
            return f"{_describe(char)} is only allowed between two visible characters"
        if char in _BIDI_CONTROLS:
            return f"{_describe(char)} changes the direction text is shown in"
        if char in _BLANK_LOOKING or _is_hidden_category(char):
            return f"{_describe(char)} is invisible"
    return None


def without_hidden(name: str) -> str:
    """``name`` minus what :func:`hidden_character` refuses, for names stored before
    that rule: what is left is what a reader sees, and cannot reorder what follows."""
    kept: list[str] = []
    for index, char in enumerate(name):
        if char in (ZWJ, ZWNJ):
            after = name[index + 1] if index + 1 < len(name) else " "
            if kept and _joinable(kept[-1]) and _joinable(after):
                kept.append(char)
        elif not (
            char in _BIDI_CONTROLS
            or char in _BLANK_LOOKING
            or _is_hidden_category(char)
            or unicodedata.category(char) == "Cc"
        ):
            kept.append(char)
    return "".join(kept).strip()


def printable(value: str, *, keep: str = "") -> str:
    """``value`` safe to print to a terminal: every control character (but those in
    ``keep``) and every invisible or direction-changing character becomes a visible
    escape such as ``\\x1b`` or ``\\u202e``. For user text that reaches a terminal."""
    out = []
    for char in value:
        if char in keep:
            out.append(char)
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\x{ord(char):02x}")
        elif (
            char in _BIDI_CONTROLS
            or char in _BLANK_LOOKING
            or char in (ZWJ, ZWNJ)
            or _is_hidden_category(char)
        ):
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return "".join(out)


def _joinable(char: str) -> bool:
    return not (char.isspace() or char in (ZWJ, ZWNJ) or _is_hidden_category(char))


def _is_hidden_category(char: str) -> bool:
    # Cf: format characters (soft hyphen, zero-width space, word joiner, BOM, tags...);
    # Cs: lone surrogates; Co: private use, which renders as anything or nothing;
    # Zl/Zp: line and paragraph separators.
    return unicodedata.category(char) in ("Cf", "Cs", "Co", "Zl", "Zp")


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} ({name.lower()})" if name else code
