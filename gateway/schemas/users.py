"""The public `User` shape and its translation from the auth service's proto."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agora.auth.v1 import auth_pb2
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from common.wire import timestamp_json
from gateway.schemas.base import ResponseModel, omit_default


class User(ResponseModel):
    """A user. `email` is only present when the user is looking at themself."""

    id: str = Field(description="Opaque, time-ordered id.")
    username: str = Field(examples=["alice_42"])
    created_at: datetime = Field(description="RFC 3339, UTC.")
    karma: int
    email: str | SkipJsonSchema[None] = Field(
        default=None,
        description="Only in answers about the caller themself.",
        json_schema_extra=omit_default,
    )


def user_payload(user: auth_pb2.User, *, with_email: bool) -> dict[str, Any]:
    """The JSON object for `User`; the email is left out unless asked for."""
    payload: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        # Protobuf's JSON form of a Timestamp is RFC 3339 in UTC with a `Z`.
        "created_at": timestamp_json(user.created_at),
        "karma": user.karma,
    }
    if with_email and user.email:
        payload["email"] = user.email
    return payload
