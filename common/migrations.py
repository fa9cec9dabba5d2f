"""Alembic, one history per service, run as the service's own role.

Each service's migrations/env.py calls `run_env(schema, metadata)`; nothing
else about Alembic is repeated per service. The version table lives in the
service's schema and autogenerate only ever looks at that schema, so one
service can never propose dropping another's tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool

from common.db import database_url
from common.settings import DatabaseSettings
from common.topology import ServiceSpec

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(spec: ServiceSpec, settings: DatabaseSettings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "services" / spec.name / "migrations"))
    url = database_url(settings, role=spec.db_role)
    # Alembic interpolates %-signs in options; the URL may hold an encoded password.
    config.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
    )
    config.attributes["schema"] = spec.name
    return config


def upgrade(spec: ServiceSpec, settings: DatabaseSettings, revision: str = "head") -> None:
    command.upgrade(alembic_config(spec, settings), revision)


def run_env(metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (online mode only)."""
    from alembic import context

    config = context.config
    schema = config.attributes.get("schema") or metadata.schema
    engine = create_engine(
        config.get_main_option("sqlalchemy.url", ""), poolclass=pool.NullPool, hide_parameters=True
    )

    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        return name == schema if type_ == "schema" else True

    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
