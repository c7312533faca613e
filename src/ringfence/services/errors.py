"""Errors a service raises for a client's mistake or a refused action.

Each carries a stable machine ``code`` that clients can switch on, and a ``detail``
that is safe to show: it never holds another user's private data, a token, or an
address. The API layer maps each class to one HTTP status.

:class:`DatabaseBusy` (503, from the storage layer) is re-exported here so that the API
layer maps every error a service call can raise from one module. It is not a
``ServiceError``: it is no refusal, only "not now".
"""

from __future__ import annotations

from ringfence.storage.database import DatabaseBusy

__all__ = [
    "Conflict",
    "DatabaseBusy",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "RateLimited",
    "ServiceError",
    "Unauthorized",
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
