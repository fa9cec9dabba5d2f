"""Connection-pool metrics of every service's SQLAlchemy engine.

A saturated pool is the first sign of a slow or overloaded database: requests
queue for a connection before any query runs, and past the pool timeout they
fail with UNAVAILABLE. So each pool, labelled by its application name
(`agora-posts`), exports:

- at scrape time (`PoolCollector` reads the pool's own counters, no events
  on the hot path): `agora_db_pool_size` (persistent connections),
  `agora_db_pool_max_connections` (size plus overflow allowance),
  `agora_db_pool_checked_out`, `agora_db_pool_idle` and `agora_db_pool_overflow`
  (connections open beyond the size);
- as requests happen (`measured_pool`): `agora_db_pool_waiting` (requests
  waiting for a connection now), `agora_db_pool_wait_seconds` (how long getting
  one took, including opening and the pre-ping), `agora_db_pool_timeouts_total`
  (requests that gave up: the pool was exhausted) and
  `agora_db_pool_connect_errors_total` (no connection could be opened: the
  database is down or refuses us).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection, QueuePool

POOL_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

POOL_WAITING = Gauge(
    "agora_db_pool_waiting",
    "Requests waiting for a database connection right now.",
    ["pool"],
)
POOL_WAIT_SECONDS = Histogram(
    "agora_db_pool_wait_seconds",
    "Time to get a database connection from the pool (waiting, opening, pre-ping).",
    ["pool"],
    buckets=POOL_WAIT_BUCKETS,
)
POOL_TIMEOUTS = Counter(
    "agora_db_pool_timeouts_total",
    "Requests that found the pool exhausted for the whole pool timeout.",
    ["pool"],
)
POOL_CONNECT_ERRORS = Counter(
    "agora_db_pool_connect_errors_total",
    "Requests that got no connection because opening one failed (database down, "
    "refused, or lost between pre-ping and reconnect).",
    ["pool"],
)


class MeasuredPool(AsyncAdaptedQueuePool):
    """The async engine's default pool, timing each checkout under `metrics_name`."""

    metrics_name = "unnamed"

    def connect(self) -> PoolProxiedConnection:
        waiting = POOL_WAITING.labels(self.metrics_name)
        waiting.inc()
        started = time.perf_counter()
        try:
            return super().connect()
        except sa_exc.TimeoutError:
            POOL_TIMEOUTS.labels(self.metrics_name).inc()
            raise
        except Exception:
            POOL_CONNECT_ERRORS.labels(self.metrics_name).inc()
            raise
        finally:
            waiting.dec()
            POOL_WAIT_SECONDS.labels(self.metrics_name).observe(time.perf_counter() - started)


@cache
def measured_pool(name: str) -> type[MeasuredPool]:
    """The pool class for `create_async_engine(poolclass=...)` of the pool called name.

    A class per name rather than a constructor argument: the engine builds
    the pool itself, and again (from the class) whenever it is disposed.
    """
    return type(f"MeasuredPool[{name}]", (MeasuredPool,), {"metrics_name": name})


@dataclass(frozen=True, slots=True)
class _Tracked:
    name: str
    max_connections: int


class PoolCollector(Collector):
    """Reads the current pool of every tracked engine at scrape time.

    Engines are held weakly and pools read through the engine, so a disposed
    (recreated) pool or a dropped engine never leaves a stale series. Engines
    of the same name (tests build several in one process) are summed.
    """

    def __init__(self) -> None:
        self._engines: weakref.WeakKeyDictionary[Engine, _Tracked] = weakref.WeakKeyDictionary()
        # Scrapes run on the metrics server's thread, engines are added on the event loop's.
        self._lock = threading.Lock()

    def track(self, engine: Engine, name: str, *, max_connections: int) -> None:
        with self._lock:
            self._engines[engine] = _Tracked(name, max_connections)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            tracked = list(self._engines.items())
        families = {
            key: GaugeMetricFamily(f"agora_db_pool_{key}", text, labels=["pool"])
            for key, text in (
                ("size", "Persistent connections the pool keeps (AGORA_DB_POOL_SIZE)."),
                ("max_connections", "Most connections the pool opens: size plus overflow."),
                ("checked_out", "Connections in use by requests right now."),
                ("idle", "Open connections waiting in the pool for a request."),
                ("overflow", "Connections open beyond the pool size right now."),
            )
        }
        totals: dict[str, dict[str, float]] = {}
        for engine, info in tracked:
            pool = engine.pool
            if not isinstance(pool, QueuePool):
                continue
            row = totals.setdefault(info.name, dict.fromkeys(families, 0.0))
            row["size"] += pool.size()
            row["max_connections"] += info.max_connections
            row["checked_out"] += max(pool.checkedout(), 0)
            row["idle"] += pool.checkedin()
            row["overflow"] += max(pool.overflow(), 0)
        for name, row in sorted(totals.items()):
            for key, value in row.items():
                families[key].add_metric([name], value)
        yield from families.values()


POOLS = PoolCollector()
REGISTRY.register(POOLS)


def track_pool(engine: Engine, name: str, *, max_connections: int) -> None:
    """Export the pool of engine (a sync engine: `async_engine.sync_engine`) under name."""
    POOLS.track(engine, name, max_connections=max_connections)
    # Exported as 0 from the start: an alert on the first timeout needs a series before it.
    POOL_TIMEOUTS.labels(name)
    POOL_CONNECT_ERRORS.labels(name)
    POOL_WAITING.labels(name)
