"""Routes name the services they use (issue 13): no HTTP route takes the container of
every service, so what a route can reach is what its signature says."""

from __future__ import annotations

import inspect
import typing

from fastapi.routing import APIRoute

from ringfence.api import accounts, calls, conversations, me, push, reports
from ringfence.services.container import Services


def test_no_route_takes_the_service_container() -> None:
    routes = [
        route
        for module in (accounts, calls, conversations, me, push, reports)
        for route in module.router.routes
        if isinstance(route, APIRoute)
    ]
    assert len(routes) > 30
    for route in routes:
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        for name in inspect.signature(route.endpoint).parameters:
            annotation = hints.get(name)
            bare = typing.get_args(annotation)[0] if typing.get_args(annotation) else annotation
            assert bare is not Services, f"{route.path} takes the whole container as {name!r}"
