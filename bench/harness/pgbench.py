"""The database ceiling: pgbench running the community hot listing, as the posts service sends it.

The script is made from the posts service's own statement builders
(services.posts.repository), rendered with literal values, so pgbench runs
the service's SQL: the pinned posts and the first page of a community's hot
listing, one transaction per page view. The community is drawn per
transaction with random_zipfian over communities ordered by post count, as
traffic favours big communities; a scalar subquery turns the drawn rank into
the community's id (pgbench variables are numbers), which adds an index
lookup of a 100-row table to each transaction. Every transaction's latency
is logged (-l) and summarised into the same percentiles as the HTTP runs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement

from bench.harness.measure import LoadResult, from_latencies
from common.settings import DatabaseSettings
from services.posts.domain import Scope, Sort
from services.posts.repository import PageQuery, listing_statement, pinned_statement

_PLACEHOLDER = uuid.UUID(int=0)
_COMMUNITY = (
    "(SELECT id FROM communities.communities ORDER BY post_count DESC, id OFFSET :rank - 1 LIMIT 1)"
)


def _render(statement: ClauseElement) -> str:
    compiled = statement.compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    text = str(compiled)
    literal = f"'{_PLACEHOLDER}'"
    if literal not in text:
        raise RuntimeError(f"community placeholder not found in:\n{text}")
    return " ".join(text.replace(literal, _COMMUNITY).split())


def script(communities: int) -> str:
    scope = Scope.community(_PLACEHOLDER)
    page = PageQuery(Sort.HOT, scope, limit=26, exclude_pinned=True)
    return (
        f"\\set rank random_zipfian(1, {communities}, 1.1)\n"
        "BEGIN;\n"
        f"{_render(pinned_statement(_PLACEHOLDER, 25))};\n"
        f"{_render(listing_statement(page))};\n"
        "END;\n"
    )


def command(
    settings: DatabaseSettings, script_file: Path, *, clients: int, seconds: int
) -> list[str]:
    binary = shutil.which("pgbench")
    if binary is None:
        raise RuntimeError("pgbench is not installed (Debian: postgresql-client)")
    return [
        binary,
        "-n",  # no vacuum of pgbench's own tables: there are none
        "-M",
        "prepared",
        "-f",
        str(script_file),
        "-c",
        str(clients),
        "-j",
        "2",
        "-T",
        str(seconds),
        "-l",
        "-h",
        settings.host,
        "-p",
        str(settings.port),
        "-U",
        settings.admin_user,
        settings.name,
    ]


def summarise(log_dir: Path, *, clients: int, seconds: float, name: str) -> LoadResult:
    """Read pgbench's per-transaction logs: `client tx latency_us script epoch epoch_us`."""
    latencies: list[float] = []
    failed = 0
    for log in log_dir.glob("pgbench_log.*"):
        for row in log.read_text().split("\n"):
            fields = row.split()
            if len(fields) < 3:
                continue
            if fields[2] in ("failed", "skipped"):
                failed += 1
                continue
            latencies.append(int(fields[2]) / 1000)
    return from_latencies(
        name,
        "pgbench",
        connections=clients,
        seconds=seconds,
        latencies_ms=latencies,
        errors=failed,
    )


class PgbenchRun:
    """A started pgbench; `finish()` waits and reads its logs."""

    def __init__(
        self, settings: DatabaseSettings, *, communities: int, clients: int, seconds: int
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="agora-pgbench-"))
        self.script_text = script(communities)
        script_file = self._dir / "listing.sql"
        script_file.write_text(self.script_text)
        self.argv = command(settings, script_file, clients=clients, seconds=seconds)
        self.clients, self.seconds = clients, seconds
        self.process = subprocess.Popen(  # noqa: S603 - pgbench from PATH, our arguments
            self.argv, cwd=self._dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def finish(self, name: str) -> tuple[LoadResult, str]:
        output, _ = self.process.communicate()
        try:
            if self.process.returncode != 0:
                raise RuntimeError(f"pgbench failed ({self.process.returncode}):\n{output}")
            result = summarise(self._dir, clients=self.clients, seconds=self.seconds, name=name)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        return result, output
