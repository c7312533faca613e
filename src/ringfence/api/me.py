"""The signed-in user: profile, settings, follows and blocks."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ringfence.api.deps import AuthDep, ServicesDep
from ringfence.api.schemas import (
    ERRORS,
    MeResponse,
    SettingsPatch,
    SettingsResponse,
    UsernamePath,
    UsersResponse,
)
from ringfence.services.views import UserView

router = APIRouter(prefix="/api/v1/me", tags=["me"], responses=ERRORS)


@router.get("", response_model=MeResponse)
async def me(auth: AuthDep, services: ServicesDep) -> MeResponse:
    settings = await services.user_settings.get(auth)
    return MeResponse(user=UserView.of(auth.user), settings=settings)


@router.patch("/settings", response_model=SettingsResponse)
async def update_settings(
    body: SettingsPatch, auth: AuthDep, services: ServicesDep
) -> SettingsResponse:
    changes = body.model_dump(exclude_unset=True)
    return SettingsResponse(settings=await services.user_settings.update(auth, changes))


@router.get("/following", response_model=UsersResponse)
async def following(auth: AuthDep, services: ServicesDep) -> UsersResponse:
    return UsersResponse(users=await services.social.following(auth))


@router.get("/followers", response_model=UsersResponse)
async def followers(auth: AuthDep, services: ServicesDep) -> UsersResponse:
    return UsersResponse(users=await services.social.followers(auth))


@router.put("/following/{username}", status_code=204, response_class=Response)
async def follow(username: UsernamePath, auth: AuthDep, services: ServicesDep) -> Response:
    await services.social.follow(auth, username)
    return Response(status_code=204)


@router.delete("/following/{username}", status_code=204, response_class=Response)
async def unfollow(username: UsernamePath, auth: AuthDep, services: ServicesDep) -> Response:
    await services.social.unfollow(auth, username)
    return Response(status_code=204)


@router.get("/blocked", response_model=UsersResponse)
async def blocked(auth: AuthDep, services: ServicesDep) -> UsersResponse:
    return UsersResponse(users=await services.social.blocked(auth))


@router.put("/blocked/{username}", status_code=204, response_class=Response)
async def block(username: UsernamePath, auth: AuthDep, services: ServicesDep) -> Response:
    await services.social.block(auth, username)
    return Response(status_code=204)


@router.delete("/blocked/{username}", status_code=204, response_class=Response)
async def unblock(username: UsernamePath, auth: AuthDep, services: ServicesDep) -> Response:
    await services.social.unblock(auth, username)
    return Response(status_code=204)
