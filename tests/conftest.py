"""The test harness: a whole Agora stack per test run, on the machine's real servers.

Each run gets its own database (`agora_test_<run>`, with the per-service roles
and schemas, migrated by Alembic), its own Redis key prefix and free ports for
every process, so runs never see each other's data and can run side by side.
Services and the gateway are real subprocesses started through the same
`tools.stack.Stack` that `make up` uses; their output goes to
`.run/tests/<run>/stack.log`. Tracing is on in every process, exporting to a
receiver in this process (tests/otlp_receiver.py); tests read the traces they
start. Everything is removed again at the end.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.settings import CommonSettings, DatabaseSettings
from tests.fake_llm import FakeLLM
from tests.infrastructure import InfrastructureUnavailable, running_infrastructure
from tests.otlp_receiver import OtlpReceiver
from tools import bootstrap
from tools.infra import delete_redis_keys, delete_stream
from tools.stack import RUN_DIR, FileSink, Stack

RUN_ID = uuid.uuid4().hex[:12]
STACK_LOG = RUN_DIR / "tests" / RUN_ID / "stack.log"


def _signing_key_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


# The suite shares one gateway and sends everything from 127.0.0.1, so the real
# limits (20 anonymous requests a minute per IP, 5 to /auth) would throttle it.
# The limits are tested at their numbers against gateways of their own
# (tests/integration/test_gateway_edge_limits.py).
UNTHROTTLED = {
    f"AGORA_RATE_LIMIT_{name}": "100000/minute"
    for name in ("USER", "ANONYMOUS", "AUTH", "POSTS", "VOTES", "VOTES_PER_IP")
}


def _base_env(db_name: str, redis_prefix: str, overrides: dict[str, str]) -> dict[str, str]:
    # Start from the machine's environment minus any AGORA_* or OTEL_* a developer exported.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "OTEL_"))}
    env.update(overrides)
    env.update(
        {
            "AGORA_ENVIRONMENT": "test",
            "AGORA_LOG_LEVEL": "INFO",
            **UNTHROTTLED,
            "AGORA_DB_NAME": db_name,
            # Small pools: several suites may share the machine's 100 connections.
            "AGORA_DB_POOL_SIZE": "3",
            "AGORA_DB_MAX_OVERFLOW": "4",
            "AGORA_REDIS_KEY_PREFIX": redis_prefix,
            "AGORA_NATS_STREAM": f"AGORA_TEST_{RUN_ID}",
            "AGORA_NATS_SUBJECT_PREFIX": f"agoratest{RUN_ID}.",
            "AGORA_AUTH_SIGNING_KEY": _signing_key_pem(),
            # Summaries within seconds and a crashed worker's jobs back soon.
            "AGORA_SUMMARIZER_DEBOUNCE_SECONDS": "1",
            "AGORA_SUMMARIZER_MAX_DELAY_SECONDS": "5",
            "AGORA_SUMMARIZER_MIN_NEW_COMMENTS": "3",
            "AGORA_SUMMARIZER_LEASE_SECONDS": "5",
            "AGORA_SUMMARIZER_EVENT_ACK_WAIT_SECONDS": "3",
        }
    )
    return env


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[dict[str, str]]:
    """AGORA_* overrides that point the run at working servers (see tests/infrastructure.py).

    They are also put into this process's environment for the session, so every
    settings object the tests build sees the same servers as the stack.
    """
    try:
        with running_infrastructure() as overrides:
            saved = {key: os.environ.get(key) for key in overrides}
            os.environ.update(overrides)
            try:
                yield overrides
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
    except InfrastructureUnavailable as problems:
        pytest.fail(str(problems), pytrace=False)


@pytest.fixture(scope="session")
def db_settings(infrastructure: dict[str, str]) -> DatabaseSettings:
    settings = DatabaseSettings(name=f"agora_test_{RUN_ID}")
    _remove_leftovers_of_killed_runs(settings)
    return settings


KEEP_LOG_DIRS = 10
STALE_DATABASE_SECONDS = 3600


def _remove_leftovers_of_killed_runs(settings: DatabaseSettings) -> None:
    """A run killed hard cannot clean up; the next one drops what it left.

    Only test databases older than an hour go, so runs side by side are safe;
    of the log folders the newest few stay for reading.
    """
    import psycopg

    with psycopg.connect(
        host=settings.host,
        port=settings.port,
        user=settings.admin_user,
        password=settings.admin_password.get_secret_value() or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        stale = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'agora\\_test\\_%%' "
            # missing_ok: a concurrent run may drop its database meanwhile.
            "AND now() - (pg_stat_file('base/' || oid || '/PG_VERSION', true)).modification "
            "> make_interval(secs => %s)",
            (STALE_DATABASE_SECONDS,),
        ).fetchall()
    for (name,) in stale:
        bootstrap.drop_database(settings.model_copy(update={"name": name}))
    log_dirs = sorted(
        (p for p in (RUN_DIR / "tests").glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime
    )
    for old in log_dirs[:-KEEP_LOG_DIRS]:
        shutil.rmtree(old, ignore_errors=True)


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """The session stack's OpenAI and Anthropic: one local fake server playing both.

    Tests that script failures must `reset()` it when done (see test_summarizer.py).
    """
    with FakeLLM() as fake:
        yield fake


def _summarizer_env(fake: FakeLLM) -> dict[str, str]:
    """Both remote providers configured (as in production) and pointed at the fake."""
    return {
        "AGORA_SUMMARIZER_OPENAI_API_KEY": "sk-test-openai-not-a-real-key",
        "AGORA_SUMMARIZER_OPENAI_BASE_URL": fake.openai_base_url,
        "AGORA_SUMMARIZER_ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key",
        "AGORA_SUMMARIZER_ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        # Failures found out in seconds, breakers that close again within a test.
        "AGORA_SUMMARIZER_PROVIDER_TIMEOUT_SECONDS": "2",
        "AGORA_SUMMARIZER_RETRY_INITIAL_SECONDS": "0.05",
        "AGORA_SUMMARIZER_RETRY_MAX_SECONDS": "0.2",
        "AGORA_SUMMARIZER_BREAKER_OPEN_SECONDS": "1",
    }


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Where every process of the session's stack exports its spans (see tests/otlp_receiver.py)."""
    with OtlpReceiver() as receiver:
        yield receiver


def _tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    """Tracing on in every process, exporting within a fraction of a second.

    Every request of the suite runs through the instrumentation and logs its
    trace ids, but only the traces a test starts (a sampled `traceparent`) are
    recorded and exported: the others start unsampled (parent-based sampling,
    ratio 0 at the root). Recording every request of the suite cost the stack's
    processes about a third more CPU, which this two-core machine cannot spare.
    """
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",
    }


@pytest.fixture(scope="session")
def stack(
    infrastructure: dict[str, str],
    db_settings: DatabaseSettings,
    fake_llm: FakeLLM,
    otlp_receiver: OtlpReceiver,
) -> Iterator[Stack]:
    """Every service and the gateway, running against this run's database."""
    redis_prefix = f"agora-test-{RUN_ID}:"
    overrides = {**infrastructure, **_summarizer_env(fake_llm), **_tracing_env(otlp_receiver)}
    env = _base_env(db_settings.name, redis_prefix, overrides)
    common = CommonSettings()
    bootstrap.ensure_database(db_settings)
    sink = FileSink(STACK_LOG)
    stack = Stack.on_free_ports(env, sink)
    try:
        bootstrap.migrate(db_settings)
        stack.start_all()
    except Exception:
        stack.stop_all(grace=2)
        sink.close()
        bootstrap.drop_database(db_settings)
        raise
    try:
        yield stack
    finally:
        stack.stop_all()
        sink.close()
        bootstrap.drop_database(db_settings)
        delete_redis_keys(common.redis_url.get_secret_value(), redis_prefix)
        delete_stream(common.nats_url.get_secret_value(), env["AGORA_NATS_STREAM"])


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the running gateway."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        yield client


@pytest.fixture
async def redis_client(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(CommonSettings().redis_url.get_secret_value())
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def stack_log(stack: Stack) -> Path:
    """The file every line the session stack's processes print goes to, prefixed by process."""
    return STACK_LOG


@pytest.fixture(scope="session")
def redis_key_prefix(stack: Stack) -> str:
    return stack.env["AGORA_REDIS_KEY_PREFIX"]
