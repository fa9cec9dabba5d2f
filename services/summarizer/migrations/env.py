"""Alembic environment of the summarizer schema; everything else lives in common.migrations."""

from common.migrations import run_env
from services.summarizer.models import metadata

run_env(metadata)
