"""The events a user's devices receive on the real-time socket, outside calls.

Each is a model: the services build them, :class:`~ringfence.services.stream.EventStream`
writes them (adding ``type``, and ``pos`` for a stored one), the web client's types
are generated from them (``web/eventtypes.js``), and the OpenAPI description lists
them (``wire/events_doc.py``). A service cannot send an event that is not here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ringfence.wire.json import encode
from ringfence.wire.models import ConversationView, MessageView, UserView


class StreamEvent(BaseModel):
    """An event for a user's devices. A stored one is kept in their stream, where it
    gets a position (``pos``) a reconnecting device resumes after; an ephemeral one
    is sent to the devices connected now and forgotten."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    STORED: ClassVar[bool] = True

    def body(self) -> dict[str, Any]:
        """The event's own fields, as JSON values (the stream adds type and pos)."""
        body: dict[str, Any] = self.model_dump(mode="json")
        return body

    def frame(self) -> dict[str, Any]:
        """The whole frame of an ephemeral event."""
        return {"type": self.TYPE, **self.body()}

    def fields_json(self) -> str:
        """The event's own fields as a JSON object, as ``encode(self.body())`` writes
        it, but serialised by pydantic directly (no intermediate dict): a stored event
        is written for every message."""
        return self.model_dump_json()

    def stored_frame(self, pos: int, fields_json: str | None = None) -> str:
        """The stored event's frame, ``{"type", "pos", ...its fields}``, exactly as
        ``encode({"type": TYPE, "pos": pos, **body()})`` would write it. Pass
        ``fields_json`` (from :meth:`fields_json`) to reuse one serialisation."""
        return frame_at(*self.stored_frame_parts(fields_json), pos)

    def stored_frame_parts(self, fields_json: str | None = None) -> tuple[str, str]:
        """:meth:`stored_frame` around its position: ``head + str(pos) + tail`` is the
        frame at ``pos``, for a writer that learns the position only as it stores it."""
        fields = self.fields_json() if fields_json is None else fields_json
        head = f'{{"type":{encode(self.TYPE)},"pos":'
        return head, "}" if fields == "{}" else f",{fields[1:]}"


def frame_at(head: str, tail: str, pos: int) -> str:
    """A stored frame from :meth:`StreamEvent.stored_frame_parts`, at ``pos``."""
    return f"{head}{int(pos)}{tail}"


class MessageNew(StreamEvent):
    """A message to or from me, on every device of mine; `is_request`: it is in a
    message request (not yet accepted by its recipient)."""

    TYPE: ClassVar[str] = "message.new"
    message: MessageView
    is_request: bool


class ConversationUpdated(StreamEvent):
    """I accepted or declined a conversation, on some device."""

    TYPE: ClassVar[str] = "conversation.updated"
    conversation: ConversationView


class ConversationRead(StreamEvent):
    """My read position with `user` (the other person) moved to `up_to`, on some
    device."""

    TYPE: ClassVar[str] = "conversation.read"
    user: str
    up_to: int


class MessageRead(StreamEvent):
    """`user` read my messages up to `up_to` (only where we both share read
    receipts)."""

    TYPE: ClassVar[str] = "message.read"
    user: str
    up_to: int


class MessageDelivered(StreamEvent):
    """One of `user`'s devices has my messages up to `up_to` (on the same terms as
    message.read)."""

    TYPE: ClassVar[str] = "message.delivered"
    user: str
    up_to: int


class UserUpdated(StreamEvent):
    """Someone I have a conversation with (or I, on any device) changed their display
    name, or deleted their account (`user.deleted`, under the username I knew)."""

    TYPE: ClassVar[str] = "user.updated"
    user: UserView


class Typing(StreamEvent):
    """`user` is typing to me. Never stored, so it has no position."""

    TYPE: ClassVar[str] = "typing"
    STORED: ClassVar[bool] = False
    user: str


# Every event above, in the order the documentation lists them.
EVENTS: tuple[type[StreamEvent], ...] = (
    MessageNew,
    ConversationUpdated,
    ConversationRead,
    MessageRead,
    MessageDelivered,
    UserUpdated,
    Typing,
)
