"""Direct messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ringfence.api.deps import AuthDep, MessagingDep
from ringfence.api.params import ERRORS, UsernamePath
from ringfence.wire.requests import MarkDeliveredRequest, MarkReadRequest, SendMessageRequest
from ringfence.wire.responses import (
    ConversationResponse,
    ConversationsResponse,
    MessageResponse,
    MessagesResponse,
)

router = APIRouter(prefix="/api/v1/conversations", tags=["messages"], responses=ERRORS)


@router.get("", response_model=ConversationsResponse)
async def conversations(
    auth: AuthDep,
    messaging: MessagingDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> ConversationsResponse:
    return ConversationsResponse(conversations=await messaging.conversations(auth, limit=limit))


@router.post("/{username}/messages", status_code=201, response_model=MessageResponse)
async def send(
    username: str, body: SendMessageRequest, auth: AuthDep, messaging: MessagingDep
) -> MessageResponse:
    message = await messaging.send(auth.user, username, body.text, body.txn_id)
    return MessageResponse(message=message)


@router.get("/{username}/messages", response_model=MessagesResponse)
async def history(
    username: UsernamePath,
    auth: AuthDep,
    messaging: MessagingDep,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="Message id cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> MessagesResponse:
    messages = await messaging.history(auth, username, before=before, limit=limit)
    return MessagesResponse(messages=messages)


@router.post("/{username}/accept", response_model=ConversationResponse)
async def accept(
    username: UsernamePath, auth: AuthDep, messaging: MessagingDep
) -> ConversationResponse:
    return ConversationResponse(conversation=await messaging.accept(auth, username))


@router.post("/{username}/decline", response_model=ConversationResponse)
async def decline(
    username: UsernamePath, auth: AuthDep, messaging: MessagingDep
) -> ConversationResponse:
    return ConversationResponse(conversation=await messaging.decline(auth, username))


@router.post("/{username}/read", status_code=204, response_class=Response)
async def mark_read(
    username: UsernamePath, body: MarkReadRequest, auth: AuthDep, messaging: MessagingDep
) -> Response:
    """Mark this person's messages up to ``up_to`` as read, on all of your devices."""
    await messaging.mark_read(auth, username, body.up_to)
    return Response(status_code=204)


@router.post("/{username}/delivered", status_code=204, response_class=Response)
async def mark_delivered(
    username: UsernamePath, body: MarkDeliveredRequest, auth: AuthDep, messaging: MessagingDep
) -> Response:
    """This person's messages up to ``up_to`` reached this device. They see "Delivered"
    where you both share read receipts. A connected client can say the same with a
    ``message.delivered`` frame on its socket instead."""
    await messaging.mark_delivered(auth.user, username, body.up_to)
    return Response(status_code=204)
