"""Web Push: the server's public key, a browser's subscriptions, and the one fact a
woken service worker needs about a ringing call (who is calling)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ringfence.api.deps import AuthDep, PushDep
from ringfence.api.params import ERRORS
from ringfence.wire.requests import SubscribeRequest
from ringfence.wire.responses import (
    PushConfigResponse,
    RingingCallResponse,
    SubscribeResponse,
    SubscriptionsResponse,
)

router = APIRouter(prefix="/api/v1", tags=["push"], responses=ERRORS)


@router.get("/push/config", response_model=PushConfigResponse)
async def push_config(push: PushDep) -> PushConfigResponse:
    return PushConfigResponse(vapid_public_key=push.key.public_key)


@router.post("/me/push-subscriptions", status_code=201, response_model=SubscribeResponse)
async def subscribe(body: SubscribeRequest, auth: AuthDep, push: PushDep) -> SubscribeResponse:
    """Register this browser for pushes, for as long as this session lasts. The same
    endpoint again updates it (201 with the same id). 422 for an endpoint this server
    will not send to (not https://, or not on a public address)."""
    sub_id = await push.subscribe(auth, body.endpoint, body.keys.p256dh, body.keys.auth)
    return SubscribeResponse(id=sub_id)


@router.get("/me/push-subscriptions", response_model=SubscriptionsResponse)
async def subscriptions(auth: AuthDep, push: PushDep) -> SubscriptionsResponse:
    """My subscriptions, each with its push service's host, never its endpoint URL."""
    return SubscriptionsResponse(subscriptions=await push.subscriptions(auth))


@router.delete("/me/push-subscriptions/{sub_id}", status_code=204, response_class=Response)
async def unsubscribe(
    sub_id: Annotated[int, Path(ge=1, le=2**62)], auth: AuthDep, push: PushDep
) -> Response:
    await push.unsubscribe(auth, sub_id)
    return Response(status_code=204)


@router.get("/push/calls/{call_id}", response_model=RingingCallResponse)
async def ringing_call(
    call_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")],
    auth: AuthDep,
    push: PushDep,
) -> RingingCallResponse:
    """Who is calling me on this call: for the notification of a pushed
    ``call.incoming``. 404 unless it is ringing for me now."""
    return RingingCallResponse(caller=await push.ringing_caller(auth, call_id))
