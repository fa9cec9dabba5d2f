"""Alembic environment of the comments schema; everything else lives in common.migrations."""

from common.migrations import run_env
from services.comments.models import metadata

run_env(metadata)
