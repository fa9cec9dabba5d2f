"""The hand-written comments migration builds exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from common.db import database_url
from common.settings import DatabaseSettings
from services.comments.models import metadata
from tools.stack import Stack


def test_migrated_schema_matches_the_models(stack: Stack, db_settings: DatabaseSettings) -> None:
    engine = create_engine(
        database_url(db_settings, role="agora_comments"), poolclass=pool.NullPool
    )
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_schemas": True,
                    "include_name": lambda name, type_, _parent: (
                        name == "comments" if type_ == "schema" else True
                    ),
                    "version_table_schema": "comments",
                    "compare_type": True,
                    "compare_server_default": True,
                },
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
