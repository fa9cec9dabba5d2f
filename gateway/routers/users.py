"""/api/v1/users: the caller's own profile and public profiles.

Public profiles are the same for everyone, so they are served from the
response cache (15 minutes: karma may lag that long); the caller's own
profile, with its email, never is.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from common.contract import USERNAME_PATTERN
from gateway.cache import keys
from gateway.cache.dependency import CacheDep
from gateway.cache.document import item_document
from gateway.cache.service import Built
from gateway.deps import AuthClientDep, CurrentUser
from gateway.openapi import problem_responses
from gateway.responses import JSONBytesResponse
from gateway.schemas import User, user_payload
from gateway.schemas.base import nfkc

router = APIRouter(prefix="/api/v1/users", tags=["users"])

_USERNAME = re.compile(USERNAME_PATTERN)


@router.get(
    "/me",
    response_model=User,
    response_class=JSONBytesResponse,
    responses=problem_responses(401, 404, 503),
    summary="The signed-in user, with email",
)
async def me(user: CurrentUser, auth: AuthClientDep) -> Response:
    account = await auth.get_user_by_id(user.user_id, include_email=True)
    return JSONBytesResponse(user_payload(account, with_email=True))


@router.get(
    "/{username}",
    response_model=User,
    response_class=JSONBytesResponse,
    responses=problem_responses(404, 503),
    summary="A public profile (never the email)",
)
async def profile(
    username: Annotated[
        str,
        Path(description="A username; one that cannot exist (wrong length or characters) is 404."),
    ],
    auth: AuthClientDep,
    cache: CacheDep,
) -> Response:
    # A name outside the username rules cannot belong to anyone: answer 404
    # like any other unknown user rather than a 422 about the URL.
    name = nfkc(username)
    if not _USERNAME.fullmatch(name):
        raise HTTPException(404, "No such user.")

    async def build() -> Built:
        account = await auth.get_user_by_username(name)
        return Built(item_document(user_payload(account, with_email=False), personal_id=None), ())

    return await cache.serve(
        keys.profile_entry(name),
        resource="profile",
        ttl_seconds=cache.ttls.profile,
        build=build,
        viewer=None,
    )
