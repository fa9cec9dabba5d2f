"""Settings of the votes process, read once from the environment at start-up.

Besides everything in common.settings.ServiceSettings (AGORA_ENVIRONMENT,
AGORA_DB_*, AGORA_NATS_*, AGORA_SERVICE_ADDRESSES, ...), the votes service reads:

| variable | default | meaning |
|---|---|---|
| AGORA_GRPC_PORT | 50055 | gRPC listen port |
| AGORA_METRICS_PORT | 9105 | Prometheus /metrics port; 0 = off |
| AGORA_VOTES_IDEMPOTENCY_TTL_SECONDS | 86400 | how long a key replays its first answer |
| AGORA_VOTES_KEY_PURGE_INTERVAL_SECONDS | 3600 | period of the purge of expired keys; 0 = off |

It calls posts, comments and communities at the addresses of
AGORA_SERVICE_ADDRESSES (defaults: common.topology's ports on localhost).
"""

from __future__ import annotations

from pydantic import Field

from common.settings import ServiceSettings
from common.topology import service

_SPEC = service("votes")


class VotesSettings(ServiceSettings):
    """Everything the votes process needs; see the module docstring for the variables."""

    grpc_port: int = Field(default=_SPEC.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(default=_SPEC.metrics_port, ge=0, le=65535)

    # Stripe keeps keys 24 hours; clients retry within minutes, so a day is ample.
    votes_idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    votes_key_purge_interval_seconds: float = Field(default=3600.0, ge=0)
