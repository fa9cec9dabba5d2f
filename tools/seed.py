"""Demo data for `make up`, written through the public API like any client.

Idempotent: what already exists (409) is left as it is, so the stack can be
started again and again. Never runs in production.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

# Demo accounts for a local stack only; they are printed for the newcomer.
DEMO_USERS = (
    ("alice", "alice@example.com", "correct-horse-alice"),
    ("bob", "bob@example.com", "correct-horse-bob"),
    ("carol", "carol@example.com", "correct-horse-carol"),
)


def seed(gateway_url: str, say: Callable[[str], None]) -> None:
    created = 0
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        for username, email, password in DEMO_USERS:
            answer = client.post(
                "/api/v1/auth/register",
                json={"username": username, "email": email, "password": password},
            )
            if answer.status_code == 201:
                created += 1
            elif answer.status_code != 409:
                say(f"seeding {username} failed: {answer.status_code} {answer.text[:200]}")
    say(
        f"demo data: {created} new users; sign in as "
        + ", ".join(f"{u}/{p}" for u, _, p in DEMO_USERS)
    )
