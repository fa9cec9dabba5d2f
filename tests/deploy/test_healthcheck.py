"""The image's HEALTHCHECK command (tools.healthcheck) against real servers on loopback.

A real gRPC server with the standard health service and a real HTTP server
stand in for an Agora process: what is checked is the probe, the target
detection from /proc and the ports taken from the process's own settings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from common.topology import GATEWAY_PORT, SERVICES
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
    healthy, detail = healthcheck.http_healthy(f"http://127.0.0.1:{free_port()}/healthz", 1)
    assert not healthy
    assert "refused" in detail.lower()


def test_http_liveness_needs_a_2xx(http_server: ThreadingHTTPServer) -> None:
    base = f"http://127.0.0.1:{http_server.server_address[1]}"
    assert healthcheck.http_healthy(f"{base}/healthz", 2) == (True, f"{base}/healthz: HTTP 200")
    healthy, detail = healthcheck.http_healthy(f"{base}/missing", 2)
    assert not healthy
    assert detail.endswith("HTTP 404")


def test_a_probe_ignores_proxy_settings(
    http_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's HTTP(S)_PROXY must not send a probe of loopback through a proxy."""
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("no_proxy", "")
    url = f"http://127.0.0.1:{http_server.server_address[1]}/healthz"
    assert healthcheck.http_healthy(url, 2)[0]


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


def test_ports_come_from_the_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in SERVICES:
        monkeypatch.delenv("AGORA_GRPC_PORT", raising=False)
        monkeypatch.setenv("AGORA_GRPC_HOST", "0.0.0.0")
        assert healthcheck.probe_for(spec.name) == healthcheck.Probe(
            "grpc", f"127.0.0.1:{spec.grpc_port}"
        )
    monkeypatch.setenv("AGORA_GRPC_PORT", "6000")
    monkeypatch.setenv("AGORA_GRPC_HOST", "10.1.2.3")
    assert healthcheck.probe_for("auth").address == "10.1.2.3:6000"
    monkeypatch.setenv("AGORA_GATEWAY_HOST", "::")
    monkeypatch.delenv("AGORA_GATEWAY_PORT", raising=False)
    assert healthcheck.probe_for("gateway") == healthcheck.Probe(
        "http", f"http://127.0.0.1:{GATEWAY_PORT}/healthz"
    )


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
