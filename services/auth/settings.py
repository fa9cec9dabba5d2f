"""Settings of the auth process, read once from the environment at start-up.

Besides everything in common.settings.ServiceSettings (AGORA_ENVIRONMENT,
AGORA_REDIS_URL, AGORA_DB_*, AGORA_TOKEN_ISSUER, ...), the auth service reads:

| variable | default | meaning |
|---|---|---|
| AGORA_GRPC_PORT | 50051 | gRPC listen port |
| AGORA_METRICS_PORT | 9101 | Prometheus /metrics port; 0 = off |
| AGORA_AUTH_SIGNING_KEY | unset | Ed25519 private key (PEM, PKCS#8) that signs access tokens |
| AGORA_AUTH_SIGNING_KEY_FILE | unset | file holding that PEM instead (dev: made if missing) |
| AGORA_AUTH_VERIFICATION_KEY_FILES | empty | more Ed25519 PEMs to publish (rotation); a,b or JSON |
| AGORA_AUTH_ACCESS_TOKEN_TTL_SECONDS | 900 | access token lifetime, 60..3600 |
| AGORA_AUTH_REFRESH_TOKEN_TTL_SECONDS | 604800 | refresh token lifetime, 60..7776000 |
| AGORA_AUTH_BCRYPT_ROUNDS | 12 | bcrypt cost, 4..16; production refuses < 12 |
| AGORA_AUTH_TOKEN_PURGE_INTERVAL_SECONDS | 3600 | expired refresh token purge period; 0 = off |

With neither AGORA_AUTH_SIGNING_KEY nor AGORA_AUTH_SIGNING_KEY_FILE set, a
development or test process uses `.secrets/auth_signing_key.pem` under the
repository root, generating it on first run; production refuses to start
instead, because a generated key would differ between replicas and vanish
with the container, silently logging everybody out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from common.settings import ServiceSettings, comma_or_json_list
from common.topology import service

_SPEC = service("auth")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_SIGNING_KEY_FILE = REPO_ROOT / ".secrets" / "auth_signing_key.pem"
PRODUCTION_MIN_BCRYPT_ROUNDS = 12


class AuthSettings(ServiceSettings):
    """Everything the auth process needs; see the module docstring for the variables."""

    grpc_port: int = Field(default=_SPEC.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(default=_SPEC.metrics_port, ge=0, le=65535)

    auth_signing_key: SecretStr | None = None
    auth_signing_key_file: Path | None = None
    auth_verification_key_files: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    auth_access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    auth_refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    # 4 is bcrypt's floor and makes test suites fast; 16 already takes seconds per login.
    auth_bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    auth_token_purge_interval_seconds: float = Field(default=3600.0, ge=0)

    @field_validator("auth_signing_key", "auth_signing_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """`AGORA_AUTH_SIGNING_KEY=` (set but empty) means "not configured", not an empty key."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None
        return value

    @field_validator("auth_verification_key_files", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        return comma_or_json_list(value)

    @model_validator(mode="after")
    def _check_keys_and_cost(self) -> AuthSettings:
        if self.auth_signing_key is not None and self.auth_signing_key_file is not None:
            raise ValueError("set AGORA_AUTH_SIGNING_KEY or AGORA_AUTH_SIGNING_KEY_FILE, not both")
        if self.is_production:
            if self.auth_signing_key is None and self.auth_signing_key_file is None:
                raise ValueError(
                    "production needs AGORA_AUTH_SIGNING_KEY or AGORA_AUTH_SIGNING_KEY_FILE; "
                    "a signing key is never generated in production"
                )
            if self.auth_bcrypt_rounds < PRODUCTION_MIN_BCRYPT_ROUNDS:
                raise ValueError(
                    f"production refuses AGORA_AUTH_BCRYPT_ROUNDS below "
                    f"{PRODUCTION_MIN_BCRYPT_ROUNDS}"
                )
        return self
