"""Per-request context carried across await points: request id and caller.

The gRPC server interceptor fills these from metadata; log records, outgoing
gRPC calls and servicers read them, so nobody threads them through arguments.
"""

from __future__ import annotations

from contextvars import ContextVar

from common.errors import Unauthenticated

# gRPC metadata keys (lower-case, as gRPC requires).
REQUEST_ID_KEY = "x-request-id"
# The user id that the gateway verified from an access token. Services trust
# only this, never a user id in a request body.
USER_ID_KEY = "x-agora-user-id"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
caller_id_var: ContextVar[str | None] = ContextVar("caller_id", default=None)


def caller_id() -> str | None:
    """The verified user making this request, or None when anonymous."""
    return caller_id_var.get()


def require_caller() -> str:
    """The verified user making this request; UNAUTHENTICATED when anonymous."""
    user_id = caller_id_var.get()
    if not user_id:
        raise Unauthenticated("this action needs a signed-in user")
    return user_id
