"""Path and query parameters shared by the discussion routes, checked at the edge.

Ids and names in paths are looked up, not validated: a value that cannot
name anything (not a UUID, not a possible community name or username) is
answered like any unknown one, 404, without asking a service. Paging is
`limit` (1..100, default 25; 422 otherwise) and an opaque `cursor`, which
services sign and check; one that is too long to be ours is refused here
as the same 400 a tampered one gets from the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query

from common.contract import (
    COMMUNITY_NAME_PATTERN,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    PAGE_LIMIT_MIN,
    USERNAME_PATTERN,
)
from common.cursors import MAX_CURSOR_LENGTH
from common.errors import InvalidArgument
from common.ids import parse_uuid
from gateway.schemas.base import nfkc

_COMMUNITY_NAME = re.compile(COMMUNITY_NAME_PATTERN)
_USERNAME = re.compile(USERNAME_PATTERN)


def resource_id(value: str, noun: str) -> str:
    """The canonical form of a UUID from a path, or 404 for a value that is not one."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise HTTPException(404, f"No such {noun}.")
    return str(parsed)


def community_name(value: str) -> str:
    """A community name from a path; one that breaks the naming rules cannot exist (404)."""
    if not _COMMUNITY_NAME.fullmatch(value):
        raise HTTPException(404, "No such community.")
    return value


def username(value: str) -> str:
    """A username from a path, NFKC-normalised as they are stored; impossible ones are 404."""
    name = nfkc(value)
    if not isinstance(name, str) or not _USERNAME.fullmatch(name):
        raise HTTPException(404, "No such user.")
    return name


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int
    token: str


async def paging(
    limit: Annotated[
        int,
        Query(
            ge=PAGE_LIMIT_MIN,
            le=PAGE_LIMIT_MAX,
            description=f"Items per page, {PAGE_LIMIT_MIN} to {PAGE_LIMIT_MAX}.",
        ),
    ] = PAGE_LIMIT_DEFAULT,
    cursor: Annotated[
        str | None,
        Query(description="`next_cursor` of the previous page; omit for the first page."),
    ] = None,
) -> Paging:
    token = cursor or ""
    if len(token) > MAX_CURSOR_LENGTH:
        raise InvalidArgument.for_field("cursor", "invalid cursor")
    return Paging(limit=limit, token=token)


PagingDep = Annotated[Paging, Depends(paging)]

# Path parameters, documented once.
CommunityNameParam = Annotated[
    str, Path(description="A community name; one that cannot exist is 404.", examples=["python"])
]
PostIdParam = Annotated[str, Path(description="A post id; one that is not a UUID is 404.")]
CommentIdParam = Annotated[str, Path(description="A comment id; one that is not a UUID is 404.")]
UsernameParam = Annotated[
    str, Path(description="A username; one that cannot exist is 404.", examples=["alice"])
]
