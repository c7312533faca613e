"""The Bus: how services reach connections, on this node or any other.

Services publish an :class:`Envelope` to a topic (``user:<id>`` for every device of a
user, ``device:<id>`` for one connection). Connections subscribe to their topics.
:class:`InMemoryBus` serves a single node; a Redis implementation drops in behind the
same interface for several nodes, and nothing above this module changes.

Handlers are synchronous and must not block: a connection's handler only puts the
envelope on its bounded queue.

Besides the per-user and per-device topics there is one node-wide topic,
:data:`SESSIONS_TOPIC`, that every node subscribes to once: it says which sessions
ended (a logout, a suspension), so that each node drops them from its token cache and
closes their sockets at once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event on its way to connections.

    ``payload`` is the JSON text sent to clients, serialised once however many devices
    receive it. ``pos`` is the per-user stream position of a durable event (None for
    ephemeral ones such as call signaling). ``exclude_device`` skips one connection,
    e.g. the device that answered a call.
    """

    payload: str
    pos: int | None = None
    exclude_device: str | None = None
    # Not an event but an order: close the sockets of this session (it logged out).
    # Nodes of earlier versions publish these on the user's topic; session ends now
    # travel on SESSIONS_TOPIC instead (see services.stream.SessionEnd).
    end_session: int | None = None


Handler = Callable[[Envelope], None]
Subscribers = tuple["Subscription", ...]

# Every node subscribes to this topic once (not per connection).
SESSIONS_TOPIC = "sessions"


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


def device_topic(user_id: int, device_id: str) -> str:
    """One connection's topic. It names the user too, so that knowing (or reusing) a
    device id can never subscribe anyone to another user's device."""
    return f"device:{user_id}:{device_id}"


class Subscription:
    """A handle returned by :meth:`Bus.subscribe`; pass it back to unsubscribe."""

    __slots__ = ("handler", "topic")

    def __init__(self, topic: str, handler: Handler) -> None:
        self.topic = topic
        self.handler = handler


class Bus(abc.ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect to the backend, if any."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the backend, if any."""

    @abc.abstractmethod
    async def publish(self, topic: str, envelope: Envelope) -> None:
        """Deliver to every subscriber of ``topic`` on every node."""

    @abc.abstractmethod
    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        """Start delivering ``topic``; returns once no later publish can be missed."""

    @abc.abstractmethod
    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to this subscription."""

    def on_resync(self, hook: Callable[[], None]) -> None:  # noqa: B027 - optional hook
        """Call ``hook`` whenever deliveries may have been missed, e.g. once a bus that
        lost its backend is connected and subscribed again. Subscribers then read back
        the durable events they missed. A bus that cannot miss anything never calls it.
        """


class InMemoryBus(Bus):
    """The single-node Bus: a dictionary of topics to handlers."""

    def __init__(self) -> None:
        # Tuples, not sets: most topics have one subscriber (a device) or a few (a
        # user's devices), and a 1-tuple is a quarter of an empty set's size.
        self._topics: dict[str, Subscribers] = {}

    async def publish(self, topic: str, envelope: Envelope) -> None:
        dispatch(self._topics.get(topic), envelope)

    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        sub = Subscription(topic, handler)
        self._topics[topic] = (*self._topics.get(topic, ()), sub)
        return sub

    async def unsubscribe(self, subscription: Subscription) -> None:
        remaining = without(self._topics.get(subscription.topic), subscription)
        if remaining is None:
            return
        if remaining:
            self._topics[subscription.topic] = remaining
        else:
            del self._topics[subscription.topic]

    def topic_count(self) -> int:
        return len(self._topics)


def without(subscriptions: Subscribers | None, subscription: Subscription) -> Subscribers | None:
    """``subscriptions`` less ``subscription``; None if it was not among them."""
    if subscriptions is None or subscription not in subscriptions:
        return None
    return tuple(sub for sub in subscriptions if sub is not subscription)


def dispatch(subscriptions: Subscribers | None, envelope: Envelope) -> None:
    """Hand an envelope to local subscribers; one failing handler never stops the rest.
    The tuple is immutable, so a handler that (un)subscribes cannot disturb the loop."""
    if not subscriptions:
        return
    for sub in subscriptions:
        try:
            sub.handler(envelope)
        except Exception:
            log.exception("bus handler for %s failed", sub.topic)
