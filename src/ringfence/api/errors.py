"""Every error leaves the server as ``{"error": code, "detail": text}``.

A client's mistake never becomes a 500: validation problems name the field, unknown
routes and methods get JSON too. A database that is momentarily overloaded or out of
reach answers 503 with ``Retry-After`` (nothing was stored; a retry with the same
``txn_id`` is safe). So does Redis, when several nodes share it and it is out of
reach: live calls cannot be started or answered until it is back (messages still are;
they live in the database). Only a genuine server fault answers 500, with a generic body (the
traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ringfence.services.errors import REDIS_ERRORS, DatabaseBusy, ServiceError, refusal_of
from ringfence.wire.problems import describe_errors

log = logging.getLogger(__name__)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    431: "headers_too_large",
    503: "unavailable",
}


def error_body(code: str, detail: str, **extra: object) -> dict[str, object]:
    return {"error": code, "detail": detail, **extra}


def error_code(status: int) -> str:
    """The machine code of an error answered only by its HTTP status."""
    return _STATUS_CODES.get(status, "error")


def describe_validation(exc: RequestValidationError) -> tuple[str, list[str]]:
    """The detail and field names of a 422 (see :func:`describe_errors`)."""
    return describe_errors(exc.errors())


def _refused(exc: Exception) -> JSONResponse:
    refusal = refusal_of(exc)
    assert refusal is not None  # registered only for the errors it maps
    headers = {}
    if refusal.retry_after_s is not None:
        headers["Retry-After"] = str(refusal.retry_after_s)
    return JSONResponse(error_body(refusal.code, refusal.detail), refusal.status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return _refused(exc)

    @app.exception_handler(DatabaseBusy)
    async def _database_busy(_request: Request, exc: DatabaseBusy) -> JSONResponse:
        # Already logged, once, where it was classified (without SQL or parameters).
        return _refused(exc)

    async def _redis_unreachable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "%s %s: Redis unreachable (%s); answered 503",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return _refused(exc)

    for redis_error in REDIS_ERRORS:
        app.add_exception_handler(redis_error, _redis_unreachable)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, fields = describe_validation(exc)
        return JSONResponse(error_body("invalid_request", detail, fields=fields), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = error_code(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else code
        return JSONResponse(
            error_body(code, detail), exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "internal error on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=exc,
        )
        return JSONResponse(error_body("internal", "internal server error"), 500)
