"""`python -m bench` (`make bench`): load, run every scenario and ceiling, write the results.

    python -m bench [--scale 1.0] [--seconds 20] [--reuse] [--only vote,login]

Steps: (1) load the data set into agora_bench (bench.dataset; --reuse keeps a
loaded one of the same scale); (2) start the real stack against it
(tools.stack.Stack, free ports, its own Redis prefix and NATS stream, the
production rate limits with this run's bypass secret, which the load
presents); (3) sign the load users in; (4) measure the ceilings (bare
FastAPI, bare grpc.aio, the posts service over the same gRPC client,
pgbench) and every scenario with wrk, 64 connections, each after a short
warm-up, sampling CPU per process; (5) check the vote tallies are exact once
the events settled; (6) EXPLAIN every listing query; (7) write
bench/results/<date>.json and the generated part of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.dataset.load import bench_database
from bench.dataset.manifest import Manifest
from bench.dataset.verify import VOTE_CHECKS, run_checks
from bench.harness import explain, pgbench, scenarios, wrk
from bench.harness.cpu import CpuSampler, PidSource, named, postgres_backends
from bench.harness.measure import LoadResult
from common.settings import CommonSettings, DatabaseSettings, load_settings
from tools import bootstrap
from tools.infra import delete_redis_keys, delete_stream
from tools.stack import ROOT, RUN_DIR, FileSink, Stack, free_port

RESULTS_DIR = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
WORK_DIR = RUN_DIR / "bench"
REDIS_PREFIX = "agora-bench:"
NATS_STREAM = "AGORA_BENCH"
SIGNED_IN_USERS = 32


def say(message: str) -> None:
    print(f"bench | {message}", flush=True)


@dataclass(slots=True)
class Options:
    scale: float
    database: str
    seconds: int
    warmup: int
    connections: int
    reuse: bool
    only: set[str]
    write_doc: bool
    serve: bool = False


@dataclass(slots=True)
class Run:
    """Everything one `make bench` measured, as it goes into the JSON."""

    options: Options
    started: datetime
    machine: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    explain: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ machine


def _first(command: list[str]) -> str:
    try:
        return subprocess.run(  # noqa: S603 - fixed system tools
            command, capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except OSError:
        return ""


def machine(settings: DatabaseSettings) -> dict[str, Any]:
    lscpu = {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in _first(["lscpu"]).splitlines())
    }
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    with bootstrap._admin_connect(settings, "postgres") as conn:
        row = conn.execute("SELECT version()").fetchone()
        postgres = str(row[0]) if row else ""
        shared_buffers = conn.execute("SHOW shared_buffers").fetchone()
    return {
        "cpu_model": lscpu.get("Model name", ""),
        "cpus": os.cpu_count(),
        "threads_per_core": lscpu.get("Thread(s) per core", ""),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": postgres.split(" on ")[0],
        "postgres_shared_buffers": str(shared_buffers[0]) if shared_buffers else "",
        "wrk": _first(["wrk", "-v"]).split(" Copyright")[0],
        "load_average_at_start": list(os.getloadavg()),
    }


# ------------------------------------------------------------------ stack


def bench_env(database: str, bypass: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update(
        {
            "AGORA_ENVIRONMENT": "development",
            "AGORA_LOG_LEVEL": "INFO",
            "AGORA_LOG_FORMAT": "json",
            "AGORA_DB_NAME": database,
            "AGORA_REDIS_KEY_PREFIX": REDIS_PREFIX,
            "AGORA_NATS_STREAM": NATS_STREAM,
            "AGORA_NATS_SUBJECT_PREFIX": "agorabench.",
            # The production limits stay on; the load presents this run's bypass secret.
            "AGORA_RATE_LIMIT_BYPASS_SECRET": bypass,
        }
    )
    return env


def clean_shared_state(common: CommonSettings) -> None:
    """Drop what an earlier run left in Redis and NATS: cached pages of another load."""
    delete_redis_keys(common.redis_url.get_secret_value(), REDIS_PREFIX)
    delete_stream(common.nats_url.get_secret_value(), NATS_STREAM)


def restart_gateway(stack: Stack, *, cache: bool) -> None:
    stack.stop_service("gateway")
    stack.env["AGORA_CACHE_ENABLED"] = "true" if cache else "false"
    stack.start_service("gateway")


async def sign_in(url: str, usernames: list[str], password: str, bypass: str) -> list[str]:
    headers = {"X-RateLimit-Bypass": bypass}
    # bcrypt (cost 12) is CPU-bound: a few at a time stay inside the gateway's deadline.
    limit = asyncio.Semaphore(2)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:

        async def one(name: str) -> str:
            async with limit:
                answer = await client.post(
                    "/api/v1/auth/login", json={"username": name, "password": password}
                )
                answer.raise_for_status()
                return str(answer.json()["access_token"])

        return list(await asyncio.gather(*(one(name) for name in usernames)))


# ------------------------------------------------------------------ measuring


def _measure(
    name: str,
    argv: list[str],
    groups: dict[str, PidSource],
    *,
    parse: Callable[[str], LoadResult],
    cwd: Path | None = None,
) -> LoadResult:
    """Run a load tool to completion while sampling CPU; its own CPU is `load tool`."""
    process = subprocess.Popen(  # noqa: S603 - our tools, our arguments
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pid = process.pid
    sampler = CpuSampler({**groups, "load tool": lambda: [pid]})
    sampler.start()
    output = _wait_polling(process, sampler)
    cores = sampler.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{name}: {argv[0]} failed ({process.returncode}):\n{output}")
    result = parse(output)
    result.name = name
    result.cpu_cores = cores
    return result


def _wait_polling(process: subprocess.Popen[str], sampler: CpuSampler) -> str:
    """The process's output once it exits; CPU is polled every half second meanwhile."""
    chunks: list[str] = []
    reader = threading.Thread(
        target=lambda: chunks.append(process.stdout.read() if process.stdout else ""),
        daemon=True,
    )
    reader.start()
    while process.poll() is None:
        sampler.poll()
        time.sleep(0.5)
    reader.join()
    return "".join(chunks)


def _parse_grpc(output: str) -> LoadResult:
    for text in output.splitlines():
        if text.startswith("GRPC_JSON "):
            data = json.loads(text[len("GRPC_JSON ") :])
            latency = data["latency_ms"]
            return LoadResult(
                name=data["name"],
                tool="grpc_load",
                connections=data["connections"],
                seconds=data["seconds"],
                requests=data["requests"],
                errors=data["errors"],
                p50_ms=latency["p50"],
                p95_ms=latency["p95"],
                p99_ms=latency["p99"],
                mean_ms=latency["mean"],
                max_ms=latency["max"],
                error_detail=data["error_detail"],
            )
    raise RuntimeError(f"the gRPC driver printed no summary:\n{output}")


def _pid_of(pid: int) -> PidSource:
    return lambda: [pid]


@dataclass(slots=True)
class Bench:
    options: Options
    run: Run
    settings: DatabaseSettings
    manifest: Manifest
    stack: Stack
    files: Path
    secret_file: Path
    tokens_file: Path

    def groups(self, extra: dict[str, PidSource] | None = None) -> dict[str, PidSource]:
        groups: dict[str, PidSource] = {}
        for name, process in self.stack.processes.items():
            if process.popen is not None:
                groups[name] = _pid_of(process.popen.pid)
        groups["postgres"] = postgres_backends(self.settings.name)
        groups["redis"] = named("redis-server")
        groups["nats"] = named("nats-server")
        return {**groups, **(extra or {})}

    def wrk(
        self,
        name: str,
        url: str,
        requests_file: Path,
        groups: dict[str, PidSource],
        *,
        connections: int | None = None,
    ) -> LoadResult:
        connections = connections or self.options.connections

        def argv(seconds: int) -> list[str]:
            return wrk.command(
                url,
                requests_file=requests_file,
                tokens_file=self.tokens_file,
                secret_file=self.secret_file,
                connections=connections,
                # wrk needs a connection per thread.
                threads=min(2, connections),
                seconds=seconds,
                timeout_seconds=30,
            )

        if self.options.warmup:
            subprocess.run(argv(self.options.warmup), capture_output=True, check=True)  # noqa: S603
        command = argv(self.options.seconds)
        self.run.commands[name] = " ".join(
            Path(command[0]).name if i == 0 else a for i, a in enumerate(command)
        )
        return _measure(
            name, command, groups, parse=lambda out: wrk.parse(name, out, connections=connections)
        )


def _write_body(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def baselines(bench: Bench) -> None:
    """The three ceilings, measured while the stack idles."""
    http_ceiling(bench)
    grpc_ceilings(bench)
    database_ceiling(bench)


def http_ceiling(bench: Bench) -> None:
    files = bench.files
    gateway = bench.stack.gateway_url
    listing = httpx.get(f"{gateway}/api/v1/posts?sort=hot", timeout=30)
    listing.raise_for_status()
    body = _write_body(files / "listing.json", listing.content)

    # HTTP ceiling: the same bytes from a bare FastAPI app.
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "bench.harness.bare_http", str(port), str(body)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/bench")
        requests_file = files / "bare_http.txt"
        wrk.write_requests(requests_file, [wrk.Request("GET", "/bench")])
        result = bench.wrk(
            "bare_fastapi",
            f"http://127.0.0.1:{port}",
            requests_file,
            {"bare fastapi": lambda: [server.pid]},
        )
        bench.run.baselines["bare_fastapi"] = result.as_dict()
        say(f"bare FastAPI: {result.rps:,.0f} req/s, p95 {result.p95_ms:.1f} ms")
    finally:
        server.terminate()
        server.wait(10)


def grpc_ceilings(bench: Bench) -> None:
    """The posts service's serialized page from a bare grpc.aio server, and from posts."""
    import grpc
    from agora.posts.v1 import posts_pb2

    files = bench.files
    request = posts_pb2.ListPostsRequest(sort=posts_pb2.POST_SORT_HOT, page_size=25)
    method = "/agora.posts.v1.PostsService/ListPosts"

    with grpc.insecure_channel(bench.stack.address("posts")) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        answer = call(request.SerializeToString(), timeout=10)
    response_file = _write_body(files / "listing.pb", answer)
    request_file = _write_body(files / "listing_request.pb", request.SerializeToString())
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "bench.harness.grpc_load", "serve", str(port), str(response_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        for name, target, rpc, groups in (
            (
                "bare_grpc",
                f"127.0.0.1:{port}",
                "/bench.Bare/Get",
                {"bare grpc": lambda: [server.pid]},
            ),
            ("grpc_posts_listing", bench.stack.address("posts"), method, bench.groups()),
        ):
            argv = [
                sys.executable,
                "-m",
                "bench.harness.grpc_load",
                "drive",
                target,
                rpc,
                str(request_file),
                str(bench.options.connections),
                str(bench.options.seconds),
            ]
            bench.run.commands[name] = "python -m bench.harness.grpc_load drive " + " ".join(
                argv[4:]
            )
            result = _measure(name, argv, groups, parse=_parse_grpc, cwd=ROOT)
            bench.run.baselines[name] = result.as_dict()
            say(f"{name}: {result.rps:,.0f} calls/s, p95 {result.p95_ms:.1f} ms")
    finally:
        server.terminate()
        server.wait(10)


def database_ceiling(bench: Bench) -> None:
    """pgbench with the service's listing SQL."""
    communities = bench.manifest.dataset_sizes.communities
    run = pgbench.PgbenchRun(
        bench.settings,
        communities=communities,
        clients=bench.options.connections,
        seconds=bench.options.seconds,
    )
    pid = run.process.pid
    sampler = CpuSampler(
        {"postgres": postgres_backends(bench.settings.name), "load tool": lambda: [pid]}
    )
    sampler.start()
    while run.process.poll() is None:  # its output is a few lines: the pipe never fills
        sampler.poll()
        time.sleep(0.5)
    result, _ = run.finish("pgbench_listing")
    result.cpu_cores = sampler.stop()
    result.extra["script"] = run.script_text
    bench.run.commands["pgbench_listing"] = " ".join(["pgbench", *run.argv[1:]]).replace(
        str(Path(run.argv[5]).parent), "<dir>"
    )
    bench.run.baselines["pgbench_listing"] = result.as_dict()
    say(f"pgbench listing: {result.rps:,.0f} tx/s, p95 {result.p95_ms:.1f} ms")


def _wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def run_scenarios(bench: Bench, targets: scenarios.Targets) -> None:
    rng = random.Random(11)
    cache_on = True
    for scenario in scenarios.scenarios(bench.manifest.load_usernames, bench.manifest.password):
        if bench.options.only and scenario.name not in bench.options.only:
            continue
        if scenario.cache != cache_on:
            restart_gateway(bench.stack, cache=scenario.cache)
            cache_on = scenario.cache
        requests_file = bench.files / f"{scenario.name}.txt"
        count = wrk.write_requests(requests_file, scenario.make(targets, rng))
        say(
            f"{scenario.name}: {count:,} prepared requests; warm-up {bench.options.warmup}s, "
            f"then {bench.options.seconds}s"
        )
        result = bench.wrk(
            scenario.name,
            bench.stack.gateway_url,
            requests_file,
            bench.groups(),
            connections=scenario.connections or bench.options.connections,
        )
        data = result.as_dict()
        data.update(title=scenario.title, request=scenario.request, cache=scenario.cache)
        bench.run.scenarios[scenario.name] = data
        say(
            f"{scenario.name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} / p95 "
            f"{result.p95_ms:.1f} / p99 {result.p99_ms:.1f} ms, errors {result.errors} "
            f"{result.statuses}"
        )
        if scenario.name == "vote":
            check_votes(bench)
    if not cache_on:
        restart_gateway(bench.stack, cache=True)


def check_votes(bench: Bench, timeout: float = 120) -> None:
    """Tallies must equal the vote rows at once, and the copies in posts and comments must
    catch up once their events are consumed."""
    started = time.monotonic()
    while True:
        results = run_checks(bench.settings, VOTE_CHECKS)
        if all(r.ok for r in results) or time.monotonic() - started > timeout:
            break
        time.sleep(1)
    settled = round(time.monotonic() - started, 1)
    for result in results:
        bench.run.checks.append(
            {"name": result.name, "violations": result.violations, "settled_after_s": settled}
        )
        say(
            f"check {'ok' if result.ok else 'FAIL'}: {result.name} ({result.violations}) "
            f"after {settled}s"
        )


# ------------------------------------------------------------------ main


def ensure_dataset(options: Options, settings: DatabaseSettings) -> Manifest:
    if options.reuse:
        try:
            manifest = Manifest.read(options.database)
        except FileNotFoundError:
            manifest = None
        if manifest is not None and manifest.scale == options.scale:
            say(f"reusing {options.database} (scale {manifest.scale}, {manifest.generated_at})")
            return manifest
    say(f"loading the data set at scale {options.scale} into {options.database}")
    subprocess.run(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "bench.dataset",
            "--scale",
            str(options.scale),
            "--db",
            options.database,
        ],
        cwd=ROOT,
        check=True,
    )
    return Manifest.read(options.database)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--db", default="agora_bench")
    parser.add_argument("--seconds", type=int, default=20, help="measured time per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--reuse", action="store_true", help="keep a loaded data set of this scale")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenario names, `baselines`, or just `explain` (no stack at all)",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="start the stack on the data set, write the request files, wait (for profiling)",
    )
    args = parser.parse_args(argv)
    return Options(
        scale=args.scale,
        database=args.db,
        seconds=args.seconds,
        warmup=args.warmup,
        connections=args.connections,
        reuse=args.reuse,
        only={name for name in args.only.split(",") if name},
        write_doc=not args.no_doc,
        serve=args.serve,
    )


def main(argv: list[str] | None = None) -> int:
    from tools.infra import check_infrastructure

    options = parse_args(argv)
    try:
        settings = bench_database(load_settings(DatabaseSettings), options.database)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    common = load_settings(CommonSettings)
    problems = check_infrastructure(common, settings)
    if problems:
        for problem in problems:
            say(str(problem))
        return 1
    wrk.wrk_binary()
    run = Run(options, datetime.now(UTC))
    run.machine = machine(settings)
    manifest = ensure_dataset(options, settings)
    run.dataset = {
        "database": manifest.database,
        "scale": manifest.scale,
        "seed": manifest.seed,
        "sizes": manifest.sizes,
        "generated_at": manifest.generated_at,
        "load_seconds": manifest.load_seconds,
        "showcase_post_id": manifest.showcase_post_id,
        "showcase_comments": manifest.showcase_comments,
    }
    if options.only != {"explain"}:
        clean_shared_state(common)
        try:
            measure_stack(options, run, settings, manifest)
        finally:
            clean_shared_state(common)
        if options.serve:
            return 0
    say("EXPLAIN (ANALYZE, BUFFERS) of every listing query")
    explain_targets = asyncio.run(explain.find_targets(settings, manifest.showcase_post_id))
    run.explain = [e.as_dict() for e in asyncio.run(explain.explain_all(settings, explain_targets))]
    write_results(options, run)
    return 0


def measure_stack(
    options: Options, run: Run, settings: DatabaseSettings, manifest: Manifest
) -> None:
    """Start the stack on the loaded data, run the ceilings and the scenarios, stop it."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    files = Path(tempfile.mkdtemp(prefix="run-", dir=WORK_DIR))
    bypass = secrets.token_urlsafe(32)
    secret_file = files / "bypass"
    secret_file.write_text(bypass + "\n")
    secret_file.chmod(0o600)
    sink = FileSink(WORK_DIR / "stack.log", truncate=True)
    stack = Stack.on_free_ports(bench_env(options.database, bypass), sink)
    try:
        say("starting the stack")
        stack.start_all()
        say(f"signing in {SIGNED_IN_USERS} load users")
        users = manifest.load_usernames[:SIGNED_IN_USERS]
        tokens = asyncio.run(sign_in(stack.gateway_url, users, manifest.password, bypass))
        tokens_file = files / "tokens"
        tokens_file.write_text("".join(f"{token}\n" for token in tokens))
        bench = Bench(options, run, settings, manifest, stack, files, secret_file, tokens_file)
        with bootstrap._admin_connect(settings, settings.name) as conn:
            user_ids = [
                str(row[0])
                for row in conn.execute(
                    "SELECT id FROM auth.users WHERE username = ANY(%s)", (manifest.load_usernames,)
                )
            ]
            targets = scenarios.find_targets(
                conn,
                showcase_post=manifest.showcase_post_id,
                largest_community=manifest.largest_community,
                load_user_ids=user_ids,
                tokens=len(tokens),
            )
        if options.serve:
            serve(bench, targets)
            return
        if not options.only or "baselines" in options.only:
            baselines(bench)
        run_scenarios(bench, targets)
    finally:
        say("stopping the stack")
        stack.stop_all()
        sink.close()


def serve(bench: Bench, targets: scenarios.Targets) -> None:
    """Keep the stack up for profiling (`py-spy record -p <pid>`) until Ctrl-C."""
    rng = random.Random(11)
    for scenario in scenarios.scenarios(bench.manifest.load_usernames, bench.manifest.password):
        wrk.write_requests(bench.files / f"{scenario.name}.txt", scenario.make(targets, rng))
    for name, process in bench.stack.processes.items():
        if process.popen is not None:
            say(f"{name}: pid {process.popen.pid}")
    say(f"gateway {bench.stack.gateway_url}; request files, tokens and secret in {bench.files}")
    example = wrk.command(
        bench.stack.gateway_url,
        requests_file=bench.files / "<scenario>.txt",
        tokens_file=bench.tokens_file,
        secret_file=bench.secret_file,
        connections=64,
        threads=2,
        seconds=20,
        timeout_seconds=30,
    )
    say("load: " + " ".join(example))

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        while bench.stack.first_exited() is None:
            time.sleep(1)


def write_results(options: Options, run: Run) -> None:
    results = report.results(run)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = run.started.strftime("%Y-%m-%dT%H%M")
    path = RESULTS_DIR / f"{stamp}-scale{options.scale:g}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    say(f"results: {path.relative_to(ROOT)}")
    if options.write_doc:
        report.update_doc(DOC, results, path.relative_to(ROOT))
        say(f"tables: {DOC.relative_to(ROOT)}")
    for target in results["targets"]:
        verdict = "met" if target["met"] else "MISSED"
        say(f"target {verdict}: {target['target']} -> {target['measured']}")


if __name__ == "__main__":
    sys.exit(main())
