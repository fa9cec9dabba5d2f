"""The one list of Agora's processes and their default ports.

The dev launcher, the test harness, compose and the Helm chart all derive from
this list, so adding a service here is the one step that wires it everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A gRPC domain service: its name is also its Postgres schema and role suffix."""

    name: str
    grpc_port: int
    metrics_port: int
    owns_schema: bool = True

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    @property
    def db_role(self) -> str:
        return f"agora_{self.name}"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", grpc_port=50051, metrics_port=9101),
    ServiceSpec("communities", grpc_port=50052, metrics_port=9102),
    ServiceSpec("posts", grpc_port=50053, metrics_port=9103),
    ServiceSpec("comments", grpc_port=50054, metrics_port=9104),
    ServiceSpec("votes", grpc_port=50055, metrics_port=9105),
    ServiceSpec("summarizer", grpc_port=50056, metrics_port=9106),
)

GATEWAY_PORT = 5000


def service(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown service {name!r}; known: {[s.name for s in SERVICES]}")
