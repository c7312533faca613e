"""Request dependencies: the service container and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ringfence.services.accounts import AuthContext
from ringfence.services.container import Services

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /api/v1/sessions")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_auth(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthContext:
    token = credentials.credentials if credentials is not None else None
    return await services.accounts.authenticate(token)


AuthDep = Annotated[AuthContext, Depends(get_auth)]
