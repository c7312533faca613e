"""Starting calls and reading call history. Signaling itself runs on the WebSocket."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from ringfence.api.deps import AuthDep, CallsDep
from ringfence.api.params import ERRORS
from ringfence.wire.requests import StartCallRequest
from ringfence.wire.responses import CallHistoryItem, CallHistoryResponse, StartCallResponse

router = APIRouter(prefix="/api/v1/calls", tags=["calls"], responses=ERRORS)


@router.post("", status_code=201, response_model=StartCallResponse)
async def start_call(body: StartCallRequest, auth: AuthDep, calls: CallsDep) -> StartCallResponse:
    started = await calls.start(auth, body.to, body.media)
    return StartCallResponse.model_validate(started, from_attributes=True)


@router.get("", response_model=CallHistoryResponse)
async def call_history(
    auth: AuthDep,
    calls: CallsDep,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="Message id cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> CallHistoryResponse:
    entries = await calls.history(auth, before=before, limit=limit)
    return CallHistoryResponse(
        calls=[CallHistoryItem.model_validate(e, from_attributes=True) for e in entries]
    )


@router.post("/{call_id}/decline", status_code=204, response_class=Response)
async def decline_call(
    call_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")],
    auth: AuthDep,
    calls: CallsDep,
) -> Response:
    """Decline a call ringing for me, as ``call.reject`` does over the socket: for a
    notification's Decline button, when no page of mine is open. 404 for a call that
    is not mine (or no longer exists), 409 for one no longer ringing."""
    await calls.decline(auth, call_id)
    return Response(status_code=204)
