"""Settings of the comments process, read once from the environment at start-up.

Besides everything in common.settings.ServiceSettings (AGORA_ENVIRONMENT,
AGORA_DB_*, AGORA_NATS_*, AGORA_SERVICE_ADDRESSES, AGORA_CURSOR_SECRET, ...):

| variable | default | meaning |
|---|---|---|
| AGORA_GRPC_PORT | 50054 | gRPC listen port |
| AGORA_METRICS_PORT | 9104 | Prometheus /metrics port; 0 = off |
| AGORA_COMMENTS_UPSTREAM_DEADLINE_SECONDS | 2.0 | deadline of calls to posts and communities |

Posts and communities are reached at AGORA_SERVICE_ADDRESSES["posts"] and
["communities"].
"""

from __future__ import annotations

from pydantic import Field

from common.settings import ServiceSettings
from common.topology import service

_SPEC = service("comments")


class CommentsSettings(ServiceSettings):
    grpc_port: int = Field(default=_SPEC.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(default=_SPEC.metrics_port, ge=0, le=65535)
    # A comment create waits on GetPost and GetPermissions; fail fast when they hang.
    comments_upstream_deadline_seconds: float = Field(default=2.0, gt=0, le=30)
