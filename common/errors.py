"""Domain errors and their one mapping to gRPC status codes.

Services raise these; the server interceptor turns them into statuses (with
field violations as google.rpc.BadRequest details), and the gateway turns the
statuses into problem+json. Nothing else maps errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """A failure the caller can act on; never a bug (bugs stay plain exceptions)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        field_errors: tuple[FieldError, ...] = (),
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors
        # When the caller may try again (quotas, outages): travels as
        # google.rpc.RetryInfo and becomes the gateway's Retry-After.
        self.retry_after_seconds = retry_after_seconds


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def for_field(cls, field: str, message: str) -> InvalidArgument:
        return cls(f"{field}: {message}", field_errors=(FieldError(field, message),))


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE
