"""Every service process offers what operators rely on: health, reflection,
metrics, and a database role that can touch only its own schema."""

from __future__ import annotations

import grpc
import httpx
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from common.settings import DatabaseSettings
from common.topology import SERVICES
from tools.stack import Stack

SERVICE_NAMES = [spec.name for spec in SERVICES]


@pytest.mark.parametrize("name", SERVICE_NAMES)
async def test_health_reports_serving(stack: Stack, name: str) -> None:
    async with grpc.aio.insecure_channel(stack.address(name)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=2)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("name", SERVICE_NAMES)
async def test_reflection_lists_the_service(stack: Stack, name: str) -> None:
    async with grpc.aio.insecure_channel(stack.address(name)) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        services: list[str] = []
        async for answer in stub.ServerReflectionInfo(iter([request]), timeout=2):
            services += [s.name for s in answer.list_services_response.service]
    assert f"agora.{name}.v1.{name.capitalize()}Service" in services
    assert "grpc.health.v1.Health" in services


@pytest.mark.parametrize("name", SERVICE_NAMES)
async def test_metrics_count_rpcs(stack: Stack, name: str) -> None:
    async with grpc.aio.insecure_channel(stack.address(name)) as channel:
        # An unknown method is answered by gRPC itself; a known one is counted.
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await channel.unary_unary(f"/agora.{name}.v1.Nope/Nothing")(b"", timeout=2)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics")).text
    assert "agora_grpc_server_handled_total" in text
    assert "process_cpu_seconds_total" in text


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_role_is_confined_to_its_schema(db_settings: DatabaseSettings, name: str) -> None:
    role = f"agora_{name}"
    with psycopg.connect(
        host=db_settings.host,
        port=db_settings.port,
        dbname=db_settings.name,
        user=role,
        autocommit=True,
    ) as conn:
        flags = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        assert flags == (False, False, False)
        owned = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE pg_get_userbyid(nspowner) = %s", (role,)
        ).fetchall()
        assert owned == [(name,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.sneaky (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE SCHEMA sneaky")
        # Another service's schema (where there is one) is closed to this role.
        for other in SERVICE_NAMES:
            if other != name:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f'CREATE TABLE "{other}".sneaky (id int)')


def test_the_database_is_closed_to_other_roles(db_settings: DatabaseSettings) -> None:
    with psycopg.connect(
        host=db_settings.host, port=db_settings.port, dbname="postgres", user="postgres"
    ) as admin:
        admin.autocommit = True
        admin.execute("DROP ROLE IF EXISTS agora_test_outsider")
        admin.execute("CREATE ROLE agora_test_outsider LOGIN")
        try:
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                psycopg.connect(
                    host=db_settings.host,
                    port=db_settings.port,
                    dbname=db_settings.name,
                    user="agora_test_outsider",
                ).close()
        finally:
            admin.execute("DROP ROLE agora_test_outsider")


def test_the_migrations_cli_bootstraps_and_migrates_a_database(
    db_settings: DatabaseSettings,
) -> None:
    import os
    import subprocess
    import sys
    import uuid

    from tools import bootstrap

    scratch = db_settings.model_copy(update={"name": f"agora_test_cli_{uuid.uuid4().hex[:8]}"})
    env = {**os.environ, "AGORA_DB_NAME": scratch.name}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tools.migrate", "bootstrap", "auth"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        with psycopg.connect(
            host=scratch.host, port=scratch.port, dbname=scratch.name, user="agora_auth"
        ) as conn:
            version = conn.execute("SELECT version_num FROM auth.alembic_version").fetchone()
        assert version is not None
        unknown = subprocess.run(
            [sys.executable, "-m", "tools.migrate", "upgrade", "no_such_service"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert unknown.returncode == 2
        assert "unknown service" in unknown.stderr
    finally:
        bootstrap.drop_database(scratch)
