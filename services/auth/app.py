"""Wiring of the auth process: build settings-driven resources once, at start-up.

`build` is what common.grpc_server.run_service calls. Everything it opens is
registered on runtime.resources, which closes them in reverse order after the
gRPC server has drained.
"""

from __future__ import annotations

import asyncio
import logging

from agora.auth.v1 import auth_pb2, auth_pb2_grpc

from common.db import Database
from common.grpc_server import ServiceRuntime
from common.redis_client import open_redis
from common.revocation import RevocationList
from common.topology import service
from services.auth import domain
from services.auth.keys import load_key_set
from services.auth.server import AuthServicer
from services.auth.service import AuthService, TokenPolicy
from services.auth.settings import AuthSettings

log = logging.getLogger("agora.auth")

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
# Revocation writes are single small commands: fail fast when Redis is away
# rather than holding a logout for the default (unbounded) socket timeout.
REDIS_TIMEOUT_SECONDS = 2.0


async def build(runtime: ServiceRuntime[AuthSettings]) -> None:
    settings = runtime.settings
    # Keys first: a missing or bad key must stop the process before it serves anything.
    keys = load_key_set(settings)

    db = Database(settings.db, role=service("auth").db_role, application_name="agora-auth")
    runtime.resources.push_async_callback(db.dispose)
    redis = open_redis(settings, timeout_seconds=REDIS_TIMEOUT_SECONDS)
    runtime.resources.push_async_callback(redis.aclose)

    dummy_hash = await asyncio.to_thread(domain.dummy_password_hash, settings.auth_bcrypt_rounds)
    auth = AuthService(
        db=db,
        revocations=RevocationList(redis, settings.redis_key_prefix),
        keys=keys,
        policy=TokenPolicy(
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            access_ttl_seconds=settings.auth_access_token_ttl_seconds,
            refresh_ttl_seconds=settings.auth_refresh_token_ttl_seconds,
            bcrypt_rounds=settings.auth_bcrypt_rounds,
        ),
        dummy_password_hash=dummy_hash,
    )
    runtime.add_servicer(
        SERVICE_NAME, auth_pb2_grpc.add_AuthServiceServicer_to_server, AuthServicer(auth)
    )

    interval = settings.auth_token_purge_interval_seconds
    if interval > 0:

        async def purge_expired_tokens() -> None:
            while True:
                try:
                    await auth.purge_expired_tokens()
                except Exception:
                    # Housekeeping must never take the service down; try again next round.
                    log.exception("purging expired refresh tokens failed")
                await asyncio.sleep(interval)

        runtime.add_background(purge_expired_tokens)
    log.info("auth keys loaded", extra={"kid": keys.kid})
