"""docker-compose.yml, its Prometheus and Grafana files and the Dockerfile, checked offline.

No Docker engine is needed: the files are parsed (PyYAML resolves the YAML
anchors and merge keys as compose does) and compared with common/topology.py,
the one list of processes the dev launcher (tools/stack.py) also starts from.
So a process added to the topology but not to compose, a port or address that
drifts, a service without a health check or start-up condition, or a process
Prometheus does not scrape fails here. `docker compose config` is also run
when a Compose v2 CLI is installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.settings import DEVELOPMENT_CURSOR_SECRET
from common.topology import GATEWAY_PORT, SERVICES
from tools.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = [spec.name for spec in SERVICES]
INFRASTRUCTURE = ["postgres", "redis", "nats", "minio", "jaeger", "prometheus", "grafana"]
ONE_SHOT = "migrate"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|API_KEY|SIGNING_KEY", re.IGNORECASE)


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} is not a mapping"
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _env(service: dict[str, Any]) -> dict[str, Any]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment must be a mapping (anchors merge into it)"
    return environment


def test_every_process_and_piece_of_infrastructure_is_there(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {*APP_SERVICES, "gateway", ONE_SHOT, *INFRASTRUCTURE}
    assert set(services) == expected


def test_the_launcher_uses_the_topology_ports() -> None:
    """Compose is compared with topology below; this ties the dev launcher to it too."""
    stack = Stack.development(lambda _name, _line: None)
    assert stack.service_ports == {spec.name: spec.grpc_port for spec in SERVICES}
    assert stack.metrics_ports == {spec.name: spec.metrics_port for spec in SERVICES}


def test_every_agora_process_runs_from_the_one_image(services: dict[str, dict[str, Any]]) -> None:
    agora = [*APP_SERVICES, "gateway", ONE_SHOT]
    images = {services[name]["image"] for name in agora}
    builds = {json.dumps(services[name]["build"], sort_keys=True) for name in agora}
    assert len(images) == 1, images
    assert len(builds) == 1, builds
    build = services["gateway"]["build"]
    assert build["context"] == "."
    assert "BASE_IMAGE" in build["args"]


def test_commands_are_the_real_entry_points(services: dict[str, dict[str, Any]]) -> None:
    for spec in SERVICES:
        assert services[spec.name]["command"] == ["python", "-m", spec.module]
    assert services["gateway"]["command"] == ["python", "-m", "gateway"]
    assert services[ONE_SHOT]["command"][:3] == ["python", "-m", "tools.migrate"]
    for name in [*APP_SERVICES, "gateway", ONE_SHOT]:
        module = services[name]["command"][2]
        found = importlib.util.find_spec(module)
        assert found is not None, module
        if found.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__") is not None, module


def test_ports_and_addresses_agree_with_the_topology(services: dict[str, dict[str, Any]]) -> None:
    expected_addresses = {spec.name: f"{spec.name}:{spec.grpc_port}" for spec in SERVICES}
    for name in [*APP_SERVICES, "gateway", ONE_SHOT]:
        env = _env(services[name])
        assert json.loads(env["AGORA_SERVICE_ADDRESSES"]) == expected_addresses, name
    for spec in SERVICES:
        env = _env(services[spec.name])
        assert env["AGORA_GRPC_PORT"] == str(spec.grpc_port), spec.name
        assert env["AGORA_METRICS_PORT"] == str(spec.metrics_port), spec.name
    gateway = services["gateway"]
    assert _env(gateway)["AGORA_GATEWAY_PORT"] == str(GATEWAY_PORT)
    assert any(str(port).endswith(f":{GATEWAY_PORT}") for port in gateway["ports"])


def test_only_the_gateway_and_the_consoles_are_published_and_only_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway", "grafana", "prometheus", "jaeger", "minio"}
    for name in published:
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_app_services_have_health_checks_and_start_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in [*APP_SERVICES, "gateway"]:
        service = services[name]
        test = service["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "tools.healthcheck", name], name
        for setting in ("interval", "timeout", "start_period", "retries"):
            assert setting in service["healthcheck"], (name, setting)
        assert service["restart"] == "unless-stopped"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends[ONE_SHOT] == {"condition": "service_completed_successfully"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
        assert depends["nats"] == {"condition": "service_healthy"}, name
    gateway_depends = services["gateway"]["depends_on"]
    for name in [*APP_SERVICES, "redis"]:
        assert gateway_depends[name] == {"condition": "service_healthy"}, name


def test_the_migration_job_runs_once_after_postgres_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services[ONE_SHOT]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"
    assert migrate["healthcheck"] == {"disable": True}
    env = _env(migrate)
    assert env["AGORA_DB_ADMIN_USER"] == "postgres"
    # The admin password is the one Postgres was initialised with.
    assert env["AGORA_DB_ADMIN_PASSWORD"] == _env(services["postgres"])["POSTGRES_PASSWORD"]


def test_infrastructure_images_and_health(services: dict[str, dict[str, Any]]) -> None:
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["nats"]["image"].startswith("nats:2")
    assert "--jetstream" in services["nats"]["command"]
    assert services["minio"]["image"].startswith("minio/minio:")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name in INFRASTRUCTURE:
        image = services[name]["image"]
        assert ":" in image, f"{name}: pin {image}"
        assert not image.endswith(":latest"), f"{name}: pin {image}"
    for name in ("postgres", "redis", "nats", "minio", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_every_process_sends_traces_to_jaeger(services: dict[str, dict[str, Any]]) -> None:
    for name in [*APP_SERVICES, "gateway"]:
        assert _env(services[name])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name
    assert _env(services["jaeger"])["COLLECTOR_OTLP_ENABLED"] == "true"


def test_secrets_come_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    """A secret is `${VAR:-dev default}` (overridable) or passed through when set (null)."""
    for name, service in services.items():
        for key, value in _env(service).items():
            if not SECRET_NAME.search(key):
                continue
            assert value is None or re.fullmatch(r"\$\{[A-Z0-9_]+:-[^}]*\}", str(value)), (
                f"{name}: {key} must come from the environment, not be written in the file"
            )
    # The cursor secret defaults to the value production mode refuses.
    cursor = _env(services["gateway"])["AGORA_CURSOR_SECRET"]
    assert cursor == f"${{AGORA_CURSOR_SECRET:-{DEVELOPMENT_CURSOR_SECRET}}}"


def test_named_volumes_and_mounted_files_exist(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def _scrape_targets(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        job["job_name"]: [
            target for static in job.get("static_configs", []) for target in static["targets"]
        ]
        for job in config["scrape_configs"]
    }


def test_prometheus_scrapes_every_process() -> None:
    config = _load(PROMETHEUS_FILE)
    targets = _scrape_targets(config)
    expected = {f"agora-{spec.name}": [f"{spec.name}:{spec.metrics_port}"] for spec in SERVICES}
    expected["agora-gateway"] = [f"gateway:{GATEWAY_PORT}"]
    for job, job_targets in expected.items():
        assert targets.get(job) == job_targets, job
    for job in config["scrape_configs"]:
        if job["job_name"].startswith("agora-"):
            assert job.get("metrics_path", "/metrics") == "/metrics"
            # A target label `process` would clash with agora_build_info's own label.
            for static in job["static_configs"]:
                assert "process" not in static.get("labels", {}), job["job_name"]


def test_prometheus_loads_the_alert_rules(services: dict[str, dict[str, Any]]) -> None:
    config = _load(PROMETHEUS_FILE)
    mounts = dict(
        str(volume).split(":")[:2]
        for volume in services["prometheus"]["volumes"]
        if str(volume).startswith(".")
    )
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    rules_target = mounts["./charts/agora/files/prometheus/alerts.yml"]
    patterns = config["rule_files"]
    assert any(Path(rules_target).match(pattern) for pattern in patterns), patterns
    rules = _load(ROOT / "charts" / "agora" / "files" / "prometheus" / "alerts.yml")
    assert rules["groups"], "the mounted alert rules file has no groups"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    datasources = _load(GRAFANA_PROVISIONING / "datasources" / "agora.yml")["datasources"]
    prometheus = next(ds for ds in datasources if ds["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is True
    providers = _load(GRAFANA_PROVISIONING / "dashboards" / "agora.yml")["providers"]
    dashboard_dir = providers[0]["options"]["path"]
    mounts = dict(str(v).split(":")[:2] for v in services["grafana"]["volumes"])
    for kind in ("datasources", "dashboards"):
        source = f"./deploy/grafana/provisioning/{kind}"
        assert mounts[source] == f"/etc/grafana/provisioning/{kind}"
    assert mounts["./charts/agora/files/grafana"] == dashboard_dir
    dashboard = json.loads(
        (ROOT / "charts" / "agora" / "files" / "grafana" / "agora-dashboard.json").read_text()
    )
    assert dashboard["panels"], "the provisioned dashboard has no panels"
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboard_dir}/agora-dashboard.json"


# ------------------------------------------------------------------ Dockerfile


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_the_dockerfile_is_multi_stage_slim_and_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?im)^#\s*syntax\s*=", text), "no `# syntax=` line (no registry)"
    steps = _instructions(text)
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert stages == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE} AS runtime"]
    stage_starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    runtime = steps[stage_starts[-1] :]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users == ["10001:10001"]
    healthchecks = [rest for keyword, rest in runtime if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert '["python", "-m", "tools.healthcheck"]' in healthchecks[0]
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "--from=builder /src/gen ./gen" in copies


def test_pip_takes_the_ca_bundle_secret_when_given() -> None:
    steps = _instructions(DOCKERFILE.read_text())
    installs = [rest for keyword, rest in steps if keyword == "RUN" and "pip install" in rest]
    assert installs
    for install in installs:
        assert install.startswith("--mount=type=secret,id=ca_bundle")
        assert "PIP_CERT=/run/secrets/ca_bundle" in install


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    ignore = DOCKERIGNORE.read_text().splitlines()
    patterns = [line for line in ignore if line and not line.startswith("#")]
    assert patterns[0] == "*", "exclude everything, then allow what the image needs"
    allowed = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    steps = _instructions(DOCKERFILE.read_text())
    sources = {
        rest.split()[0].split("/")[0]
        for keyword, rest in steps
        if keyword == "COPY" and not rest.startswith("--from")
    }
    assert sources <= allowed, sources - allowed
    for pattern in ("**/.secrets", "**/*.pem", "**/.env"):
        assert pattern in patterns


@pytest.mark.skipif(shutil.which("docker") is None, reason="no Docker CLI")
def test_docker_compose_config_accepts_the_file() -> None:
    """Compose's own validation, where a Compose v2 CLI is installed (not in CI)."""
    version = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if version.returncode != 0:
        pytest.skip("no Compose v2 plugin")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
