"""The signed-in user: profile, password, sessions, settings, follows and blocks, and
deleting the account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from ringfence.api.accounts import client_address
from ringfence.api.deps import AccountsDep, AuthDep, ExportDep, SocialDep, UserSettingsDep
from ringfence.api.params import ERRORS, UsernamePath
from ringfence.services.views import user_view
from ringfence.wire.requests import (
    ChangePasswordRequest,
    DeleteAccountRequest,
    RenameRequest,
    SettingsPatch,
)
from ringfence.wire.responses import (
    MeResponse,
    SessionsResponse,
    SettingsResponse,
    UserResponse,
    UsersResponse,
)

router = APIRouter(prefix="/api/v1/me", tags=["me"], responses=ERRORS)


@router.get("", response_model=MeResponse)
async def me(auth: AuthDep, user_settings: UserSettingsDep) -> MeResponse:
    settings = await user_settings.get(auth)
    return MeResponse(user=user_view(auth.user), settings=settings)


@router.patch("", response_model=UserResponse)
async def rename(body: RenameRequest, auth: AuthDep, accounts: AccountsDep) -> UserResponse:
    """Change your display name; everyone you have a conversation with sees it."""
    return UserResponse(user=await accounts.rename(auth, body.display_name))


@router.delete("", status_code=204, response_class=Response)
async def delete_account(
    body: DeleteAccountRequest, request: Request, auth: AuthDep, accounts: AccountsDep
) -> Response:
    """Delete your account for good. Every session is signed out at once; settings,
    follows and blocks are deleted. Messages you sent stay with the people who got
    them, shown as from "Deleted account". Your username stays taken for
    ``deleted_username_hold_days``. A wrong password is 403 (and counts as a failed
    sign-in)."""
    await accounts.delete_account(auth, body.password, client=client_address(request))
    return Response(status_code=204)


@router.post("/password", status_code=204, response_class=Response)
async def change_password(
    body: ChangePasswordRequest, request: Request, auth: AuthDep, accounts: AccountsDep
) -> Response:
    """Change your password; every other session is signed out. A wrong current
    password is 403 (and counts as a failed sign-in)."""
    await accounts.change_password(
        auth, body.current_password, body.new_password, client=client_address(request)
    )
    return Response(status_code=204)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}}, "description": "Your data"}},
)
async def export(auth: AuthDep, export: ExportDep) -> StreamingResponse:
    """Your account, settings, follows, blocks and every message you can see, as one
    JSON document (streamed). A few a day."""
    chunks = await export.start(auth)
    return StreamingResponse(
        chunks,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="ringfence-{auth.user.username}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/sessions", response_model=SessionsResponse)
async def sessions(auth: AuthDep, accounts: AccountsDep) -> SessionsResponse:
    """Your signed-in devices. No addresses are kept or shown."""
    return SessionsResponse(sessions=await accounts.sessions(auth))


@router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
async def end_session(
    session_id: Annotated[int, Path(ge=1, le=2**62)], auth: AuthDep, accounts: AccountsDep
) -> Response:
    """Sign that session out at once, closing its sockets everywhere."""
    await accounts.end_session(auth, session_id)
    return Response(status_code=204)


@router.patch("/settings", response_model=SettingsResponse)
async def update_settings(
    body: SettingsPatch, auth: AuthDep, user_settings: UserSettingsDep
) -> SettingsResponse:
    changes = body.model_dump(exclude_unset=True)
    return SettingsResponse(settings=await user_settings.update(auth, changes))


@router.get("/following", response_model=UsersResponse)
async def following(auth: AuthDep, social: SocialDep) -> UsersResponse:
    return UsersResponse(users=await social.following(auth))


@router.get("/followers", response_model=UsersResponse)
async def followers(auth: AuthDep, social: SocialDep) -> UsersResponse:
    return UsersResponse(users=await social.followers(auth))


@router.put("/following/{username}", status_code=204, response_class=Response)
async def follow(username: UsernamePath, auth: AuthDep, social: SocialDep) -> Response:
    await social.follow(auth, username)
    return Response(status_code=204)


@router.delete("/following/{username}", status_code=204, response_class=Response)
async def unfollow(username: UsernamePath, auth: AuthDep, social: SocialDep) -> Response:
    await social.unfollow(auth, username)
    return Response(status_code=204)


@router.get("/blocked", response_model=UsersResponse)
async def blocked(auth: AuthDep, social: SocialDep) -> UsersResponse:
    return UsersResponse(users=await social.blocked(auth))


@router.put("/blocked/{username}", status_code=204, response_class=Response)
async def block(username: UsernamePath, auth: AuthDep, social: SocialDep) -> Response:
    await social.block(auth, username)
    return Response(status_code=204)


@router.delete("/blocked/{username}", status_code=204, response_class=Response)
async def unblock(username: UsernamePath, auth: AuthDep, social: SocialDep) -> Response:
    await social.unblock(auth, username)
    return Response(status_code=204)
