"""Settings of the communities process, read once from the environment at start-up.

Besides everything in common.settings.ServiceSettings (AGORA_ENVIRONMENT,
AGORA_DB_*, AGORA_NATS_*, AGORA_SERVICE_ADDRESSES, AGORA_CURSOR_SECRET, ...),
the communities service reads:

| variable | default | meaning |
|---|---|---|
| AGORA_GRPC_PORT | 50052 | gRPC listen port |
| AGORA_METRICS_PORT | 9102 | Prometheus /metrics port; 0 = off |

It calls the auth service (AGORA_SERVICE_ADDRESSES["auth"]) to check that a
user exists before appointing or banning them.
"""

from __future__ import annotations

from pydantic import Field

from common.settings import ServiceSettings
from common.topology import service

_SPEC = service("communities")


class CommunitiesSettings(ServiceSettings):
    """Everything the communities process needs; see the module docstring for the variables."""

    grpc_port: int = Field(default=_SPEC.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(default=_SPEC.metrics_port, ge=0, le=65535)
