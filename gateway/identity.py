"""The caller's verified access token, verified at most once per request.

The rate limiter needs to know who is calling before any route runs (a user's
limit, or the client IP's), and the routes' own dependencies (gateway.deps)
need it again. The limiter's look is lenient: no token, a malformed one or an
invalid one all mean "count this request by its IP", and the route then
answers 401 as it always did. What it verified is remembered in the request's
state, keyed by the token, so the route's dependency does not verify the same
signature twice. Revocation is not looked at here: that stays with the route,
which refuses revoked tokens; for counting, a revoked token's user is who it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Scope

from common.errors import Unauthenticated, Unavailable
from common.tokens import AccessClaims

if TYPE_CHECKING:
    from gateway.resources import Resources

_AUTHORIZATION = b"authorization"
_STATE_KEY = "agora.verified_token"
MAX_TOKEN_LENGTH = 4096


def bearer_token(scope: Scope) -> str | None:
    """The token of a well-formed `Authorization: Bearer <token>` header, else None."""
    for key, value in scope["headers"]:
        if key == _AUTHORIZATION:
            scheme, _, token = str(value.decode("latin-1")).strip().partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token and len(token) <= MAX_TOKEN_LENGTH:
                return token
            return None
    return None


def remember(scope: Scope, token: str, claims: AccessClaims) -> None:
    scope.setdefault("state", {})[_STATE_KEY] = (token, claims)


def remembered(scope: Scope, token: str) -> AccessClaims | None:
    """Claims verified earlier in this request for exactly this token."""
    entry = scope.get("state", {}).get(_STATE_KEY)
    if entry is not None and entry[0] == token:
        claims: AccessClaims = entry[1]
        return claims
    return None


async def peek_identity(scope: Scope, resources: Resources) -> AccessClaims | None:
    """The verified claims of the request's token, or None; never raises for a bad token."""
    token = bearer_token(scope)
    if token is None:
        return None
    if (claims := remembered(scope, token)) is not None:
        return claims
    try:
        claims = await resources.verifier.verify(token)
    except (Unauthenticated, Unavailable):
        return None
    remember(scope, token, claims)
    return claims
