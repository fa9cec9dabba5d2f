"""Create the database, one least-privileged role and schema per service, and migrate.

Development and tests only: production databases, roles and passwords are
provisioned by the platform, and only the migrations run there. Each service
gets a role `agora_<service>` that owns exactly its own schema and may connect
to the database and nothing else; the database itself is closed to PUBLIC.
Everything is idempotent, so it runs on every `make up`.
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql

from common import migrations
from common.settings import DatabaseSettings
from common.topology import SERVICES, ServiceSpec

# The maintenance database the admin connects to when creating or dropping ours.
MAINTENANCE_DB = "postgres"
# What Postgres raises when a concurrent bootstrap created the same object first.
_ALREADY_THERE = (
    psycopg.errors.DuplicateDatabase,
    psycopg.errors.DuplicateObject,
    psycopg.errors.UniqueViolation,
)


def _admin_connect(
    settings: DatabaseSettings, dbname: str
) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=settings.host,
        port=settings.port,
        user=settings.admin_user,
        password=settings.admin_password.get_secret_value() or None,
        dbname=dbname,
        autocommit=True,
        connect_timeout=5,
    )


def ensure_database(
    settings: DatabaseSettings, services: tuple[ServiceSpec, ...] = SERVICES
) -> None:
    """Create the database, roles and schemas that are missing; change nothing else."""
    with _admin_connect(settings, MAINTENANCE_DB) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (settings.name,)
        ).fetchone()
        if not exists:
            # Another bootstrap may create it at the same moment.
            with contextlib.suppress(*_ALREADY_THERE):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.name)))
    with _admin_connect(settings, settings.name) as conn:
        database = sql.Identifier(settings.name)
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for spec in services:
            if not spec.owns_schema:
                continue
            role, schema = sql.Identifier(spec.db_role), sql.Identifier(spec.name)
            # Roles are cluster-wide: another database (or a concurrent run) may have made it.
            with contextlib.suppress(*_ALREADY_THERE):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(role)
                )
            if password := settings.password.get_secret_value():
                # Servers without trust auth (containers) need the role's password.
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password))
                )
            conn.execute(
                sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, role)
            )
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(schema, role)
            )


def migrate(settings: DatabaseSettings, services: tuple[ServiceSpec, ...] = SERVICES) -> None:
    """Run every service's Alembic history to head, each as its own role."""
    for spec in services:
        if spec.owns_schema:
            migrations.upgrade(spec, settings)


def drop_database(settings: DatabaseSettings) -> None:
    """Drop the database, closing its connections first (test teardown)."""
    with _admin_connect(settings, MAINTENANCE_DB) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(settings.name))
        )
