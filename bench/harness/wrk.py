"""Drive the gateway (or the bare FastAPI ceiling) with wrk and read its JSON summary.

wrk is Debian's (`apt-get install wrk`); bench/harness/agora.lua replays a
prepared request list (see there for its format) and prints one JSON line.
wrk counts a status >= 400 as an error and so do we, plus socket errors and
timeouts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.harness.measure import LoadResult

SCRIPT = Path(__file__).with_name("agora.lua")
MARKER = "WRK_JSON "


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    token: int | None = None  # 1-based line of the tokens file; None: anonymous
    body: str = ""

    def line(self) -> str:
        if any(c in self.body for c in "\t\n"):
            raise ValueError("request bodies must be one line without tabs")
        token = "-" if self.token is None else str(self.token)
        return f"{self.method}\t{self.path}\t{token}\t{self.body}\n"


def write_requests(path: Path, requests: Iterable[Request]) -> int:
    lines = [request.line() for request in requests]
    if not lines:
        raise ValueError("a scenario needs at least one request")
    path.write_text("".join(lines))
    return len(lines)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing("wrk is not installed: apt-get install -y wrk")
    return found


def command(
    url: str,
    *,
    requests_file: Path,
    tokens_file: Path,
    secret_file: Path,
    connections: int,
    threads: int,
    seconds: int,
    timeout_seconds: int,
) -> list[str]:
    return [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_seconds}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(requests_file),
        str(tokens_file),
        str(secret_file),
    ]


def parse(name: str, output: str, *, connections: int) -> LoadResult:
    for text in output.splitlines():
        if text.startswith(MARKER):
            data = json.loads(text[len(MARKER) :])
            break
    else:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    latency = data["latency_us"]
    errors = data["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return LoadResult(
        name=name,
        tool="wrk",
        connections=connections,
        seconds=data["duration_us"] / 1e6,
        requests=int(data["requests"]),
        errors=socket_errors + errors["status"],
        p50_ms=latency["p50"] / 1000,
        p95_ms=latency["p95"] / 1000,
        p99_ms=latency["p99"] / 1000,
        mean_ms=latency["mean"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={str(k): int(v) for k, v in data["statuses"].items()},
        error_detail={k: int(v) for k, v in errors.items() if v},
        extra={"bytes": int(data["bytes"])},
    )
