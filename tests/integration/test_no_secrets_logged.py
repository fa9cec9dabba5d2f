"""No token, password or key ever reaches a log line or a span.

A whole session of a user (register, sign in, refresh, a reused refresh token,
sign out) and a summary made by a remote model (with the stack's fake API
keys) go through the real stack; then every line every process printed, and
every span those requests made, is searched for each secret in play.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

from common.settings import DEVELOPMENT_CURSOR_SECRET, DatabaseSettings
from tests.integration.gateway_support import Api, Member, unique
from tests.integration.grpc_support import eventually
from tests.otlp_receiver import (
    OtlpReceiver,
    ReceivedSpan,
    new_trace_id,
    settled_spans,
    traceparent,
)
from tools.stack import Stack

API_KEYS = {
    "openai": "AGORA_SUMMARIZER_OPENAI_API_KEY",
    "anthropic": "AGORA_SUMMARIZER_ANTHROPIC_API_KEY",
}


class TracedClient:
    """Sends each request in a trace of its own, watched, so its spans can be searched too."""

    def __init__(self, http: httpx.AsyncClient, receiver: OtlpReceiver) -> None:
        self.http = http
        self.receiver = receiver
        self.trace_ids: list[str] = []
        self.request_ids: list[str] = []

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        trace_id = new_trace_id()
        self.receiver.watch(trace_id)
        self.trace_ids.append(trace_id)
        request_id = f"secrets-{uuid.uuid4().hex}"
        self.request_ids.append(request_id)
        headers = {
            **kwargs.pop("headers", {}),
            "traceparent": traceparent(trace_id),
            "x-request-id": request_id,
        }
        return await self.http.request(method, path, headers=headers, **kwargs)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _password_hash(db_settings: DatabaseSettings, user_id: str) -> str:
    with psycopg.connect(
        host=db_settings.host,
        port=db_settings.port,
        user=db_settings.admin_user,
        password=db_settings.admin_password.get_secret_value() or None,
        dbname=db_settings.name,
    ) as conn:
        row = conn.execute(
            "SELECT password_hash FROM auth.users WHERE id = %s", (user_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _pem_body(pem: str) -> list[str]:
    """The base64 lines of a PEM key: any of them in a log would leak the key."""
    return [line for line in pem.strip().splitlines() if not line.startswith("-----")]


async def test_no_token_password_or_api_key_is_logged_or_traced(
    http: httpx.AsyncClient,
    stack: Stack,
    stack_log: Path,
    otlp_receiver: OtlpReceiver,
    db_settings: DatabaseSettings,
) -> None:
    client = TracedClient(http, otlp_receiver)
    name = unique("secret")
    password = f"pw-{secrets.token_urlsafe(24)}"
    sessions: list[dict[str, Any]] = []

    registered = await client.send(
        "POST",
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name.lower()}@example.com", "password": password},
    )
    assert registered.status_code == 201, registered.text
    user_id = registered.json()["id"]
    # A wrong password, then the right one; a session per sign-in.
    wrong = await client.send(
        "POST", "/api/v1/auth/login", json={"username": name, "password": password + "x"}
    )
    assert wrong.status_code == 401
    for _ in range(2):
        login = await client.send(
            "POST", "/api/v1/auth/login", json={"username": name, "password": password}
        )
        assert login.status_code == 200, login.text
        sessions.append(login.json())
    first, second = sessions

    me = await client.send("GET", "/api/v1/users/me", headers=_bearer(first["access_token"]))
    assert me.status_code == 200, me.text
    refreshed = await client.send(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    sessions.append(refreshed.json())
    # Presenting the spent token again is theft detection: 401, the family revoked.
    reused = await client.send(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401

    # A summary by a remote model, asked with the second session's token.
    member = Member(name, user_id, second["access_token"])
    api = Api(http)
    community = await api.community(member, "secret")
    post = await api.post(member, community["name"], body="Is anything secret logged here?")
    await api.comment(member, post["id"], "Hopefully not.")
    asked = await client.send("POST", f"/api/v1/posts/{post['id']}/summary", headers=member.auth)
    assert asked.status_code == 202, asked.text

    async def summary() -> dict[str, Any] | None:
        answer = await client.http.get(f"/api/v1/posts/{post['id']}/summary")
        body: dict[str, Any] = answer.json()
        return body if answer.status_code == 200 and body["provider"] != "local" else None

    # Made by a remote provider: its API key was sent (to the stack's fake model).
    made = await eventually(summary, within=30)
    assert made["provider"] in API_KEYS

    logout = await client.send(
        "POST",
        "/api/v1/auth/logout",
        json={"refresh_token": second["refresh_token"]},
        headers=member.auth,
    )
    assert logout.status_code == 204, logout.text

    in_play = {
        "password": password,
        "password hash": _password_hash(db_settings, user_id),
        "cursor secret": stack.env.get("AGORA_CURSOR_SECRET", DEVELOPMENT_CURSOR_SECRET),
        **{f"{provider} API key": stack.env[variable] for provider, variable in API_KEYS.items()},
        **{
            f"signing key line {i}": line
            for i, line in enumerate(_pem_body(stack.env["AGORA_AUTH_SIGNING_KEY"]))
        },
    }
    for number, tokens in enumerate(sessions):
        in_play[f"access token {number}"] = tokens["access_token"]
        # The signature alone is what makes a token usable; header and claims are not secret.
        in_play[f"access token {number} signature"] = tokens["access_token"].rsplit(".", 1)[1]
        in_play[f"refresh token {number}"] = tokens["refresh_token"]

    # Everything the requests logged is in the file once the last one's access line is.
    async def logged() -> str | None:
        text = _read(stack_log)
        return text if client.request_ids[-1] in text else None

    log_text = await eventually(logged)
    assert all(request_id in log_text for request_id in client.request_ids)
    leaked = [what for what, secret in in_play.items() if secret in log_text]
    assert not leaked, f"secrets in the logs: {leaked}"

    def complete(spans: list[ReceivedSpan]) -> bool:
        return {span.service for span in spans} >= {
            "agora-gateway",
            "agora-auth",
            "agora-summarizer",
        }

    spans = await settled_spans(otlp_receiver, client.trace_ids, complete)
    exported = json.dumps([(s.name, s.attributes) for s in spans], default=str)
    leaked = [what for what, secret in in_play.items() if secret in exported]
    assert not leaked, f"secrets in the traces: {leaked}"
