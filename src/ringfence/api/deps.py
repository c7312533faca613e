"""Request dependencies: each service a route uses, and the authenticated caller.

A route names the services it calls (``messaging: MessagingDep``), never the whole
container: what it can reach is what its signature says. The container itself is
read only here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ringfence.services.accounts import Accounts, AuthContext
from ringfence.services.calls import Calls
from ringfence.services.container import Services
from ringfence.services.export import AccountExport
from ringfence.services.messaging import Messaging
from ringfence.services.moderation import Moderation
from ringfence.services.push import Push
from ringfence.services.settings import SettingsService
from ringfence.services.social import Social

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /api/v1/sessions")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_ServicesDep = Annotated[Services, Depends(get_services)]


def get_accounts(services: _ServicesDep) -> Accounts:
    return services.accounts


def get_social(services: _ServicesDep) -> Social:
    return services.social


def get_messaging(services: _ServicesDep) -> Messaging:
    return services.messaging


def get_export(services: _ServicesDep) -> AccountExport:
    return services.export


def get_user_settings(services: _ServicesDep) -> SettingsService:
    return services.user_settings


def get_moderation(services: _ServicesDep) -> Moderation:
    return services.moderation


def get_calls(services: _ServicesDep) -> Calls:
    return services.calls


def get_push(services: _ServicesDep) -> Push:
    return services.push


AccountsDep = Annotated[Accounts, Depends(get_accounts)]
SocialDep = Annotated[Social, Depends(get_social)]
MessagingDep = Annotated[Messaging, Depends(get_messaging)]
ExportDep = Annotated[AccountExport, Depends(get_export)]
UserSettingsDep = Annotated[SettingsService, Depends(get_user_settings)]
ModerationDep = Annotated[Moderation, Depends(get_moderation)]
CallsDep = Annotated[Calls, Depends(get_calls)]
PushDep = Annotated[Push, Depends(get_push)]


async def get_auth(
    accounts: AccountsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthContext:
    token = credentials.credentials if credentials is not None else None
    return await accounts.authenticate(token)


AuthDep = Annotated[AuthContext, Depends(get_auth)]
