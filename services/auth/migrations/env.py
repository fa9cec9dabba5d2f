"""Alembic environment of the auth schema; everything else lives in common.migrations."""

from common.migrations import run_env
from services.auth.models import metadata

run_env(metadata)
