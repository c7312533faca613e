"""What counts as text a person wrote, for display names and messages.

One definition serves the service rules and the API schema (which documents it in
OpenAPI), so a request the schema accepts is never refused by the service for its text.
"""

from __future__ import annotations

import re

_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_ALL_CONTROL = r"\x00-\x1f\x7f-\x9f"
# A message: at least one visible character; no control characters but tab and breaks.
VISIBLE_TEXT_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
# A name: the same on one line, without tabs or line breaks.
VISIBLE_LINE_PATTERN = rf"^[^{_ALL_CONTROL}]*[^\s{_ALL_CONTROL}][^{_ALL_CONTROL}]*$"
_VISIBLE = re.compile(VISIBLE_TEXT_PATTERN)
_VISIBLE_LINE = re.compile(VISIBLE_LINE_PATTERN)


def is_visible_text(value: str) -> bool:
    return _VISIBLE.match(value) is not None


def is_visible_line(value: str) -> bool:
    return _VISIBLE_LINE.match(value) is not None
