"""The AuthService gRPC servicer: proto in, use case, proto out.

Nothing here decides anything: it bounds and checks the shape of each field,
calls one AuthService use case, and converts the answer. Failures are raised
as common.errors types, which the server interceptor turns into status codes
with field violations named as in the public API (username, email, password,
refresh_token).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import grpc
from agora.auth.v1 import auth_pb2, auth_pb2_grpc

from common.context import caller_id, require_caller
from common.errors import InvalidArgument
from common.wire import timestamp
from services.auth.service import AuthService, TokenPair, UserInfo

# An upper bound on any one text field before it is normalised or hashed; the
# real rules (20-character names, 128-character passwords) come after NFKC.
FIELD_MAX = 1024
TOKEN_ID_MAX = 128

Context = grpc.aio.ServicerContext[Any, Any]


def _text(value: str, field: str, *, required: bool = True, max_length: int = FIELD_MAX) -> str:
    if required and not value:
        raise InvalidArgument.for_field(field, "is required")
    if len(value) > max_length:
        raise InvalidArgument.for_field(field, f"must be at most {max_length} characters")
    return value


def user_message(user: UserInfo) -> auth_pb2.User:
    return auth_pb2.User(
        id=str(user.id),
        username=user.username,
        email=user.email or "",
        created_at=timestamp(user.created_at),
        karma=user.karma,
    )


def token_message(tokens: TokenPair) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type=tokens.token_type,
        expires_in=tokens.expires_in,
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService) -> None:
        self._service = service

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Context
    ) -> auth_pb2.RegisterResponse:
        user = await self._service.register(
            _text(request.username, "username"),
            _text(request.email, "email"),
            _text(request.password, "password"),
        )
        return auth_pb2.RegisterResponse(user=user_message(user))

    async def Login(
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        # The public API calls the login field `username` (it may hold an email).
        tokens, user = await self._service.login(
            _text(request.login, "username"), _text(request.password, "password")
        )
        return auth_pb2.LoginResponse(tokens=token_message(tokens), user=user_message(user))

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: Context
    ) -> auth_pb2.RefreshResponse:
        tokens = await self._service.refresh(_text(request.refresh_token, "refresh_token"))
        return auth_pb2.RefreshResponse(tokens=token_message(tokens))

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: Context
    ) -> auth_pb2.LogoutResponse:
        caller = require_caller()
        expires_at = (
            request.token_expires_at.ToDatetime(tzinfo=UTC)
            if request.HasField("token_expires_at")
            else None
        )
        await self._service.logout(
            caller,
            session_id=_text(request.session_id, "session_id", required=False),
            refresh_token=_text(request.refresh_token, "refresh_token", required=False),
            token_id=_text(request.token_id, "token_id", required=False, max_length=TOKEN_ID_MAX),
            token_expires_at=expires_at,
        )
        return auth_pb2.LogoutResponse()

    async def GetUser(
        self, request: auth_pb2.GetUserRequest, context: Context
    ) -> auth_pb2.GetUserResponse:
        lookup = request.WhichOneof("lookup")
        user = await self._service.get_user(
            user_id=_text(request.id, "id") if lookup == "id" else "",
            username=_text(request.username, "username") if lookup == "username" else "",
            include_email=request.include_email,
            caller=caller_id(),
        )
        return auth_pb2.GetUserResponse(user=user_message(user))

    async def BatchGetUsers(
        self, request: auth_pb2.BatchGetUsersRequest, context: Context
    ) -> auth_pb2.BatchGetUsersResponse:
        users = await self._service.batch_get_users(list(request.ids), list(request.usernames))
        return auth_pb2.BatchGetUsersResponse(users=[user_message(user) for user in users])

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: Context
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(jwks_json=self._service.jwks())
