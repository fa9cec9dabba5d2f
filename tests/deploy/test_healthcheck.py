"""The image's HEALTHCHECK command (tools.healthcheck) against real servers on loopback.

A real gRPC server with the standard health service and a real HTTP server
stand in for an Agora process: what is checked is the probe, the target
detection from /proc and the ports taken from the process's own settings.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from common.settings import ServiceSettings, load_settings
from common.topology import GATEWAY_PORT, SERVICES
from gateway.settings import GatewaySettings
from tools import healthcheck
from tools.stack import free_port


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None)


class _Liveness(BaseHTTPRequestHandler):
    """Answers /healthz with 200, anything else with 404."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:  # keep the test output clean
        return


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Liveness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_serving_grpc_server_is_healthy(
    grpc_health_server: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = grpc_health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    healthy, detail = healthcheck.grpc_serving(f"127.0.0.1:{port}", timeout=2)
    assert healthy, detail
    assert detail.endswith("SERVING")


def test_a_draining_grpc_server_is_unhealthy(
    grpc_health_server: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = grpc_health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    healthy, detail = healthcheck.grpc_serving(f"127.0.0.1:{port}", timeout=2)
    assert not healthy
    assert "NOT_SERVING" in detail


def test_nothing_listening_is_unhealthy_with_the_reason() -> None:
    healthy, detail = healthcheck.grpc_serving(f"127.0.0.1:{free_port()}", timeout=1)
    assert not healthy
    assert "UNAVAILABLE" in detail
    probe = healthcheck.Probe("http", "127.0.0.1", free_port())
    healthy, detail = healthcheck.http_healthy(probe, 1)
    assert not healthy
    assert "refused" in detail.lower()


def test_http_liveness_needs_a_2xx(http_server: ThreadingHTTPServer) -> None:
    port = http_server.server_address[1]
    liveness = healthcheck.Probe("http", "127.0.0.1", port)
    assert healthcheck.http_healthy(liveness, 2) == (
        True,
        f"http://127.0.0.1:{port}/healthz: HTTP 200",
    )
    healthy, detail = healthcheck.http_healthy(
        healthcheck.Probe("http", "127.0.0.1", port, "/missing"), 2
    )
    assert not healthy
    assert detail.endswith("HTTP 404")


def test_something_else_than_http_is_unhealthy(
    grpc_health_server: tuple[int, health.HealthServicer],
) -> None:
    """An HTTP probe of a gRPC port (a wrong AGORA_GATEWAY_PORT) fails with a reason."""
    port, _ = grpc_health_server
    healthy, detail = healthcheck.http_healthy(healthcheck.Probe("http", "127.0.0.1", port), 2)
    assert not healthy
    assert "not an HTTP answer" in detail


def test_a_probe_ignores_proxy_settings(
    http_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's HTTP(S)_PROXY must not send a probe of loopback through a proxy."""
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("no_proxy", "")
    probe = healthcheck.Probe("http", "127.0.0.1", http_server.server_address[1])
    assert healthcheck.http_healthy(probe, 2)[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/opt/venv/bin/python", "-m", "services.auth"], "auth"),
        (["python", "-m", "services.summarizer"], "summarizer"),
        (["python", "-m", "gateway"], "gateway"),
        (["python", "-m", "tools.migrate", "bootstrap"], None),
        (["python", "-m", "services.unknown"], None),
        (["/sbin/docker-init", "--", "python", "-m", "services.votes"], "votes"),
        (["sleep", "60"], None),
        ([], None),
    ],
)
def test_the_server_a_command_line_runs(argv: list[str], expected: str | None) -> None:
    assert healthcheck.server_in(argv) == expected


def test_the_running_server_is_found_in_proc(tmp_path: Path) -> None:
    """docker-init (or a shell) may be pid 1: the server is whichever process runs one."""
    for pid, argv in {
        1: [b"/sbin/docker-init", b"--", b"python", b"-m", b"services.posts"],
        7: [b"python", b"-m", b"services.posts"],
        9: [b"sh"],
    }.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(argv) + b"\0")
    (tmp_path / "self").mkdir()
    (tmp_path / "12").mkdir()  # a process that ended between listing and reading
    assert healthcheck.running_server(tmp_path) == "posts"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert healthcheck.running_server(empty) is None


def _settings_class(name: str) -> type[ServiceSettings]:
    """The settings class a service process loads (services/<name>/settings.py)."""
    module = importlib.import_module(f"services.{name}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    assert len(classes) == 1, classes
    return classes[0]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"AGORA_GRPC_HOST": "0.0.0.0", "AGORA_GRPC_PORT": "6000"},
        {"AGORA_GRPC_HOST": "10.1.2.3", "AGORA_GRPC_PORT": "65535"},
        {"AGORA_GRPC_HOST": "::"},
    ],
)
def test_a_service_is_probed_where_its_settings_make_it_listen(
    overrides: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The health check reads the variables itself (it must be cheap): it must agree with
    what each service's settings class makes of the same environment."""
    for name in ("AGORA_GRPC_HOST", "AGORA_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    for spec in SERVICES:
        settings = load_settings(_settings_class(spec.name))
        host = "127.0.0.1" if settings.grpc_host in ("0.0.0.0", "::") else settings.grpc_host
        assert healthcheck.probe_for(spec.name) == healthcheck.Probe(
            "grpc", host, settings.grpc_port
        )


@pytest.mark.parametrize(
    "overrides",
    [{}, {"AGORA_GATEWAY_HOST": "0.0.0.0", "AGORA_GATEWAY_PORT": "8080"}],
)
def test_the_gateway_is_probed_where_its_settings_make_it_listen(
    overrides: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AGORA_GATEWAY_HOST", "AGORA_GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(GatewaySettings)
    host = "127.0.0.1" if settings.gateway_host == "0.0.0.0" else settings.gateway_host
    assert healthcheck.probe_for("gateway") == healthcheck.Probe(
        "http", host, settings.gateway_port, "/healthz"
    )
    assert settings.gateway_port == int(overrides.get("AGORA_GATEWAY_PORT", GATEWAY_PORT))


@pytest.mark.parametrize("value", ["", "http", "-1", "70000", "0"])
def test_a_port_the_process_would_refuse_is_reported(value: str) -> None:
    with pytest.raises(ValueError, match="AGORA_GRPC_PORT"):
        healthcheck.probe_for("auth", {"AGORA_GRPC_PORT": value})


def test_an_ipv6_listen_address_is_probed_in_brackets() -> None:
    probe = healthcheck.probe_for("gateway", {"AGORA_GATEWAY_HOST": "::1"})
    assert probe.address == f"[::1]:{GATEWAY_PORT}"


def test_main_checks_the_named_target(
    grpc_health_server: tuple[int, health.HealthServicer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, servicer = grpc_health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    monkeypatch.setenv("AGORA_GRPC_HOST", "127.0.0.1")
    monkeypatch.setenv("AGORA_GRPC_PORT", str(port))
    assert healthcheck.main(["votes"]) == healthcheck.HEALTHY
    monkeypatch.setenv(healthcheck.TARGET_VARIABLE, "comments")
    assert healthcheck.main([]) == healthcheck.HEALTHY
    assert "comments healthy" in capsys.readouterr().out
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert healthcheck.main(["votes"]) == healthcheck.UNHEALTHY


def test_main_is_unhealthy_when_it_cannot_tell_what_to_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(healthcheck.TARGET_VARIABLE, raising=False)
    monkeypatch.setattr(healthcheck, "running_server", lambda: None)
    assert healthcheck.main([]) == healthcheck.UNHEALTHY
    assert "no Agora server runs here" in capsys.readouterr().out
    assert healthcheck.main(["nope"]) == healthcheck.UNHEALTHY
    assert "known: auth" in capsys.readouterr().out
    monkeypatch.setenv("AGORA_GRPC_PORT", "not-a-port")
    assert healthcheck.main(["auth"]) == healthcheck.UNHEALTHY
    assert "invalid settings" in capsys.readouterr().out
