"""A refused request's problems in words a person reads, one per field.

pydantic's own messages ("String should have at least 10 characters") are written for
programmers. The HTTP API (``api/errors.py``, 422 ``invalid_request``) and the
socket's ``message.send`` frame (``services/sockets.py``) describe the same mistake in
the same words, so a client shows one text whichever way it sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ringfence.wire.requests import TXN_ID_PATTERN, USERNAME_PATTERN

# Location parts that name where a value came from, not which field it is.
_PLACES = frozenset({"body", "query", "path"})


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """One line naming each bad field by its JSON key, each followed by what is wrong
    in plain words ("password: use at least 10 characters"), plus the field names.

    Each part after a key reads on its own too, so a form can show it beside its own
    field (web/format.js). The input itself is never echoed: it may be a password."""
    parts, fields = [], []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in _PLACES]
        name = ".".join(loc) or "body"
        if err.get("type") == "json_invalid":
            name = "body"
        fields.append(name)
        parts.append(f"{name}: {plain_problem(err, name)}")
    return "; ".join(parts) or "invalid request", fields


# Rules that a pattern alone would only quote as a regular expression.
_PATTERN_WORDS = {
    USERNAME_PATTERN: "use 3 to 32 lowercase letters, digits or _",
    r"^[^\x00]*$": "must not contain NUL characters",
    TXN_ID_PATTERN: "use 1 to 64 letters, digits or . _ ~ -",
}
_FIELD_PATTERN_WORDS = {
    "username": "use 3 to 32 lowercase letters, digits or _",
    "password": "must not contain NUL characters",
    "new_password": "must not contain NUL characters",
    "current_password": "must not contain NUL characters",
}
_TYPE_WORDS = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "must be text",
    "string_unicode": "must be valid Unicode text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "is too large",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "json_invalid": "request body is not valid JSON",
    "json_type": "must be JSON",
}
# Beyond this a bound is only a guard against overflow: naming it helps nobody.
_LARGE = 2**53


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _bound(value: object, words: str, beyond: str) -> str:
    if isinstance(value, int):
        return beyond if abs(value) >= _LARGE else f"{words} {value:,}"
    return f"{words} {value}"


def plain_problem(err: Mapping[str, Any], name: str = "") -> str:
    """What is wrong with one value, in words a person reads: pydantic's own messages
    ("String should have at least 10 characters") are written for programmers."""
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    field = name.rsplit(".", 1)[-1]
    if kind == "missing" and name == "body":
        return "a JSON object is required"
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    if kind == "string_pattern_mismatch":
        return (
            _FIELD_PATTERN_WORDS.get(field)
            or _PATTERN_WORDS.get(str(ctx.get("pattern")))
            or "contains characters that aren't allowed here"
        )
    if kind in ("string_too_short", "string_too_long", "too_short", "too_long"):
        items = ctx.get("field_type") == "List"
        short = kind.endswith("short")
        n = int(ctx.get("min_length" if short else "max_length", 0))
        if short and n == 1:
            return "must not be empty"
        unit = _count(n, "item", "items") if items else _count(n, "character", "characters")
        if items:
            return f"needs at least {unit}" if short else f"can have at most {unit}"
        return f"use at least {unit}" if short else f"use at most {unit}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', 'the allowed values')}"
    if kind == "greater_than_equal":
        return _bound(ctx.get("ge"), "must be at least", "is too small")
    if kind == "greater_than":
        return _bound(ctx.get("gt"), "must be more than", "is too small")
    if kind == "less_than_equal":
        return _bound(ctx.get("le"), "must be at most", "is too large")
    if kind == "less_than":
        return _bound(ctx.get("lt"), "must be less than", "is too large")
    msg = str(err.get("msg", "is invalid"))
    # Our own validators raise plain sentences already; a ValueError's gets a prefix.
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    # pydantic's own sentences start with a capital ("Input should..."); "U+202E" stays.
    return msg[:1].lower() + msg[1:] if msg[1:2].islower() else msg
