"""What every Agora process says about itself: which process it is, and its memory limit.

`agora_build_info{process, version}` is 1 in every process, so dashboards and
alert rules can select "Agora's processes" (join on job and instance) without
knowing how the scrape jobs are named. `agora_process_memory_limit_bytes` is
the container's memory limit read from the cgroup at scrape time, so memory
use (prometheus_client's `process_resident_memory_bytes`) can be compared with
it in compose and in Kubernetes alike, without cAdvisor. Without a limit (a
developer's machine) the series is absent rather than a misleading number.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

BUILD_INFO = Gauge(
    "agora_build_info",
    "Always 1: which Agora process this is and the version it runs.",
    ["process", "version"],
)

# cgroup v2, then v1. v1 reports "no limit" as a huge page-aligned number.
CGROUP_MEMORY_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
_NO_LIMIT_ABOVE = 1 << 60


def package_version() -> str:
    """The installed version of the agora package ('0.0.0' when run from a bare tree)."""
    try:
        return version("agora")
    except PackageNotFoundError:
        return "0.0.0"


def memory_limit_bytes(files: Iterable[Path] = CGROUP_MEMORY_LIMIT_FILES) -> int | None:
    """The cgroup memory limit of this process, or None when there is none (or no cgroup)."""
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max":
            return None
        try:
            limit = int(text)
        except ValueError:
            continue
        return limit if 0 < limit < _NO_LIMIT_ABOVE else None
    return None


class MemoryLimitCollector(Collector):
    """Reads the limit at every scrape: an in-place resize shows up without a restart."""

    def __init__(self, files: Iterable[Path] = CGROUP_MEMORY_LIMIT_FILES) -> None:
        self._files = tuple(files)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "agora_process_memory_limit_bytes",
            "The container's memory limit (cgroup); absent when the process has none.",
        )
        limit = memory_limit_bytes(self._files)
        if limit is not None:
            family.add_metric([], float(limit))
        yield family


_described: set[str] = set()


def describe_process(name: str) -> None:
    """Publish this process's identity and memory limit; once per process name."""
    if name in _described:
        return
    BUILD_INFO.labels(name, package_version()).set(1)
    if not _described:
        REGISTRY.register(MemoryLimitCollector())
    _described.add(name)
