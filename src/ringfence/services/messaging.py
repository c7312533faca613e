"""1:1 direct messages, message requests, and call records in the thread.

Rules (X's, which calls depend on):
- a message from someone the recipient does not follow arrives as a *request*;
- it stays a request until the recipient accepts it or replies;
- a block in either direction stops messages both ways.

A message is committed, together with a stream event for each participant, before
the send is acknowledged or anyone is notified. A client-chosen ``txn_id`` makes a
retried send return the original message instead of a duplicate.
"""

from __future__ import annotations

from typing import Any

from ringfence.clock import Clock
from ringfence.realtime.bus import Envelope
from ringfence.services.accounts import AuthContext
from ringfence.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from ringfence.services.social import find_user
from ringfence.services.stream import EventStream
from ringfence.services.text import is_visible_text
from ringfence.services.views import CallRecord, ConversationView, MessageView, UserView
from ringfence.storage.database import Database
from ringfence.storage.repositories import Conversation, IntegrityError, Message, Store, User

TEXT_MAX = 10_000
ACCEPTED, REQUEST, DECLINED = "accepted", "request", "declined"


class Messaging:
    def __init__(self, db: Database, stream: EventStream, clock: Clock) -> None:
        self._db = db
        self._stream = stream
        self._clock = clock

    async def send(self, auth: AuthContext, to: str, text: str, txn_id: str | None) -> MessageView:
        if not is_visible_text(text):
            raise InvalidInput(
                "empty_message", "text needs a visible character and no control characters"
            )
        if len(text) > TEXT_MAX:
            raise InvalidInput("message_too_long", f"text is limited to {TEXT_MAX} characters")
        if "\x00" in text:
            # PostgreSQL cannot store NUL in text; refuse it on every backend alike.
            raise InvalidInput("invalid_text", "text must not contain NUL (U+0000) characters")
        me = auth.user
        async with self._db.write() as store:
            recipient = await find_user(store, to)
            if txn_id is not None:
                earlier = await store.messages.by_txn(me.id, txn_id)
                if earlier is not None:
                    return self._replayed(earlier, me, recipient)
            if recipient.id == me.id:
                raise InvalidInput("cannot_message_self", "you cannot message yourself")
            if recipient.suspended or await store.social.blocked_either_way(me.id, recipient.id):
                # The same answer whoever blocked whom, so a block cannot be probed.
                raise Forbidden("cannot_message", "you cannot message this user")
            conv = await self._open_conversation(store, me, recipient)
            try:
                msg = await store.messages.append(
                    conversation_id=conv.id,
                    sender_id=me.id,
                    recipient_id=recipient.id,
                    kind="text",
                    text=text,
                    call=None,
                    txn_id=txn_id,
                    now=self._clock.now(),
                )
            except IntegrityError:
                # A concurrent retry with the same txn_id committed first.
                assert txn_id is not None
                earlier = await store.messages.by_txn(me.id, txn_id)
                assert earlier is not None
                return self._replayed(earlier, me, recipient)
            view, envelopes = await self._record(store, conv, msg, me, recipient)
        await self._publish(envelopes)
        return view

    async def record_call(self, caller: User, callee: User, record: CallRecord) -> MessageView:
        """Append a ``kind="call"`` message to the pair's thread (used by the calls service)."""
        async with self._db.write() as store:
            conv = await store.conversations.between(caller.id, callee.id)
            if conv is None:
                conv = await self._create_conversation(store, caller, callee)
            msg = await store.messages.append(
                conversation_id=conv.id,
                sender_id=caller.id,
                recipient_id=callee.id,
                kind="call",
                text="",
                call=record.model_dump_json(),
                txn_id=None,
                now=self._clock.now(),
            )
            view, envelopes = await self._record(store, conv, msg, caller, callee)
        await self._publish(envelopes)
        return view

    async def accept(self, auth: AuthContext, username: str) -> ConversationView:
        return await self._set_state(auth, username, ACCEPTED)

    async def decline(self, auth: AuthContext, username: str) -> ConversationView:
        return await self._set_state(auth, username, DECLINED)

    async def conversations(self, auth: AuthContext, *, limit: int) -> list[ConversationView]:
        me = auth.user
        async with self._db.read() as store:
            rows = await store.conversations.for_user(me.id, limit=limit)
            others = await store.users.by_ids(
                [c.user_high_id if c.user_low_id == me.id else c.user_low_id for c, _, _ in rows]
            )
        result = []
        for conv, state, last in rows:
            other = others[conv.user_high_id if conv.user_low_id == me.id else conv.user_low_id]
            names = {me.id: me.username, other.id: other.username}
            result.append(
                ConversationView(
                    user=UserView.of(other),
                    last_message=MessageView.of(last, names, viewer_id=me.id) if last else None,
                    is_request=state == REQUEST,
                    state=state,
                    updated_at=conv.last_activity_at,
                )
            )
        return result

    async def history(
        self, auth: AuthContext, username: str, *, before: int | None, limit: int
    ) -> list[MessageView]:
        me = auth.user
        async with self._db.read() as store:
            other = await find_user(store, username)
            conv = await store.conversations.between(me.id, other.id)
            if conv is None:
                return []
            page = await store.messages.page(conv.id, before=before, limit=limit)
        names = {me.id: me.username, other.id: other.username}
        return [MessageView.of(m, names, viewer_id=me.id) for m in page]

    async def _set_state(self, auth: AuthContext, username: str, state: str) -> ConversationView:
        me = auth.user
        async with self._db.write() as store:
            other = await find_user(store, username)
            conv = await store.conversations.between(me.id, other.id)
            if conv is None or await store.conversations.member_state(conv.id, me.id) is None:
                raise NotFound("conversation_not_found", "no conversation with this user")
            await store.conversations.set_member_state(conv.id, me.id, state)
            view = await self._conversation_view(store, conv, me, other, state)
            # Only my own devices hear about it: the sender is not told that I accepted
            # or declined their request.
            env = await self._stream.append(
                store, me.id, "conversation.updated", {"conversation": _dump(view)}
            )
        await self._stream.publish(me.id, env)
        return view

    async def _conversation_view(
        self, store: Store, conv: Conversation, me: User, other: User, state: str
    ) -> ConversationView:
        last = None
        if conv.last_message_id is not None:
            last_row = await store.messages.by_id(conv.last_message_id)
            if last_row is not None:
                names = {me.id: me.username, other.id: other.username}
                last = MessageView.of(last_row, names, viewer_id=me.id)
        return ConversationView(
            user=UserView.of(other),
            last_message=last,
            is_request=state == REQUEST,
            state=state,
            updated_at=conv.last_activity_at,
        )

    async def _open_conversation(self, store: Store, me: User, recipient: User) -> Conversation:
        """Find or create the pair's conversation and apply the request rules for a send."""
        conv = await store.conversations.between(me.id, recipient.id)
        if conv is None:
            conv = await self._create_conversation(store, me, recipient)
        # Replying to a request accepts it.
        await store.conversations.set_member_state(conv.id, me.id, ACCEPTED)
        theirs = await store.conversations.member_state(conv.id, recipient.id)
        if theirs in (None, DECLINED):
            follows = await store.social.follows(recipient.id, me.id)
            await store.conversations.set_member_state(
                conv.id, recipient.id, ACCEPTED if follows else REQUEST
            )
        return conv

    async def _create_conversation(self, store: Store, a: User, b: User) -> Conversation:
        try:
            return await store.conversations.create(a.id, b.id, self._clock.now())
        except IntegrityError:
            existing = await store.conversations.between(a.id, b.id)
            if existing is None:
                raise
            return existing

    async def _record(
        self, store: Store, conv: Conversation, msg: Message, sender: User, recipient: User
    ) -> tuple[MessageView, list[tuple[int, Envelope]]]:
        await store.conversations.touch(conv.id, msg.id, msg.created_at)
        names = {sender.id: sender.username, recipient.id: recipient.username}
        envelopes = []
        # Reserve stream positions in user-id order: each reservation row-locks the
        # user until commit, and two sends taking them in opposite orders (A->B while
        # B->C and C->A) deadlock on PostgreSQL.
        for user in sorted((sender, recipient), key=lambda u: u.id):
            state = await store.conversations.member_state(conv.id, user.id)
            view = MessageView.of(msg, names, viewer_id=user.id)
            body = {"message": _dump(view), "is_request": state == REQUEST}
            envelopes.append(
                (user.id, await self._stream.append(store, user.id, "message.new", body))
            )
        return MessageView.of(msg, names, viewer_id=sender.id), envelopes

    def _replayed(self, earlier: Message, me: User, recipient: User) -> MessageView:
        if earlier.recipient_id != recipient.id:
            raise Conflict("txn_conflict", "txn_id was already used for another conversation")
        names = {me.id: me.username, recipient.id: recipient.username}
        return MessageView.of(earlier, names, viewer_id=me.id)

    async def _publish(self, envelopes: list[tuple[int, Envelope]]) -> None:
        for user_id, env in envelopes:
            await self._stream.publish(user_id, env)


def _dump(model: Any) -> dict[str, Any]:
    result: dict[str, Any] = model.model_dump(mode="json", exclude_none=False)
    return result
