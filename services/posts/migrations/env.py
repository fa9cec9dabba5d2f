"""Alembic environment of the posts schema; everything else lives in common.migrations."""

from common.migrations import run_env
from services.posts.models import metadata

run_env(metadata)
