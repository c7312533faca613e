"""What every router shares that is FastAPI's own: the error responses each route
documents, and the username path parameter. The bodies themselves are in
:mod:`ringfence.wire.requests` and :mod:`ringfence.wire.responses`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from ringfence.wire.responses import ErrorResponse

# Not constrained: a name that cannot exist is simply not found (404), like any other.
UsernamePath = Annotated[str, Path(description="A username.")]

# 408 and 413: any request's body may be too slow or too large (api/limits.py).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 408, 409, 413, 422, 429)
}
