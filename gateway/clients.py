"""Typed gRPC clients of the upstream services, one channel each, every call with a deadline.

UPSTREAMS is the list the lifespan opens channels for and /readyz checks; a
later resource (communities, posts, ...) adds its entry here, a client class
and a field on `Clients`, and nothing else changes. Request ids and the
verified caller ride along in metadata through common.grpc_client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import grpc
from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

if TYPE_CHECKING:
    from agora.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub

AUTH_SERVICE: ServiceDescriptor = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """A service process the gateway talks to: its topology name and its gRPC services."""

    name: str
    services: tuple[ServiceDescriptor, ...]


UPSTREAMS: tuple[Upstream, ...] = (Upstream("auth", (AUTH_SERVICE,)),)


class AuthClient:
    """agora.auth.v1.AuthService, with the gateway's deadline on every call."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._stub: AuthServiceAsyncStub = auth_pb2_grpc.AuthServiceStub(channel)
        self._deadline = deadline

    async def register(self, *, username: str, email: str, password: str) -> auth_pb2.User:
        request = auth_pb2.RegisterRequest(username=username, email=email, password=password)
        response = await self._stub.Register(request, timeout=self._deadline)
        return response.user

    async def login(self, *, login: str, password: str) -> auth_pb2.LoginResponse:
        request = auth_pb2.LoginRequest(login=login, password=password)
        return await self._stub.Login(request, timeout=self._deadline)

    async def refresh(self, refresh_token: str) -> auth_pb2.TokenPair:
        request = auth_pb2.RefreshRequest(refresh_token=refresh_token)
        response = await self._stub.Refresh(request, timeout=self._deadline)
        return response.tokens

    async def logout(
        self,
        *,
        session_id: str,
        token_id: str,
        token_expires_at: datetime,
        refresh_token: str | None,
    ) -> None:
        expires_at = Timestamp()
        expires_at.FromDatetime(token_expires_at)
        request = auth_pb2.LogoutRequest(
            refresh_token=refresh_token or "",
            session_id=session_id,
            token_id=token_id,
            token_expires_at=expires_at,
        )
        await self._stub.Logout(request, timeout=self._deadline)

    async def get_user_by_id(self, user_id: str, *, include_email: bool) -> auth_pb2.User:
        request = auth_pb2.GetUserRequest(id=user_id, include_email=include_email)
        response = await self._stub.GetUser(request, timeout=self._deadline)
        return response.user

    async def get_user_by_username(self, username: str) -> auth_pb2.User:
        request = auth_pb2.GetUserRequest(username=username, include_email=False)
        response = await self._stub.GetUser(request, timeout=self._deadline)
        return response.user

    async def get_jwks(self) -> str:
        response = await self._stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=self._deadline)
        return response.jwks_json


@dataclass(frozen=True, slots=True)
class Clients:
    """One typed client per upstream, built on the lifespan's channels."""

    auth: AuthClient

    @classmethod
    def build(cls, channels: Mapping[str, grpc.aio.Channel], *, deadline: float) -> Clients:
        return cls(auth=AuthClient(channels["auth"], deadline=deadline))


class NotServingError(Exception):
    """An upstream answered its health check with something other than SERVING."""


async def check_upstream(channel: grpc.aio.Channel, upstream: Upstream, *, deadline: float) -> None:
    """Ask the upstream's grpc.health.v1 service about each of its services, concurrently.

    Raises grpc.aio.AioRpcError when it cannot be reached in time and
    NotServingError when it answers but is not serving (e.g. draining).
    """
    stub = health_pb2_grpc.HealthStub(channel)

    async def check(service: ServiceDescriptor) -> None:
        request = health_pb2.HealthCheckRequest(service=service.full_name)
        response = await stub.Check(request, timeout=deadline)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            raise NotServingError(f"{service.full_name} is {status}")

    results = await asyncio.gather(
        *(check(service) for service in upstream.services), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
