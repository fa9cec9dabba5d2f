"""The gateway's settings, read once from `AGORA_*` environment variables at start-up.

Besides common.settings.CommonSettings (AGORA_ENVIRONMENT, AGORA_LOG_LEVEL,
AGORA_LOG_FORMAT, AGORA_REDIS_URL, AGORA_REDIS_KEY_PREFIX,
AGORA_SERVICE_ADDRESSES, AGORA_TOKEN_ISSUER, AGORA_TOKEN_AUDIENCE), the gateway reads:

| variable | default | meaning |
|---|---|---|
| AGORA_GATEWAY_HOST | 127.0.0.1 | HTTP listen address |
| AGORA_GATEWAY_PORT | 5000 | HTTP listen port |
| AGORA_UPSTREAM_DEADLINE_SECONDS | 5 | deadline of every gRPC call to a service |
| AGORA_MAX_BODY_BYTES | 1048576 | larger request bodies get 413 |
| AGORA_CORS_ALLOW_ORIGINS | empty | browser origins allowed (`a,b` or JSON); empty = none |
| AGORA_READINESS_TIMEOUT_SECONDS | 1 | per-dependency budget of /readyz |
| AGORA_REDIS_TIMEOUT_SECONDS | 0.25 | revocation lookup budget; then fail open |
| AGORA_JWKS_REFRESH_SECONDS | 30 | least time between JWKS fetches |
| AGORA_TRUSTED_PROXIES | empty | proxy IPs/CIDRs whose X-Forwarded-* is believed |
| AGORA_SHUTDOWN_GRACE_SECONDS | 10 | time in-flight requests get after SIGTERM |
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from common.settings import CommonSettings, comma_or_json_list
from common.topology import GATEWAY_PORT

MIB = 1024 * 1024


class GatewaySettings(CommonSettings):
    """Where the gateway listens and how it treats clients and upstreams."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=GATEWAY_PORT, ge=0, le=65535)
    # Every gRPC call to a domain service gets this deadline, so a slow or
    # hung upstream costs a client at most this long.
    upstream_deadline_seconds: float = Field(default=5.0, gt=0, le=60)
    # Bodies beyond this are refused with 413 before they are buffered.
    max_body_bytes: int = Field(default=MIB, ge=1024, le=64 * MIB)
    # Browser origins allowed to call the API (scheme://host[:port]); empty
    # means no cross-origin access at all.
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Budget for each dependency check of /readyz; probes must answer fast.
    readiness_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    # The per-request revocation lookup fails open after this long, so a
    # Redis outage slows no request by more than this.
    redis_timeout_seconds: float = Field(default=0.25, gt=0, le=5)
    # Seconds between JWKS refreshes when a token names an unknown key.
    jwks_refresh_seconds: float = Field(default=30.0, ge=1, le=3600)
    # Proxies whose X-Forwarded-For/-Proto are believed (IPs or CIDRs).
    # Empty: proxy headers are ignored, so clients cannot spoof their address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds in-flight requests get to finish after SIGTERM.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300)

    @field_validator("cors_allow_origins", "trusted_proxies", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        return comma_or_json_list(value)

    @field_validator("cors_allow_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return origins

    @model_validator(mode="after")
    def _refuse_wildcard_in_production(self) -> GatewaySettings:
        if self.is_production and "*" in self.cors_allow_origins:
            raise ValueError("AGORA_CORS_ALLOW_ORIGINS='*' is refused in production")
        return self
