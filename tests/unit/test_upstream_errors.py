"""How a failed call to another service becomes this service's answer."""

from __future__ import annotations

import grpc
import pytest

from common.errors import NotFound, Unavailable
from common.grpc_client import upstream_error


def _failure(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT])
def test_an_absent_target_is_not_found(code: grpc.StatusCode) -> None:
    error = upstream_error(_failure(code), "posts", not_found="post not found")
    assert isinstance(error, NotFound)
    assert error.message == "post not found"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
def test_an_outage_is_unavailable(code: grpc.StatusCode) -> None:
    assert isinstance(upstream_error(_failure(code), "posts", not_found="-"), Unavailable)


def test_an_upstream_bug_stays_what_it_is() -> None:
    failure = _failure(grpc.StatusCode.INTERNAL)
    assert upstream_error(failure, "posts", not_found="-") is failure
