"""Alembic environment of the votes schema; everything else lives in common.migrations."""

from common.migrations import run_env
from services.votes.models import metadata

run_env(metadata)
