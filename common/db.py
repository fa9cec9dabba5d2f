"""Async SQLAlchemy access to one service's own schema.

Each service connects as its own role (agora_<service>) that owns only its
schema, so a bug in one service cannot read or drop another's tables. One
`Database` per process, built at start-up and disposed at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import URL, MetaData
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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
            pool_pre_ping=True,
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
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
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
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; its transaction is rolled back at the end."""
        async with self._sessions() as session:
            try:
                yield session
            finally:
                await session.rollback()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()
