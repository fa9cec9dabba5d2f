"""Render charts/agora offline with real Helm (the helm-python-sdk wheel) for the chart tests.

No cluster and no helm binary: the wheel carries Helm v4's Go SDK as a shared
library, so what these helpers return is exactly what `helm template` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agora"
PRODUCTION_VALUES = CHART / "values-production.yaml"
RELEASE = "agora"
NAMESPACE = "agora"

Manifest = dict[str, Any]


def production_values() -> dict[str, Any]:
    """The production-like values file, as `-f charts/agora/values-production.yaml` passes it."""
    loaded: dict[str, Any] = yaml.safe_load(PRODUCTION_VALUES.read_text())
    return loaded


def render(
    values: dict[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE
) -> list[Manifest]:
    """Every object the chart renders for these values (hooks included, NOTES.txt not)."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name=release, namespace=namespace, is_install=True)
    return [
        document
        for path, text in sorted(files.items())
        if path.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """The rendered objects of one kind, by name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def component(manifest: Manifest) -> str:
    """The workload an object belongs to (its app.kubernetes.io/component label)."""
    labels: dict[str, str] = manifest["metadata"]["labels"]
    return labels["app.kubernetes.io/component"]


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    """The pod template's spec of a Deployment or Job."""
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """`helm lint --strict` of the chart with these values: {messages, errors}."""
    return helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
