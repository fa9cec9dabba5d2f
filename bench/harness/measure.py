"""One shape for every measured run, whatever tool made it (wrk, the gRPC client, pgbench)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LoadResult:
    """Throughput, latency (milliseconds) and errors of one bounded run."""

    name: str
    tool: str
    connections: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    error_detail: dict[str, int] = field(default_factory=dict)
    # process name -> CPU used during the run, in cores (1.0 = one core busy throughout).
    cpu_cores: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tool": self.tool,
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "errors": self.errors,
            "error_detail": self.error_detail,
            "statuses": self.statuses,
            "latency_ms": {
                "p50": round(self.p50_ms, 2),
                "p95": round(self.p95_ms, 2),
                "p99": round(self.p99_ms, 2),
                "mean": round(self.mean_ms, 2),
                "max": round(self.max_ms, 2),
            },
            "cpu_cores": {name: round(cores, 3) for name, cores in self.cpu_cores.items()},
            **({"extra": self.extra} if self.extra else {}),
        }


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of values sorted ascending; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def from_latencies(
    name: str,
    tool: str,
    *,
    connections: int,
    seconds: float,
    latencies_ms: list[float],
    errors: int,
    error_detail: dict[str, int] | None = None,
) -> LoadResult:
    """A LoadResult from every request's latency (tools that log each one)."""
    ordered = sorted(latencies_ms)
    return LoadResult(
        name=name,
        tool=tool,
        connections=connections,
        seconds=seconds,
        requests=len(ordered),
        errors=errors,
        p50_ms=percentile(ordered, 0.50),
        p95_ms=percentile(ordered, 0.95),
        p99_ms=percentile(ordered, 0.99),
        mean_ms=sum(ordered) / len(ordered) if ordered else 0.0,
        max_ms=ordered[-1] if ordered else 0.0,
        error_detail=error_detail or {},
    )
