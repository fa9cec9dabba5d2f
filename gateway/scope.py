"""What the gateway reads back from an ASGI scope after routing."""

from __future__ import annotations

from starlette.types import Scope

UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/users/{username}`), never the raw path.

    Logs and metric labels use it, so user data in URLs stays out of both and
    the number of series stays bounded. FastAPI's routes put themselves in the
    scope; plain Starlette routes (the OpenAPI document, /docs) only leave
    their endpoint, so look that up.
    """
    route = scope.get("route")
    if route is None and (endpoint := scope.get("endpoint")) is not None:
        router = getattr(scope.get("app"), "router", None)
        for candidate in getattr(router, "routes", ()):
            if getattr(candidate, "endpoint", None) is endpoint:
                route = candidate
                break
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE
