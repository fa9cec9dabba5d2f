"""Where the test run finds Postgres, Redis and NATS.

The machine's own servers on loopback come first (that is how developers and
CI run). Only when one of them does not answer and a Docker engine does, the
run starts throw-away containers with testcontainers instead and points every
process at them; with neither, the run stops with the command that starts the
missing server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from common.settings import CommonSettings, DatabaseSettings
from tools.infra import check_infrastructure

POSTGRES_IMAGE = os.environ.get("AGORA_TEST_POSTGRES_IMAGE", "postgres:15")
REDIS_IMAGE = os.environ.get("AGORA_TEST_REDIS_IMAGE", "redis:7")
NATS_IMAGE = os.environ.get("AGORA_TEST_NATS_IMAGE", "nats:2.10")


class InfrastructureUnavailable(Exception):
    pass


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False
    return True


@contextmanager
def _containers() -> Iterator[dict[str, str]]:
    from testcontainers.community.nats import NatsContainer
    from testcontainers.community.redis import RedisContainer
    from testcontainers.postgres import PostgresContainer

    with ExitStack() as stack:
        postgres = stack.enter_context(
            PostgresContainer(POSTGRES_IMAGE, username="postgres", password="postgres", driver=None)
        )
        redis = stack.enter_context(RedisContainer(REDIS_IMAGE))
        nats = stack.enter_context(NatsContainer(NATS_IMAGE, jetstream=True))
        yield {
            "AGORA_DB_HOST": postgres.get_container_host_ip(),
            "AGORA_DB_PORT": str(postgres.get_exposed_port(5432)),
            "AGORA_DB_ADMIN_PASSWORD": "postgres",
            # The image uses password auth, so the service roles need one too.
            "AGORA_DB_PASSWORD": secrets.token_urlsafe(16),
            "AGORA_REDIS_URL": (
                f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
            ),
            "AGORA_NATS_URL": f"nats://{nats.get_container_host_ip()}:{nats.get_exposed_port(4222)}",
        }


@contextmanager
def running_infrastructure() -> Iterator[dict[str, str]]:
    """Yield the AGORA_* overrides that point a test run at working servers."""
    problems = check_infrastructure(CommonSettings(), DatabaseSettings())
    if not problems:
        yield {}
        return
    if not _docker_available():
        raise InfrastructureUnavailable("\n".join(str(p) for p in problems))
    with _containers() as overrides:
        yield overrides


@contextmanager
def scratch_database(label: str) -> Iterator[DatabaseSettings]:
    """A database of one test module's own (`agora_test_<label>_<random>`), as the admin role.

    For tests of the shared database plumbing that need no service schema;
    it is dropped afterwards.
    """
    from tools import bootstrap

    settings = DatabaseSettings(name=f"agora_test_{label}_{secrets.token_hex(4)}", user="postgres")
    bootstrap.ensure_database(settings, services=())
    try:
        yield settings
    finally:
        bootstrap.drop_database(settings)
