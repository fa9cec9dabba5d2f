"""Whether a user exists, asked of the auth service (the owner of users) over gRPC."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

import grpc
from agora.auth.v1 import auth_pb2, auth_pb2_grpc

from common.grpc_client import upstream_error

log = logging.getLogger("agora.communities")


class UserDirectory(Protocol):
    async def exists(self, user_id: uuid.UUID) -> bool: ...


class AuthUserDirectory:
    """UserDirectory over AuthService.GetUser, on the one channel the process opened."""

    def __init__(self, stub: auth_pb2_grpc.AuthServiceAsyncStub) -> None:
        self._stub = stub

    async def exists(self, user_id: uuid.UUID) -> bool:
        try:
            await self._stub.GetUser(auth_pb2.GetUserRequest(id=str(user_id)))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise upstream_error(error, "auth", not_found="user not found") from error
        return True
