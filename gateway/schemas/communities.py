"""Bodies of /api/v1/communities and the public `Community` shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from agora.communities.v1 import communities_pb2
from pydantic import Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from common.contract import (
    COMMUNITY_DESCRIPTION_MAX,
    COMMUNITY_NAME_PATTERN,
    COMMUNITY_TITLE_MAX,
)
from common.wire import timestamp_json
from gateway.schemas.base import RequestModel, ResponseModel, omit_default
from gateway.schemas.paging import NEXT_CURSOR

# The communities service's limits on rules and ban reasons.
RULES_MAX = 15
RULE_TITLE_MAX = 100
RULE_DESCRIPTION_MAX = 500
BAN_REASON_MAX = 500

CommunityName = Annotated[str, StringConstraints(pattern=COMMUNITY_NAME_PATTERN)]
CommunityTitle = Annotated[str, StringConstraints(min_length=1, max_length=COMMUNITY_TITLE_MAX)]
Description = Annotated[str, StringConstraints(max_length=COMMUNITY_DESCRIPTION_MAX)]


class CommunityRule(ResponseModel):
    """One rule of a community, shown to everyone who posts there."""

    title: str = Field(examples=["Be kind"])
    description: str = Field(default="", examples=["No personal attacks."])


class CommunityRuleIn(RequestModel):
    title: Annotated[str, StringConstraints(min_length=1, max_length=RULE_TITLE_MAX)] = Field(
        examples=["Be kind"]
    )
    description: Annotated[str, StringConstraints(max_length=RULE_DESCRIPTION_MAX)] = ""


Rules = Annotated[list[CommunityRuleIn], Field(max_length=RULES_MAX)]


class CreateCommunityRequest(RequestModel):
    name: CommunityName = Field(
        description="3 to 21 of A-Z, a-z, 0-9 and _; unique, compared case-insensitively.",
        examples=["python"],
    )
    title: CommunityTitle = Field(examples=["Python"])
    description: Description = Field(default="", examples=["News and questions about Python."])
    rules: Rules = Field(default_factory=list, description=f"At most {RULES_MAX} rules.")


class UpdateCommunityRequest(RequestModel):
    """Only the members given change; `rules` replaces the whole list (`[]` clears it)."""

    title: CommunityTitle | None = None
    description: Description | None = None
    rules: Rules | None = None


class BanRequest(RequestModel):
    reason: Annotated[str, StringConstraints(max_length=BAN_REASON_MAX)] = Field(
        default="", description="Shown to moderators; at most 500 characters."
    )


class Community(ResponseModel):
    """A community. `is_member` is only present for a signed-in caller."""

    id: str = Field(description="Opaque, time-ordered id.")
    name: str = Field(examples=["python"])
    title: str = Field(examples=["Python"])
    description: str
    rules: list[CommunityRule]
    created_at: datetime = Field(description="RFC 3339, UTC.")
    member_count: int
    post_count: int
    moderators: list[str] = Field(description="Usernames, in appointment order, the creator first.")
    is_member: bool | SkipJsonSchema[None] = Field(
        default=None,
        description="Whether the caller joined; only for a signed-in caller.",
        json_schema_extra=omit_default,
    )


class CommunityPage(ResponseModel):
    items: list[Community]
    next_cursor: str | None = NEXT_CURSOR


def community_payload(
    community: communities_pb2.Community,
    usernames: Mapping[str, str],
    *,
    signed_in: bool,
) -> dict[str, Any]:
    """The JSON object for `Community`; moderators unknown to auth are left out."""
    payload: dict[str, Any] = {
        "id": community.id,
        "name": community.name,
        "title": community.title,
        "description": community.description,
        "rules": [{"title": r.title, "description": r.description} for r in community.rules],
        "created_at": timestamp_json(community.created_at),
        "member_count": community.member_count,
        "post_count": community.post_count,
        "moderators": [usernames[m] for m in community.moderator_ids if m in usernames],
    }
    if signed_in:
        payload["is_member"] = community.is_member
    return payload
