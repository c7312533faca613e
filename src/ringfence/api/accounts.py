"""Accounts and sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ringfence.api.deps import AccountsDep, AuthDep, SocialDep
from ringfence.api.params import ERRORS, UsernamePath
from ringfence.wire.requests import LoginRequest, RegisterRequest
from ringfence.wire.responses import SessionResponse, UserResponse


def client_address(request: Request) -> str | None:
    """The client's address (from X-Forwarded-For only when the proxy is trusted), used
    as a throttling key and nothing else."""
    return request.client.host if request.client else None


def not_stored(response: Response) -> None:
    """A response that carries a token: no browser cache or proxy may keep it."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


router = APIRouter(prefix="/api/v1", tags=["accounts"], responses=ERRORS)


@router.post("/accounts", status_code=201, response_model=SessionResponse)
async def register(
    body: RegisterRequest, request: Request, response: Response, accounts: AccountsDep
) -> SessionResponse:
    user, token = await accounts.register(
        body.username,
        body.password,
        body.display_name,
        client=client_address(request),
        user_agent=request.headers.get("user-agent"),
    )
    not_stored(response)
    return SessionResponse(user=user, token=token)


@router.post("/sessions", status_code=201, response_model=SessionResponse)
async def login(
    body: LoginRequest, request: Request, response: Response, accounts: AccountsDep
) -> SessionResponse:
    user, token = await accounts.login(
        body.username,
        body.password,
        client=client_address(request),
        user_agent=request.headers.get("user-agent"),
    )
    not_stored(response)
    return SessionResponse(user=user, token=token)


@router.delete("/sessions/current", status_code=204, response_class=Response)
async def logout(auth: AuthDep, accounts: AccountsDep) -> Response:
    await accounts.logout(auth)
    return Response(status_code=204)


@router.get("/users/{username}", response_model=UserResponse)
async def get_user(username: UsernamePath, auth: AuthDep, social: SocialDep) -> UserResponse:
    # Through Social: lookups are limited per account (profile_lookups_per_hour).
    return UserResponse(user=await social.profile(auth, username))
