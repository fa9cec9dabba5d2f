"""common.db's three ways in, and the pool's ping-after-idle, against the real PostgreSQL.

The reads are cheap because they skip round trips; these tests prove each mode
still gives what it promises, and that a connection the server dropped is
replaced rather than handed to a request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database
from common.settings import DatabaseSettings
from tests.infrastructure import scratch_database


@pytest.fixture(scope="module")
def scratch_db(infrastructure: dict[str, str]) -> Iterator[DatabaseSettings]:
    with scratch_database("db") as settings:
        yield settings


def _database(settings: DatabaseSettings, *, idle_seconds: float) -> Database:
    tuned = settings.model_copy(update={"pre_ping_idle_seconds": idle_seconds, "pool_size": 1})
    return Database(tuned, role="postgres", application_name=f"db-test-{uuid.uuid4().hex[:6]}")


@pytest.fixture
async def db(scratch_db: DatabaseSettings) -> AsyncIterator[Database]:
    database = _database(scratch_db, idle_seconds=60)
    try:
        yield database
    finally:
        await database.dispose()


async def _scalar(session: AsyncSession, sql: str) -> object:
    return await session.scalar(sa.text(sql))


async def test_a_read_runs_each_statement_in_autocommit(db: Database) -> None:
    async with db.read() as session:
        await session.execute(sa.text("SELECT pg_sleep(0.05)"))
        # Inside a transaction now() is when it began, before the sleep.
        assert await _scalar(session, "SELECT now() = statement_timestamp()") is True
        assert await _scalar(session, "SHOW transaction_isolation") == "read committed"


async def test_a_snapshot_read_is_one_read_only_repeatable_read_transaction(db: Database) -> None:
    async with db.read(snapshot=True) as session:
        await session.execute(sa.text("SELECT pg_sleep(0.05)"))
        assert await _scalar(session, "SELECT now() = statement_timestamp()") is False
        assert await _scalar(session, "SHOW transaction_isolation") == "repeatable read"
        assert await _scalar(session, "SHOW transaction_read_only") == "on"
        with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
            await session.execute(sa.text("CREATE TEMP TABLE refused (id int)"))


async def test_a_snapshot_read_does_not_see_a_commit_made_during_it(
    db: Database, scratch_db: DatabaseSettings
) -> None:
    async with db.transaction() as session:
        await session.execute(sa.text("CREATE TABLE IF NOT EXISTS public.seen (id int)"))
        await session.execute(sa.text("TRUNCATE public.seen"))
    other = _database(scratch_db, idle_seconds=60)
    try:
        async with db.read(snapshot=True) as session:
            assert await _scalar(session, "SELECT count(*) FROM public.seen") == 0
            async with other.transaction() as writer:
                await writer.execute(sa.text("INSERT INTO public.seen VALUES (1)"))
            assert await _scalar(session, "SELECT count(*) FROM public.seen") == 0
        async with db.read() as session:
            assert await _scalar(session, "SELECT count(*) FROM public.seen") == 1
    finally:
        await other.dispose()


async def test_the_modes_do_not_leak_into_the_next_checkout(db: Database) -> None:
    """One pooled connection serves all three in turn; each gets its own settings back."""
    async with db.read(snapshot=True) as session:
        assert await _scalar(session, "SHOW transaction_read_only") == "on"
    async with db.transaction() as session:
        assert await _scalar(session, "SHOW transaction_isolation") == "read committed"
        assert await _scalar(session, "SHOW transaction_read_only") == "off"
    async with db.read() as session:
        assert await _scalar(session, "SHOW transaction_read_only") == "off"


async def _backend_pid(db: Database) -> int:
    async with db.read() as session:
        return int(await _scalar(session, "SELECT pg_backend_pid()"))  # type: ignore[arg-type]


def _terminate(settings: DatabaseSettings, pid: int) -> None:
    import psycopg

    with psycopg.connect(
        host=settings.host, port=settings.port, user="postgres", dbname=settings.name
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_connection_dropped_while_idle_is_replaced_before_use(
    scratch_db: DatabaseSettings,
) -> None:
    db = _database(scratch_db, idle_seconds=0.2)
    try:
        first = await _backend_pid(db)
        _terminate(scratch_db, first)
        await asyncio.sleep(0.3)
        # The ping on checkout finds it dead; the request gets a new connection.
        assert await _backend_pid(db) != first
    finally:
        await db.dispose()


async def test_a_connection_the_server_closed_is_replaced_however_recently_used(
    scratch_db: DatabaseSettings,
) -> None:
    """A restart or a kill: PostgreSQL's goodbye waits on the idle socket, so it is pinged."""
    db = _database(scratch_db, idle_seconds=60)
    try:
        first = await _backend_pid(db)
        _terminate(scratch_db, first)
        await asyncio.sleep(0.2)  # the FATAL message and the close reach our socket
        assert await _backend_pid(db) != first
    finally:
        await db.dispose()


async def test_a_healthy_connection_in_steady_use_is_not_pinged(
    scratch_db: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _database(scratch_db, idle_seconds=60)
    pings: list[object] = []
    real_ping = db.engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    try:
        pids = {await _backend_pid(db) for _ in range(20)}
        assert len(pids) == 1
        assert pings == []
    finally:
        await db.dispose()
