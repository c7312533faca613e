"""Frames serialised by pydantic are byte for byte what ``encode`` writes, so that a
stored event, an ack or an error reads the same whichever path wrote it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest

from ringfence.wire.events import ConversationRead, MessageNew, StreamEvent, Typing
from ringfence.wire.frames import error_event, message_ack
from ringfence.wire.json import encode
from ringfence.wire.models import MessageView

TEXTS = [
    "plain",
    'quotes " and \\ backslashes, </script>, tabs\tand\nnewlines\r',
    "é, 😀, \U0010ffff, zero\u200bwidth, \u2028 and \u2029 separators, \x7f and \x85",
    "",
]


def view(text: str, *, txn_id: str | None = "t-1") -> MessageView:
    return MessageView(
        id=12,
        sender="alice",
        recipient="bob",
        kind="text",
        text=text,
        created_at=datetime(2026, 12, 6, 22, 4, 5, 678901, tzinfo=UTC),
        call=None,
        txn_id=txn_id,
    )


@pytest.mark.parametrize("text", TEXTS)
def test_a_stored_event_is_written_as_encode_writes_it(text: str) -> None:
    for event in (
        MessageNew(message=view(text), is_request=True),
        MessageNew(message=view(text, txn_id=None), is_request=False),
        ConversationRead(user="bob", up_to=7),
    ):
        expected = encode({"type": event.TYPE, "pos": 41, **event.body()})
        assert event.stored_frame(41) == expected
        assert event.stored_frame(41, event.fields_json()) == expected


def test_an_event_without_fields_is_a_whole_object() -> None:
    class Nothing(StreamEvent):
        TYPE: ClassVar[str] = "nothing"

    assert Nothing().stored_frame(3) == '{"type":"nothing","pos":3}'
    assert Typing(user="alice").stored_frame(3) == encode(
        {"type": "typing", "pos": 3, "user": "alice"}
    )


@pytest.mark.parametrize("text", TEXTS)
def test_an_ack_is_written_as_encode_writes_it(text: str) -> None:
    message = view(text)
    ack = message_ack("t-1", message)
    assert ack == encode(
        {"type": "message.ack", "txn_id": "t-1", "message": message.model_dump(mode="json")}
    )


def test_an_error_leaves_out_what_it_does_not_have() -> None:
    frame = error_event("rate_limited", "slow down é", txn_id="t-2", status=429, retry_after=3)
    assert frame == encode(
        {
            "type": "error",
            "error": "rate_limited",
            "detail": "slow down é",
            "txn_id": "t-2",
            "status": 429,
            "retry_after": 3,
        }
    )
