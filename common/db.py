"""Async SQLAlchemy access to one service's own schema.

Each service connects as its own role (agora_<service>) that owns only its
schema, so a bug in one service cannot read or drop another's tables. One
`Database` per process, built at start-up and disposed at shutdown.

Three ways in, each as cheap as its guarantee allows (a service read is
mostly round trips, so each one saved is worth about a third of its cost):

- `transaction()`: the unit of work, BEGIN ... COMMIT.
- `read()`: autocommit, no BEGIN and no ROLLBACK around the statement. Under
  READ COMMITTED a transaction gives a lone statement nothing more, and
  several statements no common snapshot either, so nothing is lost.
- `read(snapshot=True)`: REPEATABLE READ, READ ONLY, for reads of several
  statements that must agree (a comment tree and its counts).

A pooled connection is pinged before use only when something suggests it
may be dead (see `ping_when_idle`), which saves a round trip per checkout.
"""

from __future__ import annotations

import select
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import URL, MetaData, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from common.pool_metrics import measured_pool, track_pool
from common.settings import DatabaseSettings
from common.telemetry import instrument_engine

# Deterministic constraint names, so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """The MetaData for a service's tables: everything lives in its own schema."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def database_url(settings: DatabaseSettings, *, role: str, admin: bool = False) -> URL:
    """The psycopg URL for a service role (or the bootstrap admin role)."""
    user = settings.admin_user if admin else (settings.user or role)
    secret = settings.admin_password if admin else settings.password
    return URL.create(
        "postgresql+psycopg",
        username=user,
        password=secret.get_secret_value() or None,
        host=settings.host,
        port=settings.port,
        database=settings.name,
    )


class Database:
    """The engine and session factory of one service process."""

    def __init__(self, settings: DatabaseSettings, *, role: str, application_name: str) -> None:
        self.engine: AsyncEngine = create_async_engine(
            database_url(settings, role=role),
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout_seconds,
            # Pinged only after sitting idle: see ping_when_idle.
            pool_pre_ping=False,
            pool_recycle=1800,
            poolclass=measured_pool(application_name),
            # Statement parameters (hashes, emails, bodies) never reach error logs.
            hide_parameters=True,
            connect_args={
                "application_name": application_name,
                "options": f"-c statement_timeout={settings.statement_timeout_ms}",
                "connect_timeout": 5,
            },
        )
        track_pool(
            self.engine.sync_engine,
            application_name,
            max_connections=settings.pool_size + settings.max_overflow,
        )
        ping_when_idle(self.engine.sync_engine, idle_seconds=settings.pre_ping_idle_seconds)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reads = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._snapshots = async_sessionmaker(
            self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            ),
            expire_on_commit=False,
        )
        instrument_engine(self.engine.sync_engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.

        This is the unit of work: repositories add and query through the
        session but never commit; leaving the block does.
        """
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncSession]:
        """A session for reads: autocommit, or one read-only snapshot if `snapshot`.

        Writing through it is a bug: in autocommit a write would commit at
        once, outside any unit of work (and a snapshot session refuses it).
        """
        factory = self._snapshots if snapshot else self._reads
        # Closing (not rolling back) the session: a rollback would expire every
        # entity it loaded, work proportional to the page for nothing. The pool
        # still rolls the connection back when it is returned.
        async with factory() as session:
            yield session

    async def ping(self) -> None:
        """One round trip on a fresh checkout: the readiness probe's question."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


_CHECKED_IN_AT = "agora_checked_in_at"


def ping_when_idle(engine: Engine, *, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout only when it may have died unseen.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip per
    request to learn what a connection used a moment ago already showed. Two
    cheaper tests decide instead:

    - the server closed it (a restart, a failover, `pg_terminate_backend`):
      PostgreSQL says so before closing, so the idle connection's socket has
      something to read, which one `poll()` with no timeout shows, without a
      round trip;
    - it sat idle for `idle_seconds` or more, long enough for a proxy or a
      firewall to have dropped it silently.

    Either way it is pinged; a failed ping raises DisconnectionError, on which
    the pool discards it and checks out (or opens) another. 0 pings every time.
    """

    @event.listens_for(engine.pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        # A connection opened for this checkout needs no ping; `info` is emptied
        # whenever the pool replaces the connection.
        if checked_in_at is None:
            return
        idle = time.monotonic() - checked_in_at
        if idle < idle_seconds and not _server_spoke(dbapi_connection):
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.DisconnectionError("pooled connection lost while idle") from error
            raise


def _server_spoke(dbapi_connection: Any) -> bool:
    """Whether an idle connection has input waiting (or is known to be closed).

    Nothing is due on a connection nobody uses, so input means the server
    closed it (its FATAL message, then end of file) or sent a notice; either
    is worth a ping.
    """
    driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    if driver.closed or driver.broken:
        return True
    poller = select.poll()
    poller.register(driver.pgconn.socket, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
