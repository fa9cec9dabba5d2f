"""Settings from the environment, one class per process, loaded once at start-up.

Every variable is prefixed `AGORA_`. Defaults work on a developer machine with
the local Postgres, Redis and NATS; production mode refuses placeholder or
missing secrets instead of silently running with them.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.topology import SERVICES

Environment = Literal["development", "test", "production"]

# A well-known value that only development and test accept (see the validator).
DEVELOPMENT_CURSOR_SECRET = "agora-development-cursor-secret"  # noqa: S105


def _default_addresses() -> dict[str, str]:
    return {spec.name: f"127.0.0.1:{spec.grpc_port}" for spec in SERVICES}


class CommonSettings(BaseSettings):
    """What every Agora process needs: where the shared infrastructure is."""

    model_config = SettingsConfigDict(env_prefix="AGORA_", extra="ignore", frozen=True)

    environment: Environment = "development"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Every Redis key starts with this, so test runs and tenants never collide.
    redis_key_prefix: str = "agora:"
    nats_url: SecretStr = SecretStr("nats://127.0.0.1:4222")
    # The JetStream stream of domain events, and the prefix of every subject in
    # it; a test run sets both to names of its own.
    nats_stream: str = Field(default="AGORA", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    nats_subject_prefix: str = Field(default="agora.", pattern=r"^[a-z0-9_-]+\.$")

    # Where each gRPC service listens, as host:port, keyed by service name.
    # Override one with e.g. AGORA_SERVICE_ADDRESSES='{"auth": "auth:50051"}'.
    service_addresses: dict[str, str] = Field(default_factory=_default_addresses)

    # Access tokens: who issues them and for whom (checked on verification).
    token_issuer: str = "agora-auth"  # noqa: S105 - an issuer name, not a secret
    token_audience: str = "agora"  # noqa: S105 - an audience name, not a secret

    # Signs pagination cursors. Every replica of a service must share it.
    cursor_secret: SecretStr = SecretStr(DEVELOPMENT_CURSOR_SECRET)

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> CommonSettings:
        if self.is_production and self.cursor_secret.get_secret_value() in (
            "",
            DEVELOPMENT_CURSOR_SECRET,
        ):
            raise ValueError("AGORA_CURSOR_SECRET must be set to a real secret in production")
        return self

    @model_validator(mode="after")
    def _fill_addresses(self) -> CommonSettings:
        defaults = _default_addresses()
        missing = {k: v for k, v in defaults.items() if k not in self.service_addresses}
        if missing:
            object.__setattr__(self, "service_addresses", {**defaults, **self.service_addresses})
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def address_of(self, service: str) -> str:
        return self.service_addresses[service]


class DatabaseSettings(BaseSettings):
    """Connection to the service's own schema, as the service's own least-privileged role."""

    model_config = SettingsConfigDict(env_prefix="AGORA_DB_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 5432
    name: str = "agora"
    # Empty means the service's own role, agora_<service>.
    user: str = ""
    password: SecretStr = SecretStr("")
    pool_size: int = Field(default=10, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=200)
    pool_timeout_seconds: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=5000, ge=100)
    # A pooled connection idle this long is pinged before use (0: always);
    # one in steady use is not, saving a round trip per request.
    pre_ping_idle_seconds: float = Field(default=5.0, ge=0)
    # Only the bootstrap (dev and tests) connects as this role to create the
    # database, the per-service roles and schemas. Services never use it.
    admin_user: str = "postgres"
    admin_password: SecretStr = SecretStr("")


class ServiceSettings(CommonSettings):
    """A gRPC service process: where it listens and how it reaches its schema."""

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=0, ge=0, le=65535)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # Seconds in-flight RPCs get to finish after SIGTERM.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def comma_or_json_list(value: Any) -> Any:
    """For list settings: `a,b` as well as a JSON list, since both are common in deploy tools.

    Use as a `mode="before"` field validator; anything but a string is left to
    pydantic's own validation.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Build a process's settings from the environment; the only place that reads it."""
    return settings_class()
