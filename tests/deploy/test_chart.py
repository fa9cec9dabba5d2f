"""charts/agora, rendered offline by real Helm: lint, topology, hardening, policies, schema.

The chart is rendered with its default values and with the production-like
values-production.yaml. What the chart says about the processes is checked
against the code itself: common/topology.py for names and ports (the dev
launcher uses it directly, so launcher and chart cannot drift), the settings
classes for every AGORA_* variable it sets, services/*/app.py for whom each
service calls (the NetworkPolicies), tools/migrate.py for the migration command.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from pydantic_settings import BaseSettings

from common.settings import DatabaseSettings, ServiceSettings
from common.topology import GATEWAY_PORT, SERVICES
from gateway.settings import GatewaySettings
from tests.deploy.chart_support import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    Manifest,
    component,
    lint,
    of_kind,
    pod_spec,
    production_values,
    render,
)

GATEWAY = "gateway"
WORKLOADS = {spec.name for spec in SERVICES} | {GATEWAY}
UID = 10001
# Variables the chart may set that are not Agora settings: libpq's and OpenTelemetry's.
FOREIGN_VARIABLES = {"PGSSLMODE", "PGSSLROOTCERT"}


def name_of(workload: str) -> str:
    return f"{RELEASE}-{workload}"


@pytest.fixture(scope="module", params=["default", "production"])
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(None if request.param == "default" else production_values())


@pytest.fixture(scope="module")
def production() -> list[Manifest]:
    return render(production_values())


# --------------------------------------------------------------------- lint and render


@pytest.mark.parametrize("values", ["default", "production"])
def test_chart_lints_strictly_without_errors_or_warnings(values: str) -> None:
    report = lint(None if values == "default" else production_values())
    assert report["errors"] == []
    # 1 is INFO (e.g. "icon is recommended"); 2 WARNING and 3 ERROR fail --strict.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_renders_a_deployment_and_service_per_process(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    services = of_kind(manifests, "Service")
    expected = {name_of(workload) for workload in WORKLOADS}
    assert set(deployments) == expected
    assert set(services) == expected
    assert set(of_kind(manifests, "ServiceAccount")) >= expected


@pytest.mark.parametrize("release", ["forum", "a" * 53])
def test_names_stay_valid_for_any_release_name(release: str) -> None:
    """Helm allows 53-character release names; every name must remain a DNS label."""
    manifests = render(release=release)
    keys = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(keys) == len(set(keys))
    assert all(len(name) <= 63 and name[-1] != "-" for _, name in keys)
    shared = next(
        m
        for m in manifests
        if m["kind"] == "ConfigMap" and "app.kubernetes.io/component" not in m["metadata"]["labels"]
    )
    addresses = json.loads(shared["data"]["AGORA_SERVICE_ADDRESSES"])
    services = of_kind(manifests, "Service")
    for spec in SERVICES:
        host, port = addresses[spec.name].rsplit(":", 1)
        assert component(services[host]) == spec.name
        assert int(port) == spec.grpc_port


# --------------------------------------------------------------------- topology


def test_values_list_exactly_the_topology_processes_and_ports() -> None:
    with helm.Chart.load(CHART) as chart:
        services = chart.values["services"]
    assert set(services) == WORKLOADS
    for spec in SERVICES:
        assert services[spec.name]["kind"] == "grpc"
        assert services[spec.name]["port"] == spec.grpc_port
        assert services[spec.name]["metricsPort"] == spec.metrics_port
        assert services[spec.name]["database"]["user"] == spec.db_role
    assert services[GATEWAY] | {"kind": "http", "port": GATEWAY_PORT} == services[GATEWAY]


def test_the_chart_deploys_this_version_of_agora() -> None:
    """The image tag defaults to appVersion: it must be the release pyproject.toml builds."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with helm.Chart.load(CHART) as chart:
        assert chart.metadata["appVersion"] == project["version"]


def test_rendered_ports_equal_the_topology(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    services = of_kind(manifests, "Service")
    for spec in SERVICES:
        container = pod_spec(deployments[name_of(spec.name)])["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": spec.grpc_port, "metrics": spec.metrics_port}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AGORA_GRPC_PORT"] == str(spec.grpc_port)
        assert env["AGORA_METRICS_PORT"] == str(spec.metrics_port)
        service = services[name_of(spec.name)]["spec"]
        service_ports = {p["name"]: p["port"] for p in service["ports"]}
        assert service_ports == {"grpc": spec.grpc_port, "metrics": spec.metrics_port}
    gateway = pod_spec(deployments[name_of(GATEWAY)])["containers"][0]
    assert [(p["name"], p["containerPort"]) for p in gateway["ports"]] == [("http", GATEWAY_PORT)]
    gateway_ports = services[name_of(GATEWAY)]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in gateway_ports] == [("http", GATEWAY_PORT)]


def test_every_process_finds_the_others_through_the_service_addresses(
    manifests: list[Manifest],
) -> None:
    shared = of_kind(manifests, "ConfigMap")[RELEASE]["data"]
    addresses = json.loads(shared["AGORA_SERVICE_ADDRESSES"])
    assert addresses == {spec.name: f"{name_of(spec.name)}:{spec.grpc_port}" for spec in SERVICES}


def test_one_image_and_the_command_picks_the_process(manifests: list[Manifest]) -> None:
    images = set()
    for name, deployment in of_kind(manifests, "Deployment").items():
        container = pod_spec(deployment)["containers"][0]
        images.add(container["image"])
        workload = component(deployment)
        module = "gateway" if workload == GATEWAY else f"services.{workload}"
        assert container["command"] == ["python", "-m", module], name
        assert (ROOT / module.replace(".", "/") / "__main__.py").is_file(), module
    for job in of_kind(manifests, "Job").values():
        images |= {c["image"] for c in pod_spec(job)["containers"]}
    assert len(images) == 1


# --------------------------------------------------------------------- hardening


def _workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in ("Deployment", "Job")]


def test_every_workload_runs_locked_down(manifests: list[Manifest]) -> None:
    accounts = of_kind(manifests, "ServiceAccount")
    for workload in _workloads(manifests):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        assert accounts[spec["serviceAccountName"]]["automountServiceAccountToken"] is False
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert pod_security["runAsUser"] == UID
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["runAsUser"] == UID, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["privileged"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, name
            assert "emptyDir" in volumes[tmp[0]["name"]], name


def test_every_container_has_requests_and_limits(manifests: list[Manifest]) -> None:
    for workload in _workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), workload["metadata"]["name"]
            assert "memory" in resources["limits"], workload["metadata"]["name"]


def test_services_have_native_grpc_probes_and_the_gateway_http_probes(
    manifests: list[Manifest],
) -> None:
    deployments = of_kind(manifests, "Deployment")
    probes = ("startupProbe", "livenessProbe", "readinessProbe")
    for spec in SERVICES:
        container = pod_spec(deployments[name_of(spec.name)])["containers"][0]
        for probe in probes:
            assert container[probe]["grpc"] == {"port": spec.grpc_port}, (spec.name, probe)
    gateway = pod_spec(deployments[name_of(GATEWAY)])["containers"][0]
    for probe in probes:
        assert gateway[probe]["httpGet"]["port"] == "http"
        assert gateway[probe]["httpGet"]["path"] in ("/healthz", "/readyz")
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_gateway_serves_the_probed_paths() -> None:
    from gateway.routers.health import router

    paths = {route.path for route in router.routes}  # type: ignore[attr-defined]
    assert {"/healthz", "/readyz", "/metrics"} <= paths


def test_every_deployment_has_a_disruption_budget(manifests: list[Manifest]) -> None:
    budgets = of_kind(manifests, "PodDisruptionBudget")
    for name, deployment in of_kind(manifests, "Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector


def test_hpas_follow_the_design_thresholds(production: list[Manifest]) -> None:
    """../shared/spec/production-architecture.md, "Auto-Scaling Triggers"."""
    design = {
        GATEWAY: (3, 30, 60, 75, 300),
        **{spec.name: (2, 15, 70, 80, 600) for spec in SERVICES},
        "summarizer": (2, 10, 70, 80, 600),
    }
    hpas = of_kind(production, "HorizontalPodAutoscaler")
    assert set(hpas) == {name_of(workload) for workload in WORKLOADS}
    for workload, (low, high, cpu, memory, scale_down) in design.items():
        spec = hpas[name_of(workload)]["spec"]
        assert spec["scaleTargetRef"]["name"] == name_of(workload)
        targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
        assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high), workload
        assert targets["cpu"] == {"type": "Utilization", "averageUtilization": cpu}, workload
        assert targets["memory"] == {"type": "Utilization", "averageUtilization": memory}
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == scale_down
    # An autoscaled Deployment leaves the replica count to its HPA.
    assert all("replicas" not in d["spec"] for d in of_kind(production, "Deployment").values())


# --------------------------------------------------------------------- network policies


def _calls(package: Path) -> tuple[set[str], set[str]]:
    """The services a package's code opens channels to, and the constructors it calls."""
    called: set[str] = set()
    constructors: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "channel_to" and node.args and isinstance(node.args[0], ast.Constant):
                called.add(str(node.args[0].value))
            constructors.add(name)
    return called, constructors


def code_dependencies(workload: str) -> dict[str, Any]:
    """What a process reaches, read from its code (services/<name>/, gateway/)."""
    if workload == GATEWAY:
        from gateway.clients import KNOWN_UPSTREAMS

        _, made = _calls(ROOT / "gateway")
        called = {upstream.name for upstream in KNOWN_UPSTREAMS}
    else:
        called, made = _calls(ROOT / "services" / workload)
    return {
        "services": called,
        "postgres": "Database" in made,
        "redis": "open_redis" in made,
        "nats": "EventBus" in made,
    }


def _peer_components(peers: list[dict[str, Any]]) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in peers
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def _egress_ports(policy: Manifest) -> set[int]:
    return {port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])}


def test_default_deny_covers_every_pod_of_the_release(manifests: list[Manifest]) -> None:
    deny = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-default-deny"]["spec"]
    assert deny["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "agora",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny
    assert "egress" not in deny


def test_each_process_reaches_only_its_own_dependencies(manifests: list[Manifest]) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    values = {spec.name: spec for spec in SERVICES}
    for workload in WORKLOADS:
        policy = policies[name_of(workload)]
        deps = code_dependencies(workload)
        egress_to = set()
        for rule in policy["spec"]["egress"]:
            egress_to |= _peer_components(rule.get("to", []))
        assert egress_to == deps["services"], workload
        ports = _egress_ports(policy)
        assert (5432 in ports) == deps["postgres"], workload
        assert (6379 in ports) == deps["redis"], workload
        assert (4222 in ports) == deps["nats"], workload
        # Only the summarizer talks to the outside world (the LLM APIs).
        assert (443 in ports) == (workload == "summarizer"), workload
        assert 53 in ports
        for called in deps["services"]:
            assert values[called].grpc_port in ports


def test_only_the_gateway_and_callers_reach_a_service(manifests: list[Manifest]) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    callers: dict[str, set[str]] = {spec.name: set() for spec in SERVICES}
    for workload in WORKLOADS:
        for called in code_dependencies(workload)["services"]:
            callers[called].add(workload)
    for spec in SERVICES:
        rules = policies[name_of(spec.name)]["spec"]["ingress"]
        grpc_port = [{"port": spec.grpc_port, "protocol": "TCP"}]
        grpc_rules = [r for r in rules if r["ports"] == grpc_port]
        assert len(grpc_rules) == 1, spec.name
        assert _peer_components(grpc_rules[0]["from"]) == callers[spec.name]
        assert GATEWAY in callers[spec.name]
        other_ports = {p["port"] for r in rules if r is not grpc_rules[0] for p in r["ports"]}
        assert other_ports == {spec.metrics_port}, spec.name
    gateway_rules = policies[name_of(GATEWAY)]["spec"]["ingress"]
    assert {p["port"] for r in gateway_rules for p in r["ports"]} == {GATEWAY_PORT}
    assert all(
        "podSelector" not in peer or "namespaceSelector" in peer
        for r in gateway_rules
        for peer in r["from"]
    )


def test_the_migration_job_reaches_only_dns_and_postgres(manifests: list[Manifest]) -> None:
    policy = of_kind(manifests, "NetworkPolicy")[name_of("migrate")]
    assert _egress_ports(policy) == {53, 5432}
    assert "ingress" not in policy["spec"]


# --------------------------------------------------------------------- configuration


def settings_class(workload: str) -> type[BaseSettings]:
    if workload == GATEWAY:
        return GatewaySettings
    module = importlib.import_module(f"services.{workload}.settings")
    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, ServiceSettings) and cls is not ServiceSettings
    ]
    assert len(classes) == 1, workload
    return classes[0]


def variables_of(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = {prefix + field.upper() for field in cls.model_fields if field != "db"}
    if "db" in cls.model_fields:
        names |= variables_of(DatabaseSettings)
    return names


def _environment(workload: Manifest, config_maps: dict[str, Manifest]) -> set[str]:
    names: set[str] = set()
    for container in pod_spec(workload)["containers"]:
        names |= {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            names |= set(config_maps[source["configMapRef"]["name"]].get("data") or {})
    return names


def test_every_variable_the_chart_sets_is_a_real_setting(manifests: list[Manifest]) -> None:
    config_maps = of_kind(manifests, "ConfigMap")
    for workload in WORKLOADS:
        deployment = of_kind(manifests, "Deployment")[name_of(workload)]
        names = _environment(deployment, config_maps)
        agora = {n for n in names if n.startswith("AGORA_")}
        unknown = agora - variables_of(settings_class(workload))
        # AGORA_GRPC_HOST and AGORA_GATEWAY_HOST are shared; each process reads its own.
        unknown -= {"AGORA_GRPC_HOST", "AGORA_GATEWAY_HOST"}
        assert unknown == set(), workload
        assert names - agora - FOREIGN_VARIABLES <= {"OTEL_EXPORTER_OTLP_ENDPOINT"}, workload
    for job in of_kind(manifests, "Job").values():
        names = _environment(job, config_maps)
        assert names - FOREIGN_VARIABLES <= variables_of(DatabaseSettings)


SECRET_VARIABLES = {
    "AGORA_CURSOR_SECRET",
    "AGORA_DB_PASSWORD",
    "AGORA_SUMMARIZER_OPENAI_API_KEY",
    "AGORA_SUMMARIZER_ANTHROPIC_API_KEY",
    "AGORA_RATE_LIMIT_BYPASS_SECRET",
    "AGORA_AUTH_SIGNING_KEY",
}


def test_secrets_only_by_reference(manifests: list[Manifest]) -> None:
    assert of_kind(manifests, "Secret") == {}
    for config_map in of_kind(manifests, "ConfigMap").values():
        assert not SECRET_VARIABLES & set(config_map.get("data") or {})
    for workload in _workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            for variable in container.get("env", []):
                if variable["name"] in SECRET_VARIABLES:
                    assert set(variable) == {"name", "valueFrom"}, variable
                    assert "secretKeyRef" in variable["valueFrom"], variable


def test_production_reads_every_secret_it_needs(production: list[Manifest]) -> None:
    deployments = of_kind(production, "Deployment")
    for workload in WORKLOADS:
        container = pod_spec(deployments[name_of(workload)])["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert "secretKeyRef" in env["AGORA_CURSOR_SECRET"]["valueFrom"]
        assert "secretKeyRef" in env["AGORA_REDIS_URL"]["valueFrom"]
        if workload != GATEWAY:
            assert env["AGORA_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == (
                f"{workload}-password"
            )
    auth = pod_spec(deployments[name_of("auth")])
    mounts = {m["mountPath"] for m in auth["containers"][0]["volumeMounts"]}
    assert "/var/run/secrets/agora/auth" in mounts


def test_the_database_server_certificate_is_checked_in_production(
    production: list[Manifest],
) -> None:
    """libpq reads PGSSLMODE and PGSSLROOTCERT; the CA must be mounted where the latter points."""
    uses_database = [
        (workload, container)
        for workload in _workloads(production)
        for container in pod_spec(workload)["containers"]
        if any(e["name"] == "AGORA_DB_USER" for e in container["env"])
    ]
    assert len(uses_database) == 2 * len(SERVICES)  # each service, and its migration container
    for workload, container in uses_database:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PGSSLMODE"] == "verify-full"
        ca = Path(env["PGSSLROOTCERT"])
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(ca.parent)]
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert volumes[mount["name"]]["secret"]["secretName"] == "agora-postgresql-ca"


def test_a_checked_certificate_needs_its_ca() -> None:
    with pytest.raises(helm.HelmRenderError, match="caSecret"):
        render({"postgresql": {"sslMode": "verify-full"}})


def test_a_config_change_rolls_the_pods() -> None:
    def checksums(values: dict[str, Any] | None) -> set[str]:
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in of_kind(render(values), "Deployment").values()
        }

    before = checksums(None)
    after = checksums({"config": {"AGORA_TOKEN_AUDIENCE": "forum"}})
    assert before.isdisjoint(after)


def test_production_without_the_cursor_secret_refuses_to_render() -> None:
    with pytest.raises(helm.HelmRenderError, match="AGORA_CURSOR_SECRET"):
        render({"secrets": {"existingSecret": ""}})


# --------------------------------------------------------------------- migrations


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(manifests: list[Manifest]) -> None:
    jobs = of_kind(manifests, "Job")
    assert list(jobs) == [name_of("migrate")]
    job = jobs[name_of("migrate")]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "helm.sh/hook-weight" in annotations
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    account = of_kind(manifests, "ServiceAccount")[spec["serviceAccountName"]]
    # Hooks run before the release's objects exist: its ServiceAccount is an earlier hook.
    account_hook = account["metadata"]["annotations"]
    assert account_hook["helm.sh/hook"] == annotations["helm.sh/hook"]
    assert int(account_hook["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert not any("envFrom" in c for c in spec["containers"])
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == {s.name for s in SERVICES if s.owns_schema}
    for spec_ in SERVICES:
        container = containers[spec_.name]
        assert container["command"] == ["python", "-m", "tools.migrate", "upgrade", spec_.name]
        env = {e["name"]: e for e in container["env"]}
        assert env["AGORA_DB_USER"]["value"] == spec_.db_role


def test_the_migration_command_is_what_tools_migrate_accepts() -> None:
    """`upgrade <service>` is its subcommand: an unknown service is refused before connecting."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.migrate", "upgrade", "no-such-service"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "unknown service" in result.stderr


# --------------------------------------------------------------------- edge and monitoring


def test_ingress_routes_only_the_public_paths_to_the_gateway(production: list[Manifest]) -> None:
    values = production_values()["ingress"]
    ingress = of_kind(production, "Ingress")[RELEASE]["spec"]
    assert ingress["ingressClassName"] == values["className"]
    tls = values["tls"]["secretName"]
    assert ingress["tls"] == [{"hosts": [values["host"]], "secretName": tls}]
    [rule] = ingress["rules"]
    assert rule["host"] == values["host"]
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert "/api" in paths
    assert not paths & {"/", "/metrics", "/healthz", "/readyz"}
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": name_of(GATEWAY), "port": {"name": "http"}}


def test_no_ingress_or_operator_objects_by_default() -> None:
    kinds = {m["kind"] for m in render()}
    assert not kinds & {"Ingress", "ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler"}


def test_service_monitor_scrapes_every_process(production: list[Manifest]) -> None:
    monitor = of_kind(production, "ServiceMonitor")[RELEASE]["spec"]
    assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert {e["port"] for e in monitor["endpoints"]} == {"metrics", "http"}
    assert {e["path"] for e in monitor["endpoints"]} == {"/metrics"}
    scraped = set()
    for service in of_kind(production, "Service").values():
        ports = {p["name"] for p in service["spec"]["ports"]}
        if ports & {"metrics", "http"}:
            scraped.add(component(service))
    assert scraped == WORKLOADS


def test_rules_and_dashboard_are_the_files_in_the_chart(production: list[Manifest]) -> None:
    rule = of_kind(production, "PrometheusRule")[RELEASE]
    alerts = yaml.safe_load((CHART / "files/prometheus/alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    dashboard = of_kind(production, "ConfigMap")[f"{RELEASE}-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "files/grafana/agora-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["agora-dashboard.json"]) == shipped


# --------------------------------------------------------------------- values.schema.json


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"services": {"auth": {"replicas": "two"}}}, "replicas"),
        ({"services": {"auth": {"port": 70000}}}, "port"),
        ({"services": {"auth": {"kind": "rest"}}}, "kind"),
        ({"services": {"auth": {"replica": 2}}}, "replica"),
        ({"services": {"Auth_Service": {}}}, "Auth_Service"),
        ({"replicas": 2}, "replicas"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"environment": "staging"}, "environment"),
        ({"postgresql": {"sslMode": "on"}}, "sslMode"),
        ({"services": {"auth": {"env": {"lower_case": "x"}}}}, "lower_case"),
        ({"services": {"auth": {"secretEnv": {"AGORA_X": {"secretName": "s"}}}}}, "key"),
        ({"services": {"auth": {"autoscaling": {"cpuUtilization": 170}}}}, "cpuUtilization"),
        ({"services": {"auth": {"resources": {"requests": {"cpu": "lots"}}}}}, "cpu"),
        ({"redis": {"url": "http://redis:6379"}}, "url"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render(values)


def test_a_bad_values_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("services:\n  gateway:\n    replicas: two\n")
    with pytest.raises(helm.HelmValuesError, match="replicas"):
        render(yaml.safe_load(bad.read_text()))
    assert lint(yaml.safe_load(bad.read_text()))["errors"]


def test_schema_accepts_both_shipped_values_files() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(None)
        chart.validate_schema(production_values())
