"""Reporting a user."""

from __future__ import annotations

from fastapi import APIRouter

from ringfence.api.deps import AuthDep, ModerationDep
from ringfence.api.params import ERRORS
from ringfence.wire.requests import ReportRequest
from ringfence.wire.responses import ReportReceipt, ReportResponse

router = APIRouter(prefix="/api/v1/reports", tags=["safety"], responses=ERRORS)


@router.post("", status_code=201, response_model=ReportResponse)
async def report_user(
    body: ReportRequest, auth: AuthDep, moderation: ModerationDep
) -> ReportResponse:
    """Report a user to this server's admins. The reported user is not told."""
    view = await moderation.report(auth, body.username, body.reason)
    return ReportResponse(report=ReportReceipt(id=view.id, created_at=view.created_at))
