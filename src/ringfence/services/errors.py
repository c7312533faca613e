"""Errors a service raises for a client's mistake or a refused action.

Each carries a stable machine ``code`` that clients can switch on, and a ``detail``
that is safe to show: it never holds another user's private data, a token, or an
address. The API layer maps each class to one HTTP status.

:class:`DatabaseBusy` (503, from the storage layer) is re-exported here so that the API
layer maps every error a service call can raise from one module. It is not a
``ServiceError``: it is no refusal, only "not now".
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ringfence.storage.database import DatabaseBusy

__all__ = [
    "REDIS_ERRORS",
    "Conflict",
    "DatabaseBusy",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "RateLimited",
    "Refusal",
    "ServiceError",
    "SessionEnded",
    "Unauthorized",
    "refusal_of",
]


class ServiceError(Exception):
    status = 400

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class InvalidInput(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class SessionEnded(Unauthorized):
    """The session a long-lived connection authenticated with has ended (signed out,
    revoked, expired, or its account suspended): the connection must close."""

    def __init__(self) -> None:
        super().__init__("session_ended", "this session has ended; sign in again")


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class RateLimited(ServiceError):
    status = 429

    def __init__(self, code: str, detail: str, retry_after_s: int) -> None:
        super().__init__(code, detail)
        self.retry_after_s = retry_after_s


# Redis out of reach, where several nodes share it: live calls wait until it is back.
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)
REDIS_RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a client is told about an error a service call raised: the HTTP status,
    the machine code, the words, and when to retry (429 and 503)."""

    status: int
    code: str
    detail: str
    retry_after_s: int | None = None


def refusal_of(exc: BaseException) -> Refusal | None:
    """The answer to ``exc``, the same over HTTP (``api/errors.py``) and the socket
    (``message.send``); None for an unexpected error, which is the server's fault."""
    if isinstance(exc, RateLimited):
        return Refusal(exc.status, exc.code, exc.detail, exc.retry_after_s)
    if isinstance(exc, ServiceError):
        return Refusal(exc.status, exc.code, exc.detail)
    if isinstance(exc, DatabaseBusy):
        # Nothing was stored: a retry (with the same txn_id) is safe.
        return Refusal(503, exc.code, exc.detail, exc.retry_after_s)
    if isinstance(exc, REDIS_ERRORS):
        return Refusal(
            503,
            "unavailable",
            "the service is briefly unavailable; try again shortly",
            REDIS_RETRY_AFTER_S,
        )
    return None
