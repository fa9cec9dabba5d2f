"""/api/v1/auth: registration, login, token refresh and logout, relayed to the auth service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from gateway.deps import JSON_BODY, AuthClientDep, CurrentUser
from gateway.openapi import BODY_STATUSES, problem_responses
from gateway.responses import JSONBytesResponse
from gateway.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    User,
    token_pair_payload,
    user_payload,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], dependencies=[JSON_BODY])

# Token answers must never be stored by caches (RFC 6749 section 5.1).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/register",
    status_code=201,
    response_model=User,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 409, 503),
    summary="Create an account",
)
async def register(body: RegisterRequest, auth: AuthClientDep) -> Response:
    """Create a user; 409 when the username (or a look-alike) or the email is taken."""
    user = await auth.register(username=body.username, email=body.email, password=body.password)
    return JSONBytesResponse(
        user_payload(user, with_email=True),
        status_code=201,
        headers={"Location": f"/api/v1/users/{user.username}"},
    )


@router.post(
    "/login",
    response_model=TokenPair,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 429, 503),
    summary="Exchange a username (or email) and password for tokens",
)
async def login(body: LoginRequest, auth: AuthClientDep) -> Response:
    """401 on bad credentials, without telling whether the name or the password was wrong."""
    answer = await auth.login(login=body.username, password=body.password)
    return JSONBytesResponse(token_pair_payload(answer.tokens), headers=_NO_STORE)


@router.post(
    "/refresh",
    response_model=TokenPair,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 503),
    summary="Spend a refresh token for a new token pair",
)
async def refresh(body: RefreshRequest, auth: AuthClientDep) -> Response:
    """The old refresh token is spent; presenting it again is 401 and revokes its whole family."""
    tokens = await auth.refresh(body.refresh_token)
    return JSONBytesResponse(token_pair_payload(tokens), headers=_NO_STORE)


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    responses=problem_responses(*BODY_STATUSES, 401, 503),
    summary="End the session",
)
async def logout(
    user: CurrentUser,
    auth: AuthClientDep,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """Revoke the session: this access token and the refresh family stop working at once."""
    await auth.logout(
        session_id=user.session_id,
        token_id=user.token_id,
        token_expires_at=user.expires_at,
        refresh_token=body.refresh_token if body else None,
    )
    return Response(status_code=204)
