"""Agora's benchmarks: a realistic data set, a load harness and its baselines (issue 7).

`make bench` (or `python -m bench`) loads the data set into a dedicated
database, starts the real stack against it, drives it with wrk over loopback
next to three ceilings (bare FastAPI, bare grpc.aio, pgbench) and writes
bench/results/<date>.json and docs/performance.md. Nothing here is imported by
the services, and none of it runs in `make test` beyond its unit tests.
"""
