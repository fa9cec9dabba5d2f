"""`python -m tools.docker_smoke`: build the image and run it for real on this machine.

Not part of `make test`: it needs a Docker engine (BuildKit) and a base image
it can use. It checks what `docker compose up` and the Helm chart rely on:

1. the image builds (`--base-image`, and the CA bundle as the `ca_bundle`
   build secret when there is one);
2. it runs as uid 10001 and has a HEALTHCHECK;
3. `python -m tools.migrate bootstrap` from the image migrates a database of
   its own on this machine's PostgreSQL;
4. every service of common/topology.py and the gateway run from the image, in
   production mode, with a read-only root filesystem and no capabilities,
   against this machine's Postgres, Redis and NATS (host network, free ports);
5. Docker reports each healthy through the image's own HEALTHCHECK command,
   and the gateway's /readyz sees Redis and every service;
6. through the gateway a user registers, logs in, creates a community, a
   post and a comment; the comment count reaches the post through the event
   pipeline (outbox, NATS, consumer) and the summarizer makes a summary (posts'
   event, then gRPC reads of the thread); the JWKS is served and every process
   exposes Prometheus metrics;
7. every log line is JSON and no secret (signing key, cursor secret, password,
   token) appears in any of them;
8. `docker stop` ends each with exit code 0 (SIGTERM drain as PID 1);

then removes the containers, the database, the Redis keys and the NATS stream.
Exit code 0 when everything passed. Run it as `python -m tools.docker_smoke
--base-image agora-base:bookworm` where Docker Hub is out of reach (see
docs/operations.md for making that base image).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.settings import CommonSettings, DatabaseSettings, load_settings
from common.topology import SERVICES
from services.auth.keys import private_key_pem
from tools import bootstrap
from tools.infra import check_infrastructure, delete_redis_keys, delete_stream
from tools.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EXPECTED_USER = "10001:10001"
HEALTHY_WITHIN_SECONDS = 120.0
STOP_GRACE_SECONDS = 15


class SmokeFailure(RuntimeError):
    """A check failed; the message says which and what was seen."""


def docker_binary() -> str:
    """The Docker CLI: $DOCKER, else /usr/bin/docker, else the first on PATH."""
    if chosen := os.environ.get("DOCKER"):
        return chosen
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return shutil.which("docker") or "docker"


@dataclass
class Docker:
    """Thin wrapper over the CLI; environment values go by name (`-e NAME`), never on argv."""

    binary: str
    say: Callable[[str], None]

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(  # noqa: S603 - the Docker CLI with our own arguments
            [self.binary, *args],
            env={**os.environ, **(env or {}), "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            output = (completed.stdout + completed.stderr).strip()[-4000:]
            raise SmokeFailure(f"docker {args[0]} failed ({completed.returncode}):\n{output}")
        return completed

    def inspect(self, what: str) -> Any:
        return json.loads(self.run("inspect", what).stdout)[0]


@dataclass
class Run:
    """One smoke run: its names, ports and secrets, and what to clean up."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    grpc_ports: dict[str, int] = field(
        default_factory=lambda: {spec.name: free_port() for spec in SERVICES}
    )
    metrics_ports: dict[str, int] = field(
        default_factory=lambda: {spec.name: free_port() for spec in SERVICES}
    )
    gateway_port: int = field(default_factory=free_port)
    cursor_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    signing_key: str = field(
        default_factory=lambda: private_key_pem(Ed25519PrivateKey.generate()).decode()
    )
    password: str = field(default_factory=lambda: f"correct-horse-{secrets.token_hex(6)}")
    containers: list[str] = field(default_factory=list)

    @property
    def db_name(self) -> str:
        return f"agora_docker_{self.run_id}"

    @property
    def redis_prefix(self) -> str:
        return f"agora-docker-{self.run_id}:"

    @property
    def stream(self) -> str:
        return f"AGORA_DOCKER_{self.run_id}"

    @property
    def username(self) -> str:
        return f"smoke{self.run_id[:8]}"

    def container(self, process: str) -> str:
        return f"agora-smoke-{process}-{self.run_id}"


def _environment(run: Run, common: CommonSettings, db: DatabaseSettings) -> dict[str, str]:
    """What every container gets: this machine's servers, this run's names, production mode."""
    addresses = {name: f"127.0.0.1:{port}" for name, port in run.grpc_ports.items()}
    return {
        "AGORA_ENVIRONMENT": "production",
        "AGORA_LOG_FORMAT": "json",
        "AGORA_DB_HOST": db.host,
        "AGORA_DB_PORT": str(db.port),
        "AGORA_DB_NAME": run.db_name,
        "AGORA_DB_POOL_SIZE": "2",
        "AGORA_DB_MAX_OVERFLOW": "2",
        "AGORA_REDIS_URL": common.redis_url.get_secret_value(),
        "AGORA_REDIS_KEY_PREFIX": run.redis_prefix,
        "AGORA_NATS_URL": common.nats_url.get_secret_value(),
        "AGORA_NATS_STREAM": run.stream,
        "AGORA_NATS_SUBJECT_PREFIX": f"agoradocker{run.run_id}.",
        "AGORA_SERVICE_ADDRESSES": json.dumps(addresses),
        "AGORA_CURSOR_SECRET": run.cursor_secret,
    }


def _env_flags(env: Mapping[str, str]) -> list[str]:
    return [flag for name in env for flag in ("-e", name)]


def build(docker: Docker, tag: str, base_image: str, ca_bundle: Path | None) -> None:
    args = ["build", "--network", "host", "--build-arg", f"BASE_IMAGE={base_image}", "-t", tag]
    if ca_bundle is not None:
        args += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
    started = time.monotonic()
    docker.run(*args, str(ROOT), timeout=1800)
    docker.say(f"built {tag} from {base_image} in {time.monotonic() - started:.0f}s")


def check_image(docker: Docker, tag: str) -> None:
    config = docker.inspect(tag)["Config"]
    if config.get("User") != EXPECTED_USER:
        raise SmokeFailure(f"image user is {config.get('User')!r}, expected {EXPECTED_USER}")
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if "tools.healthcheck" not in test:
        raise SmokeFailure(f"image HEALTHCHECK is {test!r}, expected python -m tools.healthcheck")
    size_mb = docker.inspect(tag)["Size"] / 1e6
    docker.say(f"image runs as {EXPECTED_USER}, HEALTHCHECK {' '.join(test[1:])}, {size_mb:.0f} MB")


def migrate(docker: Docker, tag: str, env: Mapping[str, str], db: DatabaseSettings) -> None:
    admin = {
        "AGORA_DB_ADMIN_USER": db.admin_user,
        "AGORA_DB_ADMIN_PASSWORD": db.admin_password.get_secret_value(),
    }
    all_env = {**env, **admin}
    result = docker.run(
        "run", "--rm", "--network", "host", "--read-only", *_env_flags(all_env),
        tag, "python", "-m", "tools.migrate", "bootstrap",
        env=all_env,
    )  # fmt: skip
    docker.say(f"migration job: {result.stdout.strip().splitlines()[-1]}")


def start(docker: Docker, run: Run, tag: str, process: str, env: Mapping[str, str]) -> None:
    """Start one long-running process detached, read-only, health-checked every 5 s."""
    module = "gateway" if process == "gateway" else f"services.{process}"
    name = run.container(process)
    docker.run(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=16m",  # noqa: S108 - in the container
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--health-interval", "5s", "--health-start-period", "60s",
        *_env_flags(env), tag, "python", "-m", module,
        env=env,
    )  # fmt: skip
    run.containers.append(name)


def wait_healthy(docker: Docker, name: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < HEALTHY_WITHIN_SECONDS:
        state = docker.inspect(name)["State"]
        if not state.get("Running"):
            logs = docker.run("logs", "--tail", "30", name, check=False)
            raise SmokeFailure(
                f"{name} exited ({state.get('ExitCode')}):\n{logs.stdout}{logs.stderr}"
            )
        health = state.get("Health") or {}
        if health.get("Status") == "healthy":
            probe = (health.get("Log") or [{}])[-1].get("Output", "").strip()
            docker.say(f"{name}: healthy ({probe})")
            return time.monotonic() - started
        time.sleep(1)
    raise SmokeFailure(f"{name} not healthy within {HEALTHY_WITHIN_SECONDS:.0f}s")


def exercise_api(run: Run, say: Callable[[str], None]) -> list[str]:
    """A journey through the gateway that crosses every service and the event pipeline.

    Returns the tokens it saw: secrets the logs must not contain.
    """
    with httpx.Client(base_url=f"http://127.0.0.1:{run.gateway_port}", timeout=10) as client:
        ready = client.get("/readyz")
        _expect(ready, 200, "readyz")
        account = {
            "username": run.username,
            "email": f"{run.username}@example.com",
            "password": run.password,
        }
        _expect(client.post("/api/v1/auth/register", json=account), 201, "register")
        login = client.post(
            "/api/v1/auth/login", json={"username": run.username, "password": run.password}
        )
        _expect(login, 200, "login")
        tokens = login.json()
        client.headers["authorization"] = f"Bearer {tokens['access_token']}"
        _expect(client.get("/api/v1/users/me"), 200, "users/me")
        community = {"name": run.username, "title": "Smoke", "description": "docker smoke run"}
        _expect(client.post("/api/v1/communities", json=community), 201, "create community")
        post = client.post(
            f"/api/v1/communities/{run.username}/posts",
            json={"title": "Does the image work?", "body": "Every process from one image."},
        )
        _expect(post, 201, "create post")
        post_id = post.json()["id"]
        comment = client.post(
            f"/api/v1/posts/{post_id}/comments", json={"body": "It answers; events flow."}
        )
        _expect(comment, 201, "create comment")
        counted = _eventually(
            lambda: client.get(f"/api/v1/posts/{post_id}").json().get("comment_count") == 1,
            "the comment count to reach the post (comments -> NATS -> posts)",
        )
        summarised = _eventually(
            lambda: client.get(f"/api/v1/posts/{post_id}/summary").status_code == 200,
            "a summary (posts -> NATS -> summarizer -> posts, comments)",
        )
        _expect(client.get("/.well-known/jwks.json"), 200, "JWKS")
        _expect(client.get("/metrics"), 200, "gateway /metrics")
    for name, port in run.metrics_ports.items():
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        _expect(metrics, 200, f"{name} /metrics")
        if "agora_grpc_server_handled_total" not in metrics.text:
            raise SmokeFailure(f"{name} /metrics lacks agora_grpc_server_handled_total")
    say(
        f"API through the gateway: readyz 200 ({', '.join(ready.json()['checks'])}); register, "
        "login, users/me, community, post, comment 2xx; comment count via events in "
        f"{counted:.1f}s; summary in {summarised:.1f}s; JWKS; /metrics of all "
        f"{len(run.metrics_ports) + 1} processes"
    )
    return [tokens["access_token"], tokens["refresh_token"]]


def _eventually(check: Callable[[], bool], what: str, timeout: float = 90.0) -> float:
    """Seconds until check() held; a SmokeFailure naming what after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(1)
    raise SmokeFailure(f"waited {timeout:.0f}s for {what}")


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise SmokeFailure(
            f"{what}: HTTP {response.status_code}, expected {status}: {response.text}"
        )


def check_logs(docker: Docker, run: Run, forbidden: Sequence[str]) -> None:
    """Every line JSON with the service's name; no secret anywhere in stdout or stderr."""
    counts = []
    for name in run.containers:
        result = docker.run("logs", name)
        text = result.stdout + result.stderr
        for secret in forbidden:
            if secret and secret in text:
                raise SmokeFailure(f"{name} logged a secret ({secret[:6]}...)")
        lines = [line for line in text.splitlines() if line.strip()]
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                raise SmokeFailure(f"{name}: not a JSON log line: {line[:200]}") from None
            if not isinstance(entry, dict) or "msg" not in entry:
                raise SmokeFailure(f"{name}: log line without msg: {line[:200]}")
        counts.append(f"{name.split('-')[2]} {len(lines)}")
    docker.say(f"logs: every line JSON, no secret in them ({', '.join(counts)} lines)")


def stop_all(docker: Docker, run: Run) -> None:
    """`docker stop` (SIGTERM, then SIGKILL after the grace): each must exit 0 by itself."""
    for name in reversed(run.containers):  # the gateway first, as in production
        started = time.monotonic()
        docker.run("stop", "--time", str(STOP_GRACE_SECONDS), name, timeout=STOP_GRACE_SECONDS + 30)
        code = docker.inspect(name)["State"]["ExitCode"]
        if code != 0:
            raise SmokeFailure(f"{name} exited with {code} after SIGTERM")
        docker.say(f"{name}: stopped on SIGTERM in {time.monotonic() - started:.1f}s, exit 0")


@contextmanager
def cleaned_up(
    docker: Docker, run: Run, common: CommonSettings, db: DatabaseSettings, *, keep: bool
) -> Iterator[None]:
    try:
        yield
    finally:
        if keep:
            docker.say(f"kept containers {run.containers} and database {run.db_name}")
        else:
            for name in run.containers:
                docker.run("rm", "--force", name, check=False)
            with suppress(Exception):
                bootstrap.drop_database(db.model_copy(update={"name": run.db_name}))
            with suppress(Exception):
                delete_redis_keys(common.redis_url.get_secret_value(), run.redis_prefix)
            with suppress(Exception):
                delete_stream(common.nats_url.get_secret_value(), run.stream)


def smoke(args: argparse.Namespace, say: Callable[[str], None]) -> None:
    docker = Docker(args.docker, say)
    docker.run("version", "--format", "{{.Server.Version}}")
    if not args.skip_build:
        ca_bundle = args.ca_bundle if args.ca_bundle and args.ca_bundle.is_file() else None
        build(docker, args.tag, args.base_image, ca_bundle)
    check_image(docker, args.tag)

    common, db = load_settings(CommonSettings), load_settings(DatabaseSettings)
    if problems := check_infrastructure(common, db):
        raise SmokeFailure("\n".join(str(problem) for problem in problems))
    run = Run()
    env = _environment(run, common, db)
    with cleaned_up(docker, run, common, db, keep=args.keep):
        migrate(docker, args.tag, env, db)
        for spec in SERVICES:
            own = {
                "AGORA_GRPC_PORT": str(run.grpc_ports[spec.name]),
                "AGORA_METRICS_PORT": str(run.metrics_ports[spec.name]),
            }
            if spec.name == "auth":
                own["AGORA_AUTH_SIGNING_KEY"] = run.signing_key
            start(docker, run, args.tag, spec.name, {**env, **own})
        for spec in SERVICES:
            wait_healthy(docker, run.container(spec.name))
        gateway_env = {**env, "AGORA_GATEWAY_PORT": str(run.gateway_port)}
        start(docker, run, args.tag, "gateway", gateway_env)
        wait_healthy(docker, run.container("gateway"))
        tokens = exercise_api(run, say)
        for name in run.containers:
            probe = docker.run("exec", name, "python", "-m", "tools.healthcheck")
            say(f"docker exec {name} python -m tools.healthcheck: {probe.stdout.strip()}")
        stop_all(docker, run)
        check_logs(docker, run, [run.signing_key, run.cursor_secret, run.password, *tokens])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.docker_smoke", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--base-image", default=os.environ.get("AGORA_BASE_IMAGE", DEFAULT_BASE_IMAGE)
    )
    parser.add_argument("--tag", default="agora:dev")
    parser.add_argument("--docker", default=docker_binary(), help="the Docker CLI")
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        default=DEFAULT_CA_BUNDLE,
        help="CA bundle handed to pip as the ca_bundle build secret, if the file exists",
    )
    parser.add_argument("--skip-build", action="store_true", help="use the image as it is")
    parser.add_argument("--keep", action="store_true", help="leave containers and data behind")
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(f"docker-smoke | {message}", flush=True)

    try:
        smoke(args, say)
    except (SmokeFailure, subprocess.TimeoutExpired, httpx.HTTPError) as error:
        say(f"FAILED: {error}")
        return 1
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
