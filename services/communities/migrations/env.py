"""Alembic environment of the communities schema; everything else lives in common.migrations."""

from common.migrations import run_env
from services.communities.models import metadata

run_env(metadata)
