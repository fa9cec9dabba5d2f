"""The alert rules and the Grafana dashboard, read the way Prometheus and Grafana read them.

Queries are parsed by a real PromQL parser (promql-parser), so a typo in a
rule or a panel fails the tests instead of an on-call night, and the metric
names they use come from the syntax tree, not from guessing at the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS_FILE = ROOT / "charts" / "agora" / "files" / "prometheus" / "alerts.yml"
DASHBOARD_FILE = ROOT / "charts" / "agora" / "files" / "grafana" / "agora-dashboard.json"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

# Grafana's interval variables, as a panel would see them over a 6-hour range.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}
_CHILDREN = ("lhs", "rhs", "expr", "param", "vector_selector")


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of every group in alerts.yml."""
    document = yaml.safe_load(ALERTS_FILE.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return result


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables filled in) of every panel target."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", ()):
            expr = target["expr"]
            for variable, value in _GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            yield panel["title"], expr


def all_queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every alert and every dashboard panel."""
    for rule in alert_rules():
        yield f"alert {rule['alert']}", rule["expr"]
    for title, expr in dashboard_queries():
        yield f"panel {title!r}", expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (raises ValueError if it does not parse)."""
    names: set[str] = set()
    pending: list[Any] = [promql_parser.parse(expr)]
    while pending:
        node = pending.pop()
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            continue
        if isinstance(node, promql_parser.Call):
            pending.extend(node.args)
            continue
        pending.extend(
            child for attr in _CHILDREN if (child := getattr(node, attr, None)) is not None
        )
    return names


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown document."""
    anchors = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line):
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors
