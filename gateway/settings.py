"""The gateway's settings, read once from `AGORA_*` environment variables at start-up.

Besides common.settings.CommonSettings (AGORA_ENVIRONMENT, AGORA_LOG_LEVEL,
AGORA_LOG_FORMAT, AGORA_REDIS_URL, AGORA_REDIS_KEY_PREFIX,
AGORA_SERVICE_ADDRESSES, AGORA_TOKEN_ISSUER, AGORA_TOKEN_AUDIENCE), the gateway reads:

| variable | default | meaning |
|---|---|---|
| AGORA_GATEWAY_HOST | 127.0.0.1 | HTTP listen address |
| AGORA_GATEWAY_PORT | 5000 | HTTP listen port |
| AGORA_UPSTREAM_DEADLINE_SECONDS | 5 | deadline of every gRPC call to a service |
| AGORA_UPSTREAM_BREAKER_FAILURE_RATIO | 0.5 | a service's breaker opens at this failed share |
| AGORA_UPSTREAM_BREAKER_WINDOW_SECONDS | 30 | ... of its calls over this rolling window ... |
| AGORA_UPSTREAM_BREAKER_MINIMUM_CALLS | 5 | ... once it saw this many |
| AGORA_UPSTREAM_BREAKER_OPEN_SECONDS | 10 | then calls get 503 this long, until a trial call |
| AGORA_MAX_BODY_BYTES | 1048576 | larger request bodies get 413 |
| AGORA_CORS_ALLOW_ORIGINS | empty | browser origins allowed (`a,b` or JSON); empty = none |
| AGORA_GZIP_MINIMUM_BYTES | 1024 | gzip answers from this size on (if accepted); 0 = never |
| AGORA_HSTS_MAX_AGE_SECONDS | 31536000 | HSTS max-age on answers over HTTPS; 0 = no header |
| AGORA_READINESS_TIMEOUT_SECONDS | 1 | per-dependency budget of /readyz |
| AGORA_REDIS_TIMEOUT_SECONDS | 0.25 | budget of each Redis command; then fail open |
| AGORA_REDIS_BREAKER_OPEN_SECONDS | 5 | Redis is skipped this long after repeated failures |
| AGORA_JWKS_REFRESH_SECONDS | 30 | least time between JWKS fetches |
| AGORA_TRUSTED_PROXIES | empty | proxy IPs/CIDRs whose X-Forwarded-For/-Proto is believed |
| AGORA_RATE_LIMITS_ENABLED | true | false turns every rate limit off |
| AGORA_RATE_LIMIT_USER | 100/minute | requests per signed-in user |
| AGORA_RATE_LIMIT_ANONYMOUS | 20/minute | requests per client IP without a valid token |
| AGORA_RATE_LIMIT_AUTH | 5/minute | `/api/v1/auth/*` requests per client IP |
| AGORA_RATE_LIMIT_POSTS | 10/hour | new posts per user |
| AGORA_RATE_LIMIT_VOTES | 30/minute | votes per user |
| AGORA_RATE_LIMIT_VOTES_PER_IP | 60/minute | votes per client IP, by any accounts |
| AGORA_RATE_LIMIT_BYPASS_SECRET | unset | `X-RateLimit-Bypass: <secret>` skips every limit |
| AGORA_CACHE_ENABLED | true | false turns the response cache off |
| AGORA_CACHE_POST_TTL_SECONDS | 300 | life of a cached post |
| AGORA_CACHE_PROFILE_TTL_SECONDS | 900 | life of a cached public profile |
| AGORA_CACHE_COMMUNITY_TTL_SECONDS | 300 | life of a cached community |
| AGORA_CACHE_LISTING_TTL_SECONDS | 30 | life of a cached page of posts or communities |
| AGORA_CACHE_VIEWER_TTL_SECONDS | 900 | life of a user's cached votes and memberships |
| AGORA_CACHE_REBUILD_LOCK_SECONDS | 5 | one request rebuilds a missing entry; its lock lapses |
| AGORA_CACHE_REBUILD_WAIT_SECONDS | 1 | others wait this long for it, then build themselves |
| AGORA_CACHE_SETTLE_SECONDS | 2 | second invalidation, once event-fed counters caught up |
| AGORA_CACHE_MEMORY_MAX_AGE_SECONDS | 2 | life of an answer in the in-process L1; 0 = no L1 |
| AGORA_CACHE_MEMORY_MAX_ENTRIES | 1000 | answers the L1 holds at most (least recently used out) |
| AGORA_CACHE_MEMORY_MAX_BYTES | 33554432 | bytes of answers the L1 holds at most (32 MiB) |
| AGORA_SHUTDOWN_GRACE_SECONDS | 10 | time in-flight requests get after SIGTERM |

Rates are `<count>/<window>`, the window a unit (`second`, `minute`, `hour`,
`day`) or a number and a unit letter (`30s`, `15m`), or `off`. The 50-a-day
quota of on-demand summaries is the summarizer's own (AGORA_SUMMARIZER_DAILY_REQUESTS_PER_USER).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from common.settings import CommonSettings, comma_or_json_list
from common.topology import GATEWAY_PORT
from gateway.ratelimit.rates import Rate, parse_rate

MIB = 1024 * 1024
ONE_YEAR = 365 * 86400
# A bypass secret is a bearer credential: long enough not to be guessed.
MIN_BYPASS_SECRET_LENGTH = 32

RateSetting = Annotated[Rate | None, BeforeValidator(parse_rate)]


class GatewaySettings(CommonSettings):
    """Where the gateway listens and how it treats clients and upstreams."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=GATEWAY_PORT, ge=0, le=65535)
    # Every gRPC call to a domain service gets this deadline, so a slow or
    # hung upstream costs a client at most this long.
    upstream_deadline_seconds: float = Field(default=5.0, gt=0, le=60)
    # One breaker per upstream service: while a service keeps failing, calls
    # to it are refused at once (503 with Retry-After) instead of each one
    # waiting out its deadline; after the open time one trial call decides.
    upstream_breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    upstream_breaker_window_seconds: float = Field(default=30.0, gt=0, le=600)
    upstream_breaker_minimum_calls: int = Field(default=5, ge=1, le=1000)
    upstream_breaker_open_seconds: float = Field(default=10.0, gt=0, le=600)
    # Bodies beyond this are refused with 413 before they are buffered.
    max_body_bytes: int = Field(default=MIB, ge=1024, le=64 * MIB)
    # Browser origins allowed to call the API (scheme://host[:port]); empty
    # means no cross-origin access at all.
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Smaller answers are not worth the CPU (and gzip can make them bigger).
    gzip_minimum_bytes: int = Field(default=1024, ge=0)
    # Sent only on answers that came over HTTPS (directly or from a trusted
    # proxy's X-Forwarded-Proto): browsers ignore it over plain HTTP.
    hsts_max_age_seconds: int = Field(default=ONE_YEAR, ge=0, le=2 * ONE_YEAR)
    # Budget for each dependency check of /readyz; probes must answer fast.
    readiness_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    # Every Redis command (rate limits, cache, revocation) fails open after
    # this long, so a Redis outage slows no request by much more than this.
    redis_timeout_seconds: float = Field(default=0.25, gt=0, le=5)
    # After repeated Redis failures the gateway stops asking for this long, so
    # a hung Redis costs requests nothing instead of a timeout each.
    redis_breaker_open_seconds: float = Field(default=5.0, gt=0, le=300)
    # Seconds between JWKS refreshes when a token names an unknown key.
    jwks_refresh_seconds: float = Field(default=30.0, ge=1, le=3600)
    # Proxies whose X-Forwarded-For/-Proto are believed (IPs or CIDRs).
    # Empty: proxy headers are ignored, so clients cannot spoof their address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Rate limits (gateway.ratelimit): sliding windows in Redis, shared by
    # every gateway replica.
    rate_limits_enabled: bool = True
    rate_limit_user: RateSetting = Rate(100, 60)
    rate_limit_anonymous: RateSetting = Rate(20, 60)
    rate_limit_auth: RateSetting = Rate(5, 60)
    rate_limit_posts: RateSetting = Rate(10, 3600)
    rate_limit_votes: RateSetting = Rate(30, 60)
    rate_limit_votes_per_ip: RateSetting = Rate(60, 60)
    # For trusted internal clients (the development seed, load tests); unset
    # means nobody bypasses the limits.
    rate_limit_bypass_secret: SecretStr | None = None

    # The response cache (gateway.cache): ready-to-send bytes in Redis.
    cache_enabled: bool = True
    cache_post_ttl_seconds: int = Field(default=300, ge=1, le=86400)
    cache_profile_ttl_seconds: int = Field(default=900, ge=1, le=86400)
    cache_community_ttl_seconds: int = Field(default=300, ge=1, le=86400)
    cache_listing_ttl_seconds: int = Field(default=30, ge=1, le=3600)
    cache_viewer_ttl_seconds: int = Field(default=900, ge=1, le=86400)
    cache_rebuild_lock_seconds: float = Field(default=5.0, gt=0, le=60)
    cache_rebuild_wait_seconds: float = Field(default=1.0, ge=0, le=30)
    cache_settle_seconds: float = Field(default=2.0, ge=0, le=60)
    # The in-process L1 in front of Redis (gateway.cache.memory): anonymous answers
    # served again from memory, dropped by every gateway's invalidations through
    # Redis pub/sub; the max age bounds how stale one can be if that feed fails.
    cache_memory_max_age_seconds: float = Field(default=2.0, ge=0, le=60)
    cache_memory_max_entries: int = Field(default=1000, ge=1, le=1_000_000)
    cache_memory_max_bytes: int = Field(default=32 * MIB, ge=64 * 1024, le=4096 * MIB)

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

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, proxies: list[str]) -> list[str]:
        from gateway.client_address import parse_networks

        parse_networks(proxies)  # raises ValueError naming the bad entry
        return proxies

    @field_validator("rate_limit_bypass_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("rate_limit_bypass_secret")
    @classmethod
    def _check_bypass_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_BYPASS_SECRET_LENGTH:
            raise ValueError(
                f"AGORA_RATE_LIMIT_BYPASS_SECRET must be at least {MIN_BYPASS_SECRET_LENGTH} "
                "characters"
            )
        return secret

    @model_validator(mode="after")
    def _refuse_wildcard_in_production(self) -> GatewaySettings:
        if self.is_production and "*" in self.cors_allow_origins:
            raise ValueError("AGORA_CORS_ALLOW_ORIGINS='*' is refused in production")
        return self
