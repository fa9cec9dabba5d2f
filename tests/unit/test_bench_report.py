"""The benchmark's parsing and verdicts (bench.harness.wrk, bench.report), on made-up figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import report
from bench.harness import wrk
from bench.harness.measure import percentile

WRK_OUTPUT = (
    "Running 5s test @ http://127.0.0.1:5000\n"
    'WRK_JSON {"duration_us": 5000000, "requests": 10000, "bytes": 123, '
    '"errors": {"connect": 0, "read": 1, "write": 0, "status": 2, "timeout": 0}, '
    '"latency_us": {"min": 100, "mean": 2000.0, "max": 90000, "stdev": 10.0, '
    '"p50": 1500, "p90": 4000, "p95": 5000, "p99": 9000, "p999": 20000}, '
    '"statuses": {"200": 9998, "503": 2}}\n'
)


def _load(
    rps: float, p95: float, errors: int = 0, cpu: dict[str, float] | None = None
) -> dict[str, Any]:
    return {
        "rps": rps,
        "seconds": 10.0,
        "requests": int(rps * 10),
        "errors": errors,
        "statuses": {"200": int(rps * 10)},
        "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 2, "mean": p95 / 2, "max": p95 * 3},
        "cpu_cores": cpu or {},
    }


def _results(**changes: Any) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": "2026-01-01T00:00:00+00:00",
        "options": {
            "scale": 1.0,
            "database": "agora_bench",
            "seconds": 10,
            "warmup_seconds": 3,
            "connections": 64,
        },
        "machine": {},
        "dataset": {"sizes": {"posts": 100}},
        "commands": {"listing_cached": "wrk ..."},
        "baselines": {"bare_fastapi": _load(4000, 20), "pgbench_listing": _load(3000, 30)},
        "scenarios": {
            "listing_cached": _load(2500, 30, cpu={"gateway": 0.9}),
            "listing_uncached": _load(300, 40),
            "post_page": _load(50, 80),
            "vote": _load(1200, 45, errors=1),
        },
        "checks": [{"name": "tallies = votes rows", "violations": 0, "settled_after_s": 0.5}],
        "explain": [
            {
                "name": "posts hot",
                "execution_ms": 0.1,
                "median_ms": 0.5,
                "p95_ms": 0.9,
                "max_ms": 2.0,
                "served_by_indexes": True,
                "seq_scans": [],
                "listing": True,
                "sql": "SELECT 1",
                "plan": "Index Scan",
            },
            {
                "name": "posts search",
                "execution_ms": 25.0,
                "server_p95_ms": 30.0,
                "median_ms": 15.0,
                "p95_ms": 30.0,
                "max_ms": 40.0,
                "served_by_indexes": True,
                "seq_scans": [],
                "listing": False,
                "sql": "SELECT 2",
                "plan": "Bitmap",
            },
        ],
        "notes": [],
    }
    results.update(changes)
    return results


def test_wrk_summary_is_parsed_and_every_failure_counts() -> None:
    result = wrk.parse("listing", WRK_OUTPUT, connections=64)
    assert result.rps == 2000
    assert result.errors == 3  # one socket error, two statuses >= 400
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (1.5, 5.0, 9.0)
    assert result.statuses == {"200": 9998, "503": 2}


def test_request_lines_refuse_what_the_lua_script_cannot_split() -> None:
    assert (
        wrk.Request("PUT", "/v", 3, '{"direction": 1}').line() == 'PUT\t/v\t3\t{"direction": 1}\n'
    )
    try:
        wrk.Request("POST", "/c", None, "a\tb").line()
    except ValueError:
        pass
    else:
        raise AssertionError("a tab in a body must be refused")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([], 0.5) == 0.0


def test_targets_compare_each_figure_with_the_issue() -> None:
    verdicts = {t["target"]: t["met"] for t in report.targets(_results())}
    assert verdicts["Cached hot listing >= 50% of the bare FastAPI ceiling (req/s)"]
    assert verdicts["Uncached hot listing: p95 < 50 ms"]
    assert not verdicts["500-comment post page: p95 < 50 ms"]
    # Search is not a listing: its slower p95 does not decide the database target.
    assert verdicts["Database time p95 < 10 ms for every listing query"]
    assert verdicts["Votes: >= 1,000/s with exact tallies afterwards"]
    assert not verdicts["Zero errors in every scenario"]


def test_a_latency_target_shows_the_figure_without_queueing_beside_the_loaded_one() -> None:
    results = _results()
    results["scenarios"]["post_page"]["connections"] = 64
    results["scenarios"]["post_page_alone"] = _load(40, 21.5)
    (page,) = [t for t in report.targets(results) if t["target"].startswith("500-comment")]
    assert page["measured"] == "80.0 ms at 64 connections; one request at a time 21.5 ms"
    # The target is the loaded figure's.
    assert not page["met"]


def test_the_doc_keeps_its_written_part_and_replaces_the_generated_one(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(
        f"# Performance\n\nwritten by hand\n\n{report.BEGIN}\nold tables\n{report.END}\n\nafter\n"
    )
    report.update_doc(
        doc, _results(targets=report.targets(_results())), Path("bench/results/x.json")
    )
    text = doc.read_text()
    assert "written by hand" in text
    assert "after" in text
    assert "old tables" not in text
    # 0.9 cores for 10 s over 25,000 requests: 0.36 ms of gateway CPU per request.
    assert "| `listing_cached` | 0.36 | 0.36 |" in text
