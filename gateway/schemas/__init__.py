"""Pydantic models of the public API: strict on the way in, documentation on the way out."""

from gateway.schemas.auth import (
    JsonWebKeySet,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    token_pair_payload,
)
from gateway.schemas.health import Health, Readiness
from gateway.schemas.problem import FieldProblem, Problem
from gateway.schemas.users import User, user_payload

__all__ = [
    "FieldProblem",
    "Health",
    "JsonWebKeySet",
    "LoginRequest",
    "LogoutRequest",
    "Problem",
    "Readiness",
    "RefreshRequest",
    "RegisterRequest",
    "TokenPair",
    "User",
    "token_pair_payload",
    "user_payload",
]
