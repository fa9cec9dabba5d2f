"""Every service's hand-written migrations build exactly the schema its models describe.

Alembic's autogenerate compares the migrated schema (as the service's own
role) with `services.<name>.models.metadata`; any difference means a model
changed without a migration, or a migration drifted from the models.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, pool

from common.db import database_url
from common.settings import DatabaseSettings
from common.topology import SERVICES, ServiceSpec
from tools.stack import Stack


@pytest.mark.parametrize("spec", SERVICES, ids=[spec.name for spec in SERVICES])
def test_migrated_schema_matches_the_models(
    stack: Stack, db_settings: DatabaseSettings, spec: ServiceSpec
) -> None:
    metadata: MetaData = importlib.import_module(f"{spec.module}.models").metadata
    engine = create_engine(database_url(db_settings, role=spec.db_role), poolclass=pool.NullPool)

    def ours(name: Any, type_: str, _parent: Any) -> bool:
        return bool(name == spec.name) if type_ == "schema" else True

    def not_alembics(_obj: Any, name: Any, type_: str, _reflected: bool, _compare: Any) -> bool:
        return not (type_ == "table" and name == "alembic_version")

    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_schemas": True,
                    "include_name": ours,
                    "include_object": not_alembics,
                    "compare_type": True,
                    "compare_server_default": True,
                },
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
