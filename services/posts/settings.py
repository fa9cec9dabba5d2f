"""Settings of the posts process, read once from the environment at start-up.

Besides everything in common.settings.ServiceSettings (AGORA_ENVIRONMENT,
AGORA_DB_*, AGORA_NATS_*, AGORA_CURSOR_SECRET, AGORA_SERVICE_ADDRESSES, ...),
the posts service reads:

| variable | default | meaning |
|---|---|---|
| AGORA_GRPC_PORT | 50053 | gRPC listen port |
| AGORA_METRICS_PORT | 9103 | Prometheus /metrics port; 0 = off |
| AGORA_POSTS_COMMUNITIES_DEADLINE_SECONDS | 2.0 | deadline of each GetPermissions call |

It calls the communities service at `AGORA_SERVICE_ADDRESSES["communities"]`.
"""

from __future__ import annotations

from pydantic import Field

from common.settings import ServiceSettings
from common.topology import service

_SPEC = service("posts")


class PostsSettings(ServiceSettings):
    """Everything the posts process needs; see the module docstring for the variables."""

    grpc_port: int = Field(default=_SPEC.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(default=_SPEC.metrics_port, ge=0, le=65535)
    # A permission check sits in front of every write: keep it well inside the
    # caller's own deadline so a slow communities service fails fast.
    posts_communities_deadline_seconds: float = Field(default=2.0, gt=0, le=30)
