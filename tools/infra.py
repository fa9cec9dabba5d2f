"""Is the shared infrastructure answering? One check per server, with the fix.

`make up` and the test harness call this first, so a stopped Postgres, Redis
or NATS gives one clear line naming the server and the command that starts
it, instead of a stack trace from the first service that tries to connect.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import redis

from common.settings import CommonSettings, DatabaseSettings

# tools/start-infra.sh holds the actual commands (CI runs the same script).
START_COMMANDS = {
    "PostgreSQL": "tools/start-infra.sh postgres",
    "Redis": "tools/start-infra.sh redis",
    "NATS": "tools/start-infra.sh nats",
}


@dataclass(frozen=True, slots=True)
class Problem:
    server: str
    error: str

    def __str__(self) -> str:
        return (
            f"{self.server} is not answering ({self.error}).\n"
            f"  Start it with: {START_COMMANDS[self.server]}"
        )


def _check_postgres(db: DatabaseSettings) -> str | None:
    try:
        with psycopg.connect(
            host=db.host,
            port=db.port,
            user=db.admin_user,
            password=db.admin_password.get_secret_value() or None,
            dbname="postgres",
            connect_timeout=3,
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]
    return None


def _check_redis(url: str) -> str | None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as error:
        return str(error)
    return None


def _check_nats(url: str) -> str | None:
    """NATS greets every client with an INFO line; JetStream must be enabled in it."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 3) as s:
            greeting = s.recv(4096).decode(errors="replace")
    except OSError as error:
        return str(error)
    if not greeting.startswith("INFO"):
        return "unexpected greeting"
    if '"jetstream":true' not in greeting.replace(" ", ""):
        return "JetStream is not enabled (start nats-server with -js)"
    return None


def check_infrastructure(settings: CommonSettings, db: DatabaseSettings) -> list[Problem]:
    checks = {
        "PostgreSQL": _check_postgres(db),
        "Redis": _check_redis(settings.redis_url.get_secret_value()),
        "NATS": _check_nats(settings.nats_url.get_secret_value()),
    }
    return [Problem(server, error) for server, error in checks.items() if error]


# ----------------------------------------------------------- cleaning up after a run
# A test run or a smoke check uses a key prefix and a stream of its own; these
# remove them again, so the machine's servers keep only the developer's data.


def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete every key under prefix (SCAN, so Redis is never blocked by KEYS)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def delete_stream(url: str, stream: str) -> None:
    """Delete a JetStream stream with its messages and consumers; a missing one is fine."""
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    async def delete() -> None:
        client = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=1)
        try:
            await client.jetstream().delete_stream(stream)
        except NotFoundError:
            pass
        finally:
            await client.close()

    asyncio.run(delete())
