"""Load the data set into a dedicated benchmark database with COPY.

The database is made the project's way (tools.bootstrap: per-service roles and
schemas, then every service's Alembic migrations), so the tables, indexes and
constraints are exactly production's. Then, per table, as the admin role:
the secondary indexes are dropped, the rows are streamed in with COPY, and
the indexes are created again from their own definitions (pg_get_indexdef),
which builds each in one sort instead of a million inserts. Foreign-key
triggers are skipped for the load (session_replication_role = replica): the
generator makes every reference valid, and bench.dataset.verify checks it.
Finally every table is vacuumed and analysed, so the planner has statistics
and index-only scans see an all-visible heap, as on a settled production table.

Only databases named agora_bench* are ever touched: the loader drops and
recreates its target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from bench.dataset.generate import Plan, Table, tables
from common.settings import DatabaseSettings
from tools import bootstrap

BENCH_DATABASE_PREFIX = "agora_bench"
_CHUNK_BYTES = 1 << 20


def bench_database(settings: DatabaseSettings, name: str) -> DatabaseSettings:
    """The settings of the benchmark database `name`, refusing any other kind of database."""
    if not name.startswith(BENCH_DATABASE_PREFIX):
        raise ValueError(f"benchmark databases are named {BENCH_DATABASE_PREFIX}*, not {name!r}")
    return settings.model_copy(update={"name": name})


@dataclass(frozen=True, slots=True)
class TableLoad:
    table: str
    rows: int
    seconds: float


def _chunks(lines: Iterator[str]) -> Iterator[tuple[bytes, int]]:
    """Lines joined into about-1-MiB writes (one COPY message each), with their row counts."""
    buffer: list[str] = []
    size = 0
    for text in lines:
        buffer.append(text)
        size += len(text)
        if size >= _CHUNK_BYTES:
            yield "".join(buffer).encode(), len(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode(), len(buffer)


def _secondary_indexes(conn: psycopg.Connection[tuple[object, ...]], table: str) -> list[str]:
    """CREATE INDEX statements of the table's indexes that no constraint owns."""
    rows = conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
        "ORDER BY i.indexrelid",
        (table,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _index_names(conn: psycopg.Connection[tuple[object, ...]], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index i "
        "WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        (table,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _copy_table(conn: psycopg.Connection[tuple[object, ...]], table: Table) -> int:
    schema, name = table.name.split(".")
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    rows = 0
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk, count in _chunks(table.rows()):
            copy.write(chunk)
            rows += count
    return rows


def load(settings: DatabaseSettings, plan: Plan, *, say: Callable[[str], None]) -> list[TableLoad]:
    """Recreate the benchmark database and load the plan into it; the time of each table."""
    if not settings.name.startswith(BENCH_DATABASE_PREFIX):
        raise ValueError(f"refusing to load into {settings.name!r}")
    say(f"database {settings.name}: dropping, creating roles and schemas, migrating")
    bootstrap.drop_database(settings)
    bootstrap.ensure_database(settings)
    bootstrap.migrate(settings)
    loads: list[TableLoad] = []
    with bootstrap._admin_connect(settings, settings.name) as conn:
        conn.autocommit = False
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        every = tables(plan, seed=plan.seed)
        for table in every:
            started = time.monotonic()
            definitions = _secondary_indexes(conn, table.name)
            for index in _index_names(conn, table.name):
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
            rows = _copy_table(conn, table)
            for definition in definitions:
                # As pg_get_indexdef printed it, from this very database.
                conn.execute(sql.SQL(definition))
            conn.commit()
            seconds = time.monotonic() - started
            loads.append(TableLoad(table.name, rows, seconds))
            say(f"{table.name}: {rows:,} rows in {seconds:.1f}s")
        conn.execute(
            "SELECT setval('comments.comment_path_seq', %s)", (max(1, len(plan.comments.ids)),)
        )
        conn.commit()
        conn.autocommit = True
        started = time.monotonic()
        for table in every:
            schema, name = table.name.split(".")
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, name)))
        say(f"vacuum and analyse: {time.monotonic() - started:.1f}s")
    return loads
