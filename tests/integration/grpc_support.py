"""Helpers of the gRPC-level tests: acting as a user, reading errors, waiting.

Every service's integration tests call the services the way the gateway
does; these are the few pieces they all need, in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.context import USER_ID_KEY

T = TypeVar("T")


def as_user(user_id: str) -> list[tuple[str, str]]:
    """The identity metadata the gateway attaches after verifying an access token."""
    return [(USER_ID_KEY, user_id)]


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields named by the google.rpc.BadRequest details of a failed call, in order."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: list[str] = []
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields += [violation.field for violation in bad_request.field_violations]
    return fields


async def refused(code: grpc.StatusCode, call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error of a call that must fail with code."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    assert error.value.code() == code, error.value.details()
    return error.value


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 15.0) -> T:
    """The first truthy answer of check, polled until `within` seconds have passed."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)
