"""`python -m bench.dataset [--scale 1.0] [--db agora_bench] [--seed 7]`: generate, load, verify."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from bench.dataset.generate import BENCH_PASSWORD, Sizes, make_plan
from bench.dataset.load import bench_database, load
from bench.dataset.manifest import Manifest
from bench.dataset.verify import DATASET_CHECKS, VOTE_CHECKS, run_checks
from common.settings import DatabaseSettings, load_settings
from services.auth.domain import hash_password
from services.auth.settings import AuthSettings


def say(message: str) -> None:
    print(f"dataset | {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dataset", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 10k users, 100k posts")
    parser.add_argument("--db", default="agora_bench", help="database name (agora_bench*)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args(argv)

    try:
        settings = bench_database(load_settings(DatabaseSettings), args.db)
        sizes = Sizes.at_scale(args.scale)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    started = time.monotonic()
    # One hash for everyone, at the production cost the auth service is configured with
    # (so signing in never rehashes): bcrypt per user would take most of an hour.
    rounds = load_settings(AuthSettings).auth_bcrypt_rounds
    say(f"planning {sizes} (seed {args.seed})")
    plan = make_plan(
        sizes,
        seed=args.seed,
        now=datetime.now(UTC),
        password_hash=hash_password(BENCH_PASSWORD, rounds),
    )
    say(f"planned in {time.monotonic() - started:.1f}s")
    load(settings, plan, say=say)
    seconds = time.monotonic() - started
    manifest = Manifest.of(
        plan, database=args.db, scale=args.scale, password=BENCH_PASSWORD, load_seconds=seconds
    )
    say(f"loaded in {seconds:.1f}s; manifest {manifest.save()}")
    if args.skip_verify:
        return 0
    failed = False
    for result in run_checks(settings, {**DATASET_CHECKS, **VOTE_CHECKS}):
        say(f"check {'ok  ' if result.ok else 'FAIL'} {result.name} ({result.violations})")
        failed = failed or not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
