"""Reporting a user."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ringfence.api.deps import AuthDep, ServicesDep
from ringfence.api.schemas import ERRORS, PlainText, Strict, Text

router = APIRouter(prefix="/api/v1/reports", tags=["safety"], responses=ERRORS)


class ReportRequest(Strict):
    username: Text = Field(max_length=64, description="The user being reported.")
    reason: PlainText = Field("", max_length=1000, description="What happened, for the admins.")


class ReportReceipt(BaseModel):
    id: int
    created_at: datetime


class ReportResponse(BaseModel):
    report: ReportReceipt


@router.post("", status_code=201, response_model=ReportResponse)
async def report_user(body: ReportRequest, auth: AuthDep, services: ServicesDep) -> ReportResponse:
    """Report a user to this server's admins. The reported user is not told."""
    view = await services.moderation.report(auth, body.username, body.reason)
    return ReportResponse(report=ReportReceipt(id=view.id, created_at=view.created_at))
