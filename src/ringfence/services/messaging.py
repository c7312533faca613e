"""1:1 direct messages, message requests, and call records in the thread.

Rules (X's, which calls depend on):
- a message from someone the recipient does not follow arrives as a *request*;
- it stays a request until the recipient accepts it or replies;
- a block in either direction stops messages both ways. Whoever blocked is told so
  when they try to write; the blocked sender is not: their message is answered like
  any other and stays in their own history, but is *withheld*: the recipient never
  sees it, nor any change to their inbox, requests or event stream. What the sender
  can observe (the answer, their history, their conversation list, their events, the
  limits they meet) is the same as if there were no block, so a block cannot be
  probed by messaging;
- a deleted account is, to a sender, a name nobody has (404), but the conversations
  others had with it stay readable, shown as with "Deleted account".

Sending is limited per account (:mod:`ringfence.services.limits`): every send counts
against ``messages_per_minute``, and a message that lands as a request (the recipient
has not accepted the conversation) also against ``message_requests_per_hour``.

The sender is read afresh with the send, not taken from the authentication cache, so
a suspension stops their messages at once.

A message is committed, together with a stream event for each participant, before
the send is acknowledged or anyone is notified. A client-chosen ``txn_id`` makes a
retried send return the original message instead of a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ringfence.clock import Clock
from ringfence.realtime.bus import Envelope
from ringfence.services.accounts import AuthContext, Party, is_username
from ringfence.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    SessionEnded,
    Unauthorized,
)
from ringfence.services.limits import ActionLimits
from ringfence.services.social import find_user
from ringfence.services.stream import EventStream
from ringfence.services.views import DEFAULT_SETTINGS, message_view, user_view
from ringfence.storage.database import Database
from ringfence.storage.repositories import (
    Conversation,
    LiveSession,
    Message,
    SendContext,
    Store,
    StoredMessage,
    User,
)
from ringfence.wire.events import (
    ConversationRead,
    ConversationUpdated,
    MessageDelivered,
    MessageNew,
    MessageRead,
    StreamEvent,
    Typing,
)
from ringfence.wire.models import CallRecord, ConversationView, MessageView
from ringfence.wire.text import is_visible_text, normalise_newlines

TEXT_MAX = 10_000
ACCEPTED, REQUEST, DECLINED = "accepted", "request", "declined"


class MessageNotifier(Protocol):
    """Tells the recipient's devices of a new message beyond their open sockets (Web
    Push). Must not block the send: queue, then push in the background."""

    async def message_new(
        self, user_id: int, sender: str, message_id: int, *, request: bool
    ) -> None: ...


class Messaging:
    def __init__(
        self,
        db: Database,
        stream: EventStream,
        clock: Clock,
        limits: ActionLimits,
        notifier: MessageNotifier | None = None,
    ) -> None:
        self._db = db
        self._stream = stream
        self._clock = clock
        self._limits = limits
        self._notifier = notifier

    async def send(
        self,
        me: Party,
        to: str,
        text: str,
        txn_id: str | None,
        *,
        session: LiveSession | None = None,
    ) -> MessageView:
        """Send ``text`` to ``to``. ``session``: the session a long-lived connection
        authenticated with, checked in the send's own read; :class:`SessionEnded` when
        it is no longer live or the sender is suspended (the connection must close)."""
        # Every attempt counts, before anything about the recipient is looked at.
        await self._limits.count(self._limits.messages, me.id)
        text = normalise_newlines(text)  # the API did already; any other caller too
        if not is_visible_text(text):
            raise InvalidInput(
                "empty_message", "text needs a visible character and no control characters"
            )
        if len(text) > TEXT_MAX:
            raise InvalidInput("message_too_long", f"text is limited to {TEXT_MAX} characters")
        if "\x00" in text:
            # PostgreSQL cannot store NUL in text; refuse it on every backend alike.
            raise InvalidInput("invalid_text", "text must not contain NUL (U+0000) characters")
        if not is_username(to):
            raise NotFound("user_not_found", "no such user")
        # The hot path: one SELECT decides everything, then only the writes that are
        # needed: for a reply, the message, the conversation's last activity, both
        # stream positions and both events (on PostgreSQL, one statement).
        async with self._db.write() as store:
            ctx = await store.conversations.send_context(
                me.id, username=to, txn_id=txn_id, session=session
            )
            if ctx is None:
                # No row to read the session with: asked apart, on this rare path only.
                if session is not None and not await store.sessions.is_active(session):
                    raise SessionEnded
                raise NotFound("user_not_found", "no such user")
            if session is not None and (not ctx.session_live or ctx.sender_suspended):
                raise SessionEnded
            if ctx.sender_suspended:
                # Read with the send: the auth cache may not know yet.
                raise Unauthorized("unauthorized", "this account is suspended")
            recipient = ctx.recipient
            if ctx.earlier is not None:
                return self._replayed(ctx.earlier, me, recipient)
            if recipient.id == me.id:
                raise InvalidInput("cannot_message_self", "you cannot message yourself")
            if recipient.suspended:
                if recipient.deleted_at is not None:  # as if there were nobody by that name
                    raise NotFound("user_not_found", "no such user")
                raise Forbidden("cannot_message", "you cannot message this user")
            if ctx.sender_blocked_recipient:
                # The sender's own block: theirs to know about.
                raise Forbidden("you_blocked", "you blocked this user; unblock them to message")
            before = {me.id: ctx.sender_state, recipient.id: ctx.recipient_state}
            lands = _request_rules(me.id, recipient.id, before, ctx.recipient_follows_sender)
            if {**before, **lands}.get(recipient.id) == REQUEST:
                # Decided as if there were no block: the limits a sender meets are the
                # same whether the recipient blocked them or not.
                await self._limits.count(self._limits.message_requests, me.id)
            now = self._clock.now()
            withheld = ctx.recipient_blocked_sender
            recorded: tuple[MessageView, list[tuple[int, Envelope]]] | None
            if (
                ctx.new_message_id is not None
                and ctx.conversation_id is not None
                and not lands
                and not withheld
            ):
                # PostgreSQL, the common case: a conversation that exists, whose states
                # this send leaves as they are, decided in full. The message and both
                # events are written in one statement of their own (see
                # EventStream.append_with_message): two round trips in all, not six.
                sent = StoredMessage(
                    ctx.new_message_id, ctx.conversation_id, me.id, recipient.id,
                    "text", text, None, txn_id, now,
                )  # fmt: skip
                msg: StoredMessage | None = sent
                states = dict(before)
                recorded = await self._record_alone(store, sent, me, recipient, states)
            else:
                conv_id, states = await self._thread(store, ctx, me, recipient, now)
                msg = await store.messages.add(
                    conversation_id=conv_id,
                    sender_id=me.id,
                    recipient_id=recipient.id,
                    kind="text",
                    text=text,
                    call=None,
                    txn_id=txn_id,
                    now=now,
                    withheld=withheld,
                    message_id=ctx.new_message_id,
                )
                recorded = None
                if msg is not None:
                    changes = _request_rules(
                        me.id, recipient.id, states, ctx.recipient_follows_sender
                    )
                    recorded = await self._record_changes(
                        store, conv_id, msg, me, recipient, states, changes, withheld=withheld
                    )
            if recorded is None:
                # A concurrent retry with the same txn_id committed first (PostgreSQL;
                # on SQLite writers take turns, so send_context already saw it).
                return await self._replay_txn(store, me, txn_id, recipient)
            assert msg is not None
            view, envelopes = recorded
        await self._publish(envelopes)
        await self._push_message(ctx, me, msg, recipient, states, withheld=withheld)
        return view

    async def _record_changes(
        self,
        store: Store,
        conv_id: int,
        msg: StoredMessage,
        me: Party,
        recipient: Party,
        states: dict[int, str | None],
        changes: dict[int, str],
        *,
        withheld: bool,
    ) -> tuple[MessageView, list[tuple[int, Envelope]]]:
        """Apply a stored message's member-state ``changes`` (``states`` is updated to
        match) and record it: :meth:`_record`, or :meth:`_record_withheld`."""
        if withheld:
            # Only the sender's side moves: the recipient's state, inbox, last
            # message and event stream stay exactly as they were.
            changes = {k: v for k, v in changes.items() if k == me.id}
            await store.conversations.set_member_states(conv_id, changes)
            await store.conversations.touch_withheld(conv_id, me.id, msg.id, msg.created_at)
            states.update(changes)
            return await self._record_withheld(store, msg, me, recipient, states)
        await store.conversations.set_member_states(conv_id, changes)
        states.update(changes)
        return await self._record(store, conv_id, msg, me, recipient, states)

    async def _push_message(
        self,
        ctx: SendContext,
        me: Party,
        msg: StoredMessage,
        recipient: Party,
        states: dict[int, str | None],
        *,
        withheld: bool,
    ) -> None:
        """Wake the recipient's devices by Web Push for a stored message. A withheld
        message reaches nobody, and a declined request stays quiet. Without a push
        subscription (read with the send) there is nobody to wake."""
        state = states.get(recipient.id)
        if (
            self._notifier is not None
            and ctx.recipient_has_push
            and not withheld
            and state != DECLINED
        ):
            await self._notifier.message_new(
                recipient.id, me.username, msg.id, request=state == REQUEST
            )

    async def _replay_txn(
        self, store: Store, me: Party, txn_id: str | None, recipient: Party
    ) -> MessageView:
        """The sender's message with ``txn_id``, which a concurrent retry stored first."""
        assert txn_id is not None  # without one there is nothing to conflict with
        earlier = await store.messages.by_txn(me.id, txn_id)
        assert earlier is not None
        return self._replayed(earlier, me, recipient)

    async def record_call(self, caller: User, callee: User, record: CallRecord) -> MessageView:
        """Append a ``kind="call"`` message to the pair's thread (used by the calls service)."""
        async with self._db.write() as store:
            ctx = await store.conversations.send_context(caller.id, user_id=callee.id)
            now = self._clock.now()
            conv_id, states = await self._thread(store, ctx, caller, callee, now)
            msg = await store.messages.add(
                conversation_id=conv_id,
                sender_id=caller.id,
                recipient_id=callee.id,
                kind="call",
                text="",
                call=record.model_dump_json(),
                txn_id=None,
                now=now,
                message_id=None if ctx is None else ctx.new_message_id,
            )
            assert msg is not None  # without a txn_id there is nothing to conflict with
            view, envelopes = await self._record(store, conv_id, msg, caller, callee, states)
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
            conv_ids = [c.id for c, _, _ in rows]
            unread = await store.conversations.unread_counts(me.id, conv_ids)
            peers = await store.conversations.peers(me.id, conv_ids)
            sharing = await self._sharing(store, me, list(others.values()), "read_receipts")
        result = []
        for conv, state, last in rows:
            other = others[conv.user_high_id if conv.user_low_id == me.id else conv.user_low_id]
            names = {me.id: me.username, other.id: other.username}
            peer = peers.get(conv.id)
            # What message.read and message.delivered would have told me: nothing from
            # a request not yet accepted, a deleted account, or without shared receipts.
            told = peer is not None and peer.state == ACCEPTED and other.id in sharing
            result.append(
                ConversationView(
                    user=user_view(other),
                    last_message=message_view(last, names, viewer_id=me.id) if last else None,
                    is_request=state == REQUEST,
                    state=state,
                    updated_at=conv.last_activity_at,
                    unread=unread.get(conv.id, 0),
                    peer_read_up_to=peer.read_up_to if told and peer else 0,
                    peer_delivered_up_to=peer.delivered_up_to if told and peer else 0,
                )
            )
        return result

    async def mark_read(self, auth: AuthContext, username: str, up_to: int) -> None:
        """``username``'s messages up to ``up_to`` are read: my devices hear of it
        (``conversation.read``), and so do theirs (``message.read``) when we both
        share read receipts, my side of the conversation is accepted (a request's
        sender is not told it was opened), and neither has blocked the other."""
        me = auth.user
        async with self._db.write() as store:
            other, conv, state = await self._membership(store, me, username)
            position = await store.conversations.mark_read(conv.id, me.id, up_to)
            if position is None:
                return  # already read that far (another device said so first)
            events: dict[int, StreamEvent] = {
                me.id: ConversationRead(user=other.username, up_to=position)
            }
            if state == ACCEPTED and await self._shares(store, me, other, "read_receipts"):
                events[other.id] = MessageRead(user=me.username, up_to=position)
            # Both streams in one statement, in id order, as a send locks them: mine and
            # then theirs would deadlock with their send or rename, which takes the
            # lower id first.
            envelopes = await self._stream.append_many(store, events)
        await self._publish(sorted(envelopes.items()))

    async def mark_delivered(self, me: Party, username: str, up_to: int) -> None:
        """``username``'s messages up to ``up_to`` reached one of my devices. Their
        devices hear of it (``message.delivered``) on the same terms as a read receipt:
        both share read receipts, my side is accepted, and neither has blocked the
        other. My own devices are not told: it changes nothing they show."""
        async with self._db.write() as store:
            other, conv, state = await self._membership(store, me, username)
            position = await store.conversations.mark_delivered(conv.id, me.id, up_to)
            if position is None:
                return  # already that far (another device, or a read, said so first)
            if state != ACCEPTED or not await self._shares(store, me, other, "read_receipts"):
                return
            theirs = await self._stream.append(
                store, other.id, MessageDelivered(user=me.username, up_to=position)
            )
        await self._publish([(other.id, theirs)])

    async def _membership(
        self, store: Store, me: Party, username: str
    ) -> tuple[User, Conversation, str]:
        """The other person (a deleted account too: old messages stay), our
        conversation, and my side's state in it; 404 where there is none."""
        other = await find_user(store, username, deleted=True)
        conv = await store.conversations.between(me.id, other.id)
        state = None if conv is None else await store.conversations.member_state(conv.id, me.id)
        if conv is None or state is None:
            raise NotFound("conversation_not_found", "no conversation with this user")
        return other, conv, state

    async def typing(self, me: Party, to: str) -> None:
        """Tell ``to``'s devices that ``me`` is typing to them: never stored, and
        only in an accepted conversation, between people who both share typing
        indicators and have not blocked each other. Whatever stops it, the sender
        is told nothing, so that a block or a setting cannot be probed this way."""
        try:
            await self._limits.count(self._limits.typing, me.id)
        except RateLimited:
            return  # a client that sends too often just isn't heard for a while
        if not is_username(to):
            return
        async with self._db.read() as store:
            other = await store.users.by_username(to)
            if other is None or other.id == me.id or other.suspended:
                return
            conv = await store.conversations.between(me.id, other.id)
            states = {} if conv is None else await store.conversations.member_states(conv.id)
            if states.get(me.id) != ACCEPTED or states.get(other.id) != ACCEPTED:
                return
            if not await self._shares(store, me, other, "typing_indicators"):
                return
        await self._stream.notify(other.id, Typing(user=me.username))

    async def _shares(self, store: Store, me: Party, other: User, setting: str) -> bool:
        """Whether ``me`` and ``other`` exchange this reciprocal signal: both have the
        setting on, neither has blocked the other, and ``other`` still has an account."""
        return other.id in await self._sharing(store, me, [other], setting)

    async def _sharing(self, store: Store, me: Party, others: list[User], setting: str) -> set[int]:
        """Those of ``others`` with whom ``me`` exchanges this reciprocal signal (see
        :meth:`_shares`), in three statements however many there are."""
        live = [o.id for o in others if o.deleted_at is None and o.id != me.id]
        if not live:
            return set()
        blocked = await store.social.blocked_among(me.id, live)
        stored = await store.settings.get_many([me.id, *live])
        if not getattr(stored.get(me.id, DEFAULT_SETTINGS), setting):
            return set()
        return {
            user_id
            for user_id in live
            if user_id not in blocked and getattr(stored.get(user_id, DEFAULT_SETTINGS), setting)
        }

    async def history(
        self, auth: AuthContext, username: str, *, before: int | None, limit: int
    ) -> list[MessageView]:
        me = auth.user
        async with self._db.read() as store:
            other = await find_user(store, username, deleted=True)  # old messages stay
            conv = await store.conversations.between(me.id, other.id)
            if conv is None:
                return []
            page = await store.messages.page(conv.id, viewer_id=me.id, before=before, limit=limit)
        names = {me.id: me.username, other.id: other.username}
        return [message_view(m, names, viewer_id=me.id) for m in page]

    async def _set_state(self, auth: AuthContext, username: str, state: str) -> ConversationView:
        me = auth.user
        async with self._db.write() as store:
            other = await find_user(store, username, deleted=True)
            conv = await store.conversations.between(me.id, other.id)
            if conv is None or await store.conversations.member_state(conv.id, me.id) is None:
                raise NotFound("conversation_not_found", "no conversation with this user")
            await store.conversations.set_member_state(conv.id, me.id, state)
            view = await self._conversation_view(store, conv, me, other, state)
            # Only my own devices hear about it: the sender is not told that I accepted
            # or declined their request.
            env = await self._stream.append(store, me.id, ConversationUpdated(conversation=view))
        await self._stream.publish(me.id, env)
        return view

    async def _conversation_view(
        self, store: Store, conv: Conversation, me: User, other: User, state: str
    ) -> ConversationView:
        last = None
        # As this member sees it: their own withheld messages included, nobody else's.
        viewed = await store.conversations.view_of(conv.id, me.id)
        if viewed is not None:
            conv, _, last_row = viewed
            if last_row is not None:
                names = {me.id: me.username, other.id: other.username}
                last = message_view(last_row, names, viewer_id=me.id)
        return ConversationView(
            user=user_view(other),
            last_message=last,
            is_request=state == REQUEST,
            state=state,
            updated_at=conv.last_activity_at,
        )

    async def _thread(
        self, store: Store, ctx: SendContext | None, sender: Party, recipient: Party, now: datetime
    ) -> tuple[int, dict[int, str | None]]:
        """The pair's conversation id and both member states, creating the
        conversation for a first message."""
        conv_id = ctx.conversation_id if ctx is not None else None
        states: dict[int, str | None] = {}
        if ctx is not None:
            states = {sender.id: ctx.sender_state, recipient.id: ctx.recipient_state}
        if conv_id is None:
            conv_id, created = await store.conversations.open(sender.id, recipient.id, now)
            if not created:  # a concurrent first message committed it: its states are newer
                states.update(await store.conversations.member_states(conv_id))
        return conv_id, states

    async def _record(
        self,
        store: Store,
        conv_id: int,
        msg: StoredMessage,
        sender: Party,
        recipient: Party,
        states: dict[int, str | None],
    ) -> tuple[MessageView, list[tuple[int, Envelope]]]:
        """Move the conversation to the top and put a ``message.new`` event on both
        participants' streams (in this transaction; published after the commit)."""
        # The conversation's last message and both streams' next positions, in one go.
        positions = await store.conversations.touch_and_reserve(
            conv_id, msg.id, msg.created_at, (sender.id, recipient.id)
        )
        events = _message_events(msg, sender, recipient, states)
        envelopes = await self._stream.append_reserved(store, events, positions)
        return events[sender.id].message, sorted(envelopes.items())

    async def _record_alone(
        self,
        store: Store,
        msg: StoredMessage,
        sender: Party,
        recipient: Party,
        states: dict[int, str | None],
    ) -> tuple[MessageView, list[tuple[int, Envelope]]] | None:
        """:meth:`_record` together with the message's own INSERT, as one statement
        committed when it returns (PostgreSQL); None, and nothing stored, when the
        sender's txn_id was taken already."""
        events = _message_events(msg, sender, recipient, states)
        envelopes = await self._stream.append_with_message(store, msg, events)
        if envelopes is None:
            return None
        return events[sender.id].message, sorted(envelopes.items())

    async def _record_withheld(
        self,
        store: Store,
        msg: StoredMessage,
        sender: Party,
        recipient: Party,
        states: dict[int, str | None],
    ) -> tuple[MessageView, list[tuple[int, Envelope]]]:
        """The sender's ``message.new`` event of a withheld message, exactly as
        :meth:`_record` makes it; the recipient gets none."""
        names = {sender.id: sender.username, recipient.id: recipient.username}
        view = message_view(msg, names, viewer_id=sender.id)
        event = MessageNew(message=view, is_request=states.get(sender.id) == REQUEST)
        envelopes = await self._stream.append_many(store, {sender.id: event})
        return view, sorted(envelopes.items())

    def _replayed(
        self, earlier: Message | StoredMessage, me: Party, recipient: Party
    ) -> MessageView:
        if earlier.recipient_id != recipient.id:
            raise Conflict("txn_conflict", "txn_id was already used for another conversation")
        names = {me.id: me.username, recipient.id: recipient.username}
        return message_view(earlier, names, viewer_id=me.id)

    async def _publish(self, envelopes: list[tuple[int, Envelope]]) -> None:
        for user_id, env in envelopes:
            await self._stream.publish(user_id, env)


def _message_events(
    msg: StoredMessage, sender: Party, recipient: Party, states: dict[int, str | None]
) -> dict[int, MessageNew]:
    """The ``message.new`` event of a stored message, as each participant sees it."""
    names = {sender.id: sender.username, recipient.id: recipient.username}
    return {
        user_id: MessageNew(
            message=message_view(msg, names, viewer_id=user_id),
            is_request=states.get(user_id) == REQUEST,
        )
        for user_id in (sender.id, recipient.id)
    }


def _request_rules(
    sender_id: int, recipient_id: int, states: dict[int, str | None], follows: bool
) -> dict[int, str]:
    """The member states a send changes: replying accepts a request (and un-declines);
    the recipient's side becomes a request, or accepted if they follow the sender,
    unless it is already accepted or a pending request."""
    changes = {}
    if states.get(sender_id) != ACCEPTED:
        changes[sender_id] = ACCEPTED
    if states.get(recipient_id) in (None, DECLINED):
        changes[recipient_id] = ACCEPTED if follows else REQUEST
    return changes
