"""Request and response bodies of /api/v1/auth."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from agora.auth.v1 import auth_pb2
from pydantic import BeforeValidator, ConfigDict, EmailStr, Field, StringConstraints

from common.contract import EMAIL_MAX, PASSWORD_MAX, PASSWORD_MIN
from gateway.schemas.base import RequestModel, ResponseModel, Username, nfkc

# Refresh tokens are opaque to clients; the bound only keeps junk out.
REFRESH_TOKEN_MAX = 1024

Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Login = Annotated[str, StringConstraints(min_length=1, max_length=EMAIL_MAX), BeforeValidator(nfkc)]
RefreshToken = Annotated[str, StringConstraints(min_length=1, max_length=REFRESH_TOKEN_MAX)]


class RegisterRequest(RequestModel):
    username: Username = Field(
        description="3 to 20 of A-Z, a-z, 0-9 and _, after NFKC normalisation.",
        examples=["alice_42"],
    )
    email: Annotated[EmailStr, Field(max_length=EMAIL_MAX)] = Field(examples=["alice@example.com"])
    password: Password = Field(description="8 to 128 characters.")


class LoginRequest(RequestModel):
    # Usernames are stored NFKC-normalised, so the login is too; an email is
    # unchanged by it unless it holds compatibility characters.
    username: Login = Field(description="The username or the email address.", examples=["alice_42"])
    password: Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX)]


class RefreshRequest(RequestModel):
    refresh_token: RefreshToken


class LogoutRequest(RequestModel):
    refresh_token: RefreshToken | None = Field(
        default=None, description="Also revoke this refresh token's family."
    )


class TokenPair(ResponseModel):
    access_token: str = Field(description="A JWT (EdDSA or RS256) for `Authorization: Bearer`.")
    refresh_token: str = Field(description="Opaque; spent by /auth/refresh.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")


def token_pair_payload(tokens: auth_pb2.TokenPair) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
    }


class JsonWebKeySet(ResponseModel):
    """The public keys that verify access tokens (RFC 7517)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    keys: list[dict[str, Any]] = Field(
        description="JWKs with `kid`, `kty`, `alg` and `use`; never private members."
    )
