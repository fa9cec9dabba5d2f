"""alerts.yml and the Grafana dashboard: well-formed, parseable, and covering the design.

That every metric they name is really exported is proven against the running
stack in tests/integration/test_metrics.py.
"""

from __future__ import annotations

import re

import pytest

from tests.monitoring import (
    OPERATIONS_DOC,
    alert_rules,
    all_queries,
    dashboard,
    heading_anchors,
    metric_names,
)

DURATION = re.compile(r"\d+[smhd]")
ALERT_NAME = re.compile(r"Agora[A-Z][A-Za-z0-9]+")
RUNBOOK = re.compile(r"docs/operations\.md#(?P<anchor>[a-z0-9-]+)")

# The design's alerting strategy, failure table and checklist, as rules
# (../shared/spec/production-architecture.md; see docs/architecture.md).
REQUIRED = {
    "critical": {
        "AgoraHighErrorRate",  # service downtime (>5% errors)
        "AgoraServiceHighErrorRate",
        "AgoraServiceDown",
        "AgoraDatabaseUnreachable",  # database primary fails
        "AgoraDatabasePoolExhausted",
        "AgoraCacheHitRateLow",  # cache hit rate < 50%
        "AgoraLLMFailureRateHigh",  # LLM API failures > 20%
    },
    "warning": {
        "AgoraHighLatency",  # p95 > 1 s
        "AgoraServiceHighLatency",
        "AgoraMemoryHigh",  # memory > 90%
        "AgoraVolumeFillingUp",  # disk > 80%
        "AgoraTrafficAnomaly",  # abnormal traffic patterns
        "AgoraRateLimitedTrafficHigh",
        "AgoraInstanceDown",  # single instance crashes
        "AgoraProcessRestarting",
        "AgoraRedisUnavailable",  # Redis fails
        "AgoraCircuitBreakerOpen",  # LLM API outage: fallback in use
        "AgoraOutboxBacklog",
        "AgoraOutboxRelayFailing",
        "AgoraConsumerLag",
        "AgoraEventsDeadLettered",
        "AgoraSummaryQueueDeep",  # AI workers' queue depth
        "AgoraSummariesFailing",
        "AgoraDatabasePoolSaturated",
    },
}


def test_every_rule_is_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        name = rule["alert"]
        assert ALERT_NAME.fullmatch(name), name
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert DURATION.fullmatch(str(rule["for"])), (name, rule.get("for"))
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        runbook = RUNBOOK.fullmatch(annotations["runbook_url"])
        assert runbook, (name, annotations["runbook_url"])
        # One playbook per alert, under a heading named like the alert.
        assert runbook["anchor"] == name.lower(), (name, runbook["anchor"])


def test_rules_cover_the_designs_alerts() -> None:
    by_severity: dict[str, set[str]] = {"critical": set(), "warning": set()}
    for rule in alert_rules():
        by_severity[rule["labels"]["severity"]].add(rule["alert"])
    for severity, required in REQUIRED.items():
        assert required <= by_severity[severity], (severity, required - by_severity[severity])


@pytest.mark.parametrize(("where", "expr"), list(all_queries()))
def test_every_query_parses(where: str, expr: str) -> None:
    try:
        names = metric_names(expr)
    except ValueError as error:
        pytest.fail(f"{where}: {error}\n{expr}")
    assert names, f"{where} selects no metric"


def test_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] == "agora-overview"
    assert board["title"] == "Agora"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    shown = set().union(*(metric_names(expr) for _, expr in all_queries()))
    for name in (
        "agora_http_requests_total",
        "agora_http_request_duration_seconds_bucket",
        "agora_grpc_server_handled_total",
        "agora_grpc_server_handling_seconds_bucket",
        "agora_grpc_client_handled_total",
        "agora_db_pool_checked_out",
        "agora_db_pool_wait_seconds_bucket",
        "agora_gateway_cache_requests_total",
        "agora_summary_cache_total",
        "agora_outbox_backlog",
        "agora_consumer_pending",
        "agora_registrations_total",
        "agora_logins_total",
        "agora_posts_total",
        "agora_comments_total",
        "agora_votes_total",
        "agora_communities_total",
        "agora_summaries_total",
        "agora_llm_tokens_total",
        "agora_llm_cost_usd_total",
    ):
        assert name in shown, name


@pytest.mark.skipif(not OPERATIONS_DOC.exists(), reason="docs/operations.md not written yet")
def test_every_runbook_link_has_its_playbook() -> None:
    anchors = heading_anchors(OPERATIONS_DOC.read_text())
    missing = sorted(
        rule["alert"]
        for rule in alert_rules()
        if rule["annotations"]["runbook_url"].split("#", 1)[1] not in anchors
    )
    assert not missing, f"docs/operations.md has no heading for {missing}"
