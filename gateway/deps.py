"""Request dependencies: the app's resources, the caller's identity, JSON-only bodies.

Use them as annotations:

    async def me(user: CurrentUser, auth: AuthClientDep) -> Response: ...

`CurrentUser` demands a valid access token; `OptionalUser` lets anonymous
callers through but still refuses a bad token, so a client with an expired
token learns it instead of silently seeing the anonymous view.
"""

from __future__ import annotations

from typing import Annotated, TypeVar, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBearer

from common.context import caller_id_var
from common.errors import Unauthenticated
from common.tokens import AccessClaims
from gateway.clients import (
    AuthClient,
    Clients,
    CommentsClient,
    CommunitiesClient,
    PostsClient,
    SummarizerClient,
    VotesClient,
)
from gateway.identity import MAX_TOKEN_LENGTH, remember, remembered
from gateway.metrics import REVOCATION_FAIL_OPEN
from gateway.openapi import OPTIONAL_BEARER
from gateway.problems import BEARER_CHALLENGE, INVALID_TOKEN_CHALLENGE, RETRY_AFTER_SECONDS
from gateway.redis_guard import RedisUnavailable
from gateway.resources import Resources

# Declares the scheme in OpenAPI (the padlock in /docs). The header itself is
# parsed below, because HTTPBearer cannot tell "no header" from "not Bearer".
_bearer_scheme = HTTPBearer(auto_error=False, description="An access token from /auth/login.")
# The same header where anonymous callers are served too: install_openapi
# documents it as optional (`security: [{}, {"HTTPBearer": []}]`).
_optional_bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name=OPTIONAL_BEARER, description="An optional access token."
)


async def get_resources(request: Request) -> Resources:
    """The lifespan's resources (AttributeError if it has not run: a wiring bug)."""
    return cast("Resources", request.app.state.resources)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_auth_client(resources: ResourcesDep) -> AuthClient:
    return resources.clients.auth


AuthClientDep = Annotated[AuthClient, Depends(get_auth_client)]


async def get_clients(resources: ResourcesDep) -> Clients:
    return resources.clients


ClientsDep = Annotated[Clients, Depends(get_clients)]

_C = TypeVar("_C")


def running(client: _C | None, name: str) -> _C:
    """The client, or 503 while its service is not part of the deployment yet."""
    if client is None:
        raise HTTPException(
            503,
            f"The {name} service is not available in this deployment.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return client


async def get_communities_client(resources: ResourcesDep) -> CommunitiesClient:
    return running(resources.clients.communities, "communities")


async def get_posts_client(resources: ResourcesDep) -> PostsClient:
    return running(resources.clients.posts, "posts")


async def get_comments_client(resources: ResourcesDep) -> CommentsClient:
    return running(resources.clients.comments, "comments")


async def get_votes_client(resources: ResourcesDep) -> VotesClient:
    return running(resources.clients.votes, "votes")


async def get_summarizer_client(resources: ResourcesDep) -> SummarizerClient:
    return running(resources.clients.summarizer, "summarizer")


CommunitiesClientDep = Annotated[CommunitiesClient, Depends(get_communities_client)]
PostsClientDep = Annotated[PostsClient, Depends(get_posts_client)]
CommentsClientDep = Annotated[CommentsClient, Depends(get_comments_client)]
VotesClientDep = Annotated[VotesClient, Depends(get_votes_client)]
SummarizerClientDep = Annotated[SummarizerClient, Depends(get_summarizer_client)]


def _unauthorized(detail: str, *, invalid_token: bool) -> HTTPException:
    challenge = INVALID_TOKEN_CHALLENGE if invalid_token else BEARER_CHALLENGE
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def _bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`; None when there is no header at all."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Authorization must be `Bearer <access token>`.", invalid_token=True)
    if len(token) > MAX_TOKEN_LENGTH:
        raise _unauthorized("The access token is too long.", invalid_token=True)
    return token


async def _is_revoked(resources: Resources, claims: AccessClaims) -> bool:
    """Ask the revocation list; fail open (counted, logged) when Redis cannot answer.

    Failing closed would turn a Redis outage into a full outage of every
    signed-in feature; the exposure is bounded by the 15-minute token life.
    The guard bounds the wait (the Redis timeout) and, once Redis keeps
    failing, skips it altogether until its breaker lets a trial through.
    """
    try:
        return await resources.redis_guard.run(
            lambda: resources.revocation.is_revoked(claims.token_id, claims.session_id)
        )
    except RedisUnavailable as error:
        REVOCATION_FAIL_OPEN.inc()
        resources.revocation_log.report(error)
        return False


async def _authenticate(request: Request, resources: Resources) -> AccessClaims | None:
    token = _bearer_token(request)
    if token is None:
        return None
    # The rate limiter may have verified this very token already.
    claims = remembered(request.scope, token)
    if claims is None:
        try:
            claims = await resources.verifier.verify(token)
        except Unauthenticated as error:
            raise _unauthorized(error.message, invalid_token=True) from None
        remember(request.scope, token, claims)
    if await _is_revoked(resources, claims):
        raise _unauthorized("The access token has been revoked.", invalid_token=True)
    # From here on, calls to services carry the verified caller (x-agora-user-id).
    caller_id_var.set(claims.user_id)
    return claims


async def optional_user(
    request: Request,
    resources: ResourcesDep,
    _scheme: Annotated[object, Depends(_optional_bearer_scheme)],
) -> AccessClaims | None:
    return await _authenticate(request, resources)


async def current_user(
    request: Request,
    resources: ResourcesDep,
    _scheme: Annotated[object, Depends(_bearer_scheme)],
) -> AccessClaims:
    claims = await _authenticate(request, resources)
    if claims is None:
        raise _unauthorized("This endpoint needs an access token.", invalid_token=False)
    return claims


CurrentUser = Annotated[AccessClaims, Depends(current_user)]
OptionalUser = Annotated[AccessClaims | None, Depends(optional_user)]


def _is_json(content_type: str) -> bool:
    """application/json or application/<anything>+json, parameters ignored."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def require_json_body(request: Request) -> None:
    """415 unless a request that has a body declares it as JSON.

    Dependencies run before the body is validated, so a form post gets 415
    rather than a confusing 422 about the body's type. Requests without a body
    pass, so optional bodies (logout) stay optional.
    """
    length = request.headers.get("content-length", "").strip()
    has_body = "transfer-encoding" in request.headers or length not in ("", "0")
    content_type = request.headers.get("content-type")
    if has_body and (content_type is None or not _is_json(content_type)):
        raise HTTPException(415, "The body must be JSON, sent as `Content-Type: application/json`.")


JSON_BODY = Depends(require_json_body)
