"""/metrics of every process of the running stack, after a user journey through the API.

Each process is scraped as Prometheus would scrape it (services on their
metrics port, the gateway on its HTTP port), before and after one journey:
two sign-ups and sign-ins, a community, a post, a comment and a reply, votes,
reads and a summary read. The business counters must have moved by exactly
what committed; RPC, pool, outbox and consumer families must be there with
sane values; and every metric the alert rules and the dashboard use must be
one that some process really exports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from common.metrics import outcome_of
from common.topology import SERVICES
from tests.integration.gateway_support import PASSWORD, Api, Member, register
from tests.monitoring import all_queries, metric_names
from tools.stack import Stack

PROCESSES = (*(spec.name for spec in SERVICES), "gateway")
OUTBOX_SERVICES = ("communities", "posts", "comments", "votes", "summarizer")
CONSUMER_SERVICES = ("communities", "posts", "comments", "summarizer")
# Named by the rules but exported by Prometheus itself (`up`) or by the kubelet.
EXTERNAL = frozenset(
    {"up", "kubelet_volume_stats_used_bytes", "kubelet_volume_stats_capacity_bytes"}
)
# tests/conftest.py runs every service with AGORA_DB_POOL_SIZE=3 and AGORA_DB_MAX_OVERFLOW=4.
POOL_SIZE, POOL_MAX = 3, 7


@dataclass(frozen=True)
class Scrape:
    """One process's /metrics: its samples, and every metric name it declares."""

    samples: list[Sample]
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: list[Sample] = []
        names: set[str] = set()
        for family in text_string_to_metric_families(text):
            samples += family.samples
            names |= {sample.name for sample in family.samples}
            # A labelled metric that has seen nothing yet has no samples, only its type.
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_count", "_sum"),
                "summary": ("_count", "_sum"),
            }.get(family.type, ("",))
            names |= {family.name + suffix for suffix in suffixes}
        return cls(samples, frozenset(names))

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the matching samples (0 when there are none)."""
        return sum(sample.value for sample in self.find(name, **labels))

    def one(self, name: str, **labels: str) -> float:
        found = self.find(name, **labels)
        assert len(found) == 1, (name, labels, found)
        return found[0].value


async def scrape_all(stack: Stack) -> dict[str, Scrape]:
    urls = {
        name: f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics" for name in PROCESSES[:-1]
    }
    urls["gateway"] = f"{stack.gateway_url}/metrics"
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(*(client.get(url) for url in urls.values()))
    for name, answer in zip(urls, answers, strict=True):
        assert answer.status_code == 200, (name, answer.status_code)
        assert answer.headers["content-type"].startswith("text/plain"), name
    return {name: Scrape.parse(a.text) for name, a in zip(urls, answers, strict=True)}


@dataclass(frozen=True)
class Journey:
    before: dict[str, Scrape]
    after: dict[str, Scrape]


async def _profile_until_cached(http: httpx.AsyncClient, stack: Stack, username: str) -> None:
    """Read a profile until the gateway answered it from its cache once."""
    for _ in range(20):
        assert (await http.get(f"/api/v1/users/{username}")).status_code == 200
        gateway = (await scrape_all(stack))["gateway"]
        if gateway.value("agora_gateway_cache_requests_total", resource="profile", result="hit"):
            return
        await asyncio.sleep(0.1)
    pytest.fail("the profile was never served from the response cache")


@pytest.fixture(scope="module")
async def journey(stack: Stack) -> Journey:
    before = await scrape_all(stack)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        api = Api(http)
        owner: Member = await register(http, "mo")  # a registration and a login each
        voter: Member = await register(http, "mv")
        wrong = await http.post(
            "/api/v1/auth/login", json={"username": voter.username, "password": PASSWORD + "x"}
        )
        assert wrong.status_code == 401  # not a login
        community = await api.community(owner, "mc")
        await api.join(voter, community["name"])
        post = await api.post(owner, community["name"])
        top = await api.comment(voter, post["id"])
        await api.comment(owner, post["id"], "A reply", parent_id=top["id"])
        await api.vote(voter, "posts", post["id"], 1)
        await api.vote(voter, "posts", post["id"], 1)  # the same vote again: no change
        await api.vote(owner, "comments", top["id"], -1)
        await api.get(f"/api/v1/posts/{post['id']}")
        summary = await http.get(f"/api/v1/posts/{post['id']}/summary")
        assert summary.status_code < 500, summary.text
        await _profile_until_cached(http, stack, voter.username)
    return Journey(before, await scrape_all(stack))


def _delta(journey: Journey, process: str, name: str, **labels: str) -> float:
    return journey.after[process].value(name, **labels) - journey.before[process].value(
        name, **labels
    )


def test_business_counters_count_what_committed(journey: Journey) -> None:
    expected: Mapping[tuple[str, str, tuple[tuple[str, str], ...]], float] = {
        ("auth", "agora_registrations_total", ()): 2,
        ("auth", "agora_logins_total", ()): 2,
        ("communities", "agora_communities_total", ()): 1,
        ("posts", "agora_posts_total", ()): 1,
        ("comments", "agora_comments_total", (("kind", "top_level"),)): 1,
        ("comments", "agora_comments_total", (("kind", "reply"),)): 1,
        ("votes", "agora_votes_total", (("target", "post"), ("direction", "up"))): 1,
        ("votes", "agora_votes_total", (("target", "comment"), ("direction", "down"))): 1,
        ("votes", "agora_votes_total", ()): 2,
    }
    for (process, name, labels), count in expected.items():
        assert _delta(journey, process, name, **dict(labels)) == count, (process, name, labels)
    # Each counter lives only in the process that owns the change.
    owners = {name: process for process, name, _ in expected}
    for name, owner in owners.items():
        for process in PROCESSES:
            assert (name in journey.after[process].names) == (process == owner), (name, process)
    assert "agora_summaries_total" in journey.after["summarizer"].names


def test_every_process_says_who_it_is(journey: Journey) -> None:
    for process, scrape in journey.after.items():
        assert scrape.one("agora_build_info", process=process) == 1
        assert scrape.one("process_resident_memory_bytes") > 0
        assert "agora_process_memory_limit_bytes" in scrape.names, process


def test_every_service_counts_times_and_classifies_its_rpcs(journey: Journey) -> None:
    for spec in SERVICES:
        scrape = journey.after[spec.name]
        handled = [
            s
            for s in scrape.find("agora_grpc_server_handled_total")
            if f".{spec.name}.v1." in s.labels["grpc_service"]
        ]
        assert sum(s.value for s in handled) > 0, spec.name
        for sample in handled:
            assert sample.labels["outcome"] == outcome_of(sample.labels["grpc_code"]), sample
        assert scrape.value("agora_grpc_server_handling_seconds_count") > 0, spec.name
        assert all(s.value >= 0 for s in scrape.find("agora_grpc_server_in_flight")), spec.name
    gateway = journey.after["gateway"]
    calls = gateway.find("agora_grpc_client_handled_total")
    assert {s.labels["outcome"] for s in calls} >= {"ok", "client_error"}  # the wrong password
    assert all(s.labels["outcome"] == outcome_of(s.labels["grpc_code"]) for s in calls)
    assert gateway.find("agora_grpc_client_in_flight")


def test_the_gateway_measures_every_endpoint(journey: Journey) -> None:
    gateway = journey.after["gateway"]
    routes = {s.labels["route"] for s in gateway.find("agora_http_requests_total")}
    assert {"/api/v1/communities/{name}/posts", "/api/v1/posts/{post_id}/comments"} <= routes
    assert gateway.value("agora_http_requests_total", route="/api/v1/auth/login", status="401") >= 1
    assert gateway.value("agora_http_request_duration_seconds_count") > 0
    # The scrape itself is in flight while it is rendered.
    assert gateway.one("agora_http_requests_in_flight") >= 1
    assert gateway.value("agora_gateway_cache_requests_total", result="hit") > 0
    assert gateway.value("agora_gateway_cache_requests_total", result="miss") > 0


def test_every_service_reports_its_connection_pool(journey: Journey) -> None:
    for spec in SERVICES:
        scrape, pool = journey.after[spec.name], f"agora-{spec.name}"
        assert scrape.one("agora_db_pool_size", pool=pool) == POOL_SIZE
        assert scrape.one("agora_db_pool_max_connections", pool=pool) == POOL_MAX
        for gauge in ("checked_out", "idle", "overflow", "waiting"):
            assert 0 <= scrape.one(f"agora_db_pool_{gauge}", pool=pool) <= POOL_MAX, gauge
        assert scrape.one("agora_db_pool_wait_seconds_count", pool=pool) > 0
        assert scrape.one("agora_db_pool_timeouts_total", pool=pool) == 0
        assert scrape.one("agora_db_pool_connect_errors_total", pool=pool) == 0


def test_outbox_backlogs_and_consumer_lag_are_reported(journey: Journey) -> None:
    for name in OUTBOX_SERVICES:
        # Measured from the relay's first round on, whether or not it published anything.
        assert journey.after[name].one("agora_outbox_backlog", schema=name) >= 0
    for name in CONSUMER_SERVICES:
        scrape = journey.after[name]
        pending = {s.labels["consumer"]: s.value for s in scrape.find("agora_consumer_pending")}
        assert pending, name
        assert all(value >= 0 for value in pending.values()), (name, pending)
        handled = {s.labels["consumer"] for s in scrape.find("agora_events_handled_total")}
        assert handled <= set(pending), (name, handled, pending)
        for gauge in ("agora_consumer_ack_pending", "agora_consumer_redelivered"):
            assert {s.labels["consumer"] for s in scrape.find(gauge)} == set(pending), gauge
    for name in set(PROCESSES) - set(CONSUMER_SERVICES):
        assert not journey.after[name].find("agora_consumer_pending"), name


def test_the_summarizer_exports_llm_usage_and_its_cache(journey: Journey) -> None:
    summarizer = journey.after["summarizer"]
    for name in (
        "agora_llm_calls_total",
        "agora_llm_tokens_total",
        "agora_llm_cost_usd_total",
        "agora_llm_call_duration_seconds_bucket",
        "agora_summary_cache_total",
        "agora_summary_jobs_due",
    ):
        assert name in summarizer.names, name


def test_alerts_and_dashboard_use_only_exported_metrics(journey: Journey) -> None:
    exported = frozenset().union(*(scrape.names for scrape in journey.after.values()))
    assert not {name for name in EXTERNAL if name.startswith("agora_")}
    for where, expr in all_queries():
        unknown = metric_names(expr) - exported - EXTERNAL
        assert not unknown, f"{where} uses metrics no process exports: {sorted(unknown)}"
