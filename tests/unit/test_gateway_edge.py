"""The gateway edge's pure parts, without servers: rates, policy, windows, proxies,
cached documents, retries, breaker errors, settings and the routes' content types."""

from __future__ import annotations

import json
from typing import Any

import grpc
import orjson
import pytest
from fastapi.routing import APIRoute
from pydantic import ValidationError

from common.grpc_client import retry_service_config
from gateway.cache.document import Document, item_document, page_document
from gateway.client_address import TrustedProxies, parse_networks
from gateway.clients import UPSTREAMS
from gateway.deps import require_json_body
from gateway.docs import docs_csp, inline_script_hashes
from gateway.problems import rpc_error_problem
from gateway.ratelimit.policy import ROUTE_LIMITS, Limit, LimitPolicy, client_subject
from gateway.ratelimit.rates import Rate, parse_rate
from gateway.ratelimit.windows import LocalWindows, Usage, Verdict
from gateway.routers import ROUTERS
from gateway.schemas.paging import page_payload
from gateway.settings import GatewaySettings
from gateway.upstream_breakers import circuit_open_error

# Rates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/minute", Rate(100, 60)),
        ("10/hour", Rate(10, 3600)),
        ("50/day", Rate(50, 86400)),
        ("5 / 30s", Rate(5, 30)),
        ("3/2m", Rate(3, 120)),
        ("1/second", Rate(1, 1)),
        ("off", None),
    ],
)
def test_rates_read_as_written(text: str, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["100", "100/fortnight", "0/minute", "-1/minute", "5/2d", "x/m"])
def test_nonsense_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"rate|count"):
        parse_rate(text)


def test_settings_take_rates_and_refuse_bad_edge_values() -> None:
    settings = GatewaySettings(rate_limit_anonymous="30/minute", rate_limit_votes="off")
    assert settings.rate_limit_anonymous == Rate(30, 60)
    assert settings.rate_limit_votes is None
    assert GatewaySettings().rate_limit_user == Rate(100, 60)
    assert GatewaySettings(rate_limit_bypass_secret="").rate_limit_bypass_secret is None
    for bad in (
        {"rate_limit_auth": "5 a minute"},
        {"rate_limit_bypass_secret": "too-short"},
        {"trusted_proxies": "10.0.0.0/8,not-an-ip"},
    ):
        with pytest.raises(ValidationError):
            GatewaySettings(**bad)


# Policy ---------------------------------------------------------------------------------


def _policy() -> LimitPolicy:
    return LimitPolicy.from_settings(GatewaySettings())


def _names(policy: LimitPolicy, method: str, path: str, user: str | None) -> list[str]:
    return [c.key for c in policy.checks(method, path, user_id=user, host="198.51.100.7")]


def test_every_request_counts_against_its_user_or_its_address() -> None:
    policy = _policy()
    assert _names(policy, "GET", "/api/v1/posts", None) == ["anonymous:198.51.100.7"]
    assert _names(policy, "GET", "/api/v1/posts", "u1") == ["user:u1"]
    assert _names(policy, "GET", "/healthz", None) == []
    assert _names(policy, "POST", "/api/v1/auth/login", None) == [
        "anonymous:198.51.100.7",
        "auth:198.51.100.7",
    ]
    assert _names(policy, "POST", "/api/v1/communities/python/posts", "u1") == [
        "user:u1",
        "posts:u1",
    ]
    assert _names(policy, "GET", "/api/v1/communities/python/posts", "u1") == ["user:u1"]
    assert _names(policy, "PUT", "/api/v1/comments/c1/vote", "u1") == [
        "user:u1",
        "votes:u1",
        "votes_ip:198.51.100.7",
    ]
    # Per-user limits need a user; the route refuses the request with 401 anyway.
    assert _names(policy, "PUT", "/api/v1/posts/p1/vote", None) == [
        "anonymous:198.51.100.7",
        "votes_ip:198.51.100.7",
    ]


def test_the_route_table_names_real_routes() -> None:
    routes = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    for methods, template, _ in ROUTE_LIMITS:
        for method in methods:
            assert (method, template) in routes, (method, template)


def test_limits_can_be_turned_off_one_by_one_or_all() -> None:
    assert not LimitPolicy.from_settings(GatewaySettings(rate_limits_enabled=False))
    policy = LimitPolicy.from_settings(GatewaySettings(rate_limit_votes_per_ip="off"))
    assert "votes_ip" not in policy.limits
    assert _names(policy, "PUT", "/api/v1/posts/p/vote", "u") == ["user:u", "votes:u"]


@pytest.mark.parametrize(
    ("host", "subject"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64(host: str, subject: str) -> None:
    assert client_subject(host) == subject


# Trusted proxies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.2", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the left was the client's
        ("10.0.0.2", "203.0.113.9, 10.0.0.7", "203.0.113.9"),  # through two of our hops
        ("10.0.0.2", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # all ours: the farthest
        ("10.0.0.2", "garbage, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "203.0.113.9, garbage", "10.0.0.2"),  # a broken hop is not believed
        ("10.0.0.2", "[2001:db8::1]:4711", "2001:db8::1"),
        ("10.0.0.2", "203.0.113.9:4711", "203.0.113.9"),
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),  # an untrusted peer's header is ignored
    ],
)
def test_the_client_is_the_rightmost_untrusted_hop(peer: str, forwarded: str, client: str) -> None:
    proxies = TrustedProxies(parse_networks(["10.0.0.0/8"]))
    assert proxies.client_of(peer, forwarded) == client


# Windows ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_local_window_admits_exactly_the_limit_and_slides() -> None:
    clock = Clock()
    windows = LocalWindows(clock=clock)
    limit = Limit("auth", Rate(5, 60), "ip", local_fallback=True)
    check = LimitPolicy([limit]).checks("POST", "/api/v1/auth/login", user_id=None, host="a")
    verdicts = []
    for _ in range(6):
        verdicts.append(windows.hit(check))
        clock.now += 1
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert verdicts[4].tightest.remaining == 0
    assert verdicts[5].retry_after_seconds == 55  # the first leaves at 160, it is 105 now
    clock.now = 160.0
    assert windows.hit(check).allowed
    assert not windows.hit(check).allowed


def test_the_local_window_forgets_the_least_recently_seen_clients() -> None:
    windows = LocalWindows(max_keys=2, clock=Clock())
    policy = LimitPolicy([Limit("auth", Rate(1, 60), "ip")])
    for host in ("a", "b", "c", "a"):
        assert windows.hit(policy.checks("GET", "/api/v1/auth/x", user_id=None, host=host)).allowed


def test_a_verdict_reports_the_tightest_limit() -> None:
    loose = Usage(Limit("user", Rate(100, 60), "user"), used=10, reset_seconds=50)
    tight = Usage(Limit("posts", Rate(10, 3600), "user"), used=9, reset_seconds=3000)
    assert Verdict(True, (loose, tight)).tightest is tight
    full = Usage(Limit("posts", Rate(10, 3600), "user"), used=10, reset_seconds=2999.2)
    assert Verdict(False, (loose, full)).retry_after_seconds == 3000


# Cached documents -------------------------------------------------------------------------


def _post(index: int) -> dict[str, Any]:
    return {"id": f"p{index}", "title": f"t\u00e9 {index}", "score": index, "url": None}


def test_a_page_document_is_the_page_and_personalises_like_encoding() -> None:
    items = [_post(i) for i in range(4)]
    document = page_document(items, "next")
    assert document.body == orjson.dumps(page_payload(items, "next"))
    votes = {"p0": b"1", "p1": b"0", "p2": b"-1", "p3": b"0"}
    mine = [{**item, "my_vote": int(votes[item["id"]])} for item in items]
    assert document.personalise("my_vote", votes) == orjson.dumps(page_payload(mine, "next"))
    stored = Document.from_stored(
        document.body, document.stored_offsets.encode(), document.stored_ids.encode()
    )
    assert stored == document


def test_empty_pages_and_single_items() -> None:
    empty = page_document([], None)
    assert empty.body == b'{"items":[],"next_cursor":null}'
    assert empty.personalise("my_vote", {}) == empty.body
    item = item_document({"id": "c1", "name": "python"}, personal_id="c1")
    assert json.loads(item.personalise("is_member", {"c1": b"true"})) == {
        "id": "c1",
        "name": "python",
        "is_member": True,
    }
    profile = item_document({"id": "u1"}, personal_id=None)
    assert profile.personalise("my_vote", {}) == b'{"id":"u1"}'


# Upstream calls ---------------------------------------------------------------------------


def test_only_reads_are_retried_and_only_when_unavailable() -> None:
    for upstream in UPSTREAMS:
        config = json.loads(retry_service_config(list(upstream.services)))
        retried = {
            entry["method"]
            for method_config in config["methodConfig"]
            for entry in method_config["name"]
        }
        for service in upstream.services:
            for method in service.methods:
                is_read = method.name.startswith(("Get", "BatchGet", "List", "Search"))
                assert (method.name in retried) is is_read, (upstream.name, method.name)
        for method_config in config["methodConfig"]:
            policy = method_config["retryPolicy"]
            assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
            assert policy["maxAttempts"] <= 3
            assert policy["backoffMultiplier"] > 1


def test_an_open_circuit_is_a_503_with_the_time_left() -> None:
    error = circuit_open_error("posts", 7.2)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    response = rpc_error_problem(error, instance="/x")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "8"
    assert b"posts" not in response.body  # which upstream failed is not the client's business


# Content types ----------------------------------------------------------------------------


def test_every_route_with_a_body_demands_json() -> None:
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute) or route.body_field is None:
                continue
            calls = {dependency.call for dependency in route.dependant.dependencies}
            assert require_json_body in calls, route.path


# The docs page's policy -------------------------------------------------------------------


def test_the_docs_policy_allows_exactly_its_inline_scripts() -> None:
    html = "<script src='x'></script><script>alert(1)</script><p/><script>go()</script>"
    hashes = inline_script_hashes(html)
    assert len(hashes) == 2
    policy = docs_csp(html)
    assert all(h in policy for h in hashes)
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy
