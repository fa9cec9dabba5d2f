"""A fake LLM HTTP server speaking OpenAI's and Anthropic's wire formats, for tests.

Real SDKs (and a real summarizer process) talk HTTP to it exactly as to the
providers: OpenAI `POST /v1/chat/completions` and Anthropic `POST /v1/messages`,
answered with the providers' own response shapes (ids, usage, finish and stop
reasons, error envelopes). Point OpenAI at `fake.openai_base_url` and
Anthropic at `fake.anthropic_base_url`.

What each provider answers is scripted: a default behaviour plus a queue of
one-shot behaviours taken first, one per request:

    with FakeLLM() as fake:
        fake.set_default("openai", Behaviour.error(503))
        fake.enqueue("anthropic", Behaviour.timeout(), Behaviour.ok("A summary."))
        ...
        assert fake.count("openai") == 3
        assert fake.requests("anthropic")[0].body["model"] == "claude-..."

Behaviours: `ok` (given or generated text, optional finish reason and usage),
`error` (any status, a JSON error envelope), `rate_limited` (429 with
Retry-After), `timeout` (answers only after a delay longer than the client
waits; stopping the server cuts the wait short) and `nonsense` (a 200 that is
not the expected shape, is empty, or is not JSON). Every request is recorded
(provider, path, headers, parsed JSON body) before it is answered. The server
runs on 127.0.0.1 on a free port, in daemon threads; everything is thread-safe.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

Provider = Literal["openai", "anthropic"]
Kind = Literal["ok", "error", "timeout", "nonsense", "rate_limited"]
Nonsense = Literal["shape", "empty", "not_json", "no_letters"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic")
_PATHS: dict[str, Provider] = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}
DEFAULT_TEXT = "The post asks a question and the comments answer it with two opposing views."


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the server does with one request; build them with the class methods."""

    kind: Kind
    text: str | None = None
    status: int = 200
    # ok: the finish reason to report (None = the provider's normal "stop"/"end_turn").
    finish_reason: str | None = None
    # ok: usage to report (None = derived from the request and the text).
    input_tokens: int | None = None
    output_tokens: int | None = None
    message: str = ""
    retry_after: float = 0.0
    delay: float = 0.0
    variant: Nonsense = "shape"

    @classmethod
    def ok(
        cls,
        text: str | None = None,
        *,
        finish_reason: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        delay: float = 0.0,
    ) -> Behaviour:
        """A normal answer; without text, one made from the request (deterministic)."""
        return cls(
            "ok",
            text=text,
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            delay=delay,
        )

    @classmethod
    def error(cls, status: int = 500, message: str = "The server had an error.") -> Behaviour:
        return cls("error", status=status, message=message)

    @classmethod
    def rate_limited(cls, retry_after: float = 0.0) -> Behaviour:
        return cls("rate_limited", status=429, retry_after=retry_after)

    @classmethod
    def timeout(cls, seconds: float = 10.0) -> Behaviour:
        """Answer (normally) only after `seconds`; make it longer than the client's timeout."""
        return cls("timeout", delay=seconds)

    @classmethod
    def nonsense(cls, variant: Nonsense = "shape") -> Behaviour:
        """A 200 that is no answer: wrong shape, empty text, not JSON, or text with no letters."""
        return cls("nonsense", variant=variant)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    provider: Provider
    path: str
    # Header names lower-cased.
    headers: dict[str, str]
    # The parsed JSON body, or None when it was not JSON.
    body: Any
    received_at: float = field(default_factory=time.monotonic)


class FakeLLM:
    """The server; a context manager, or start() and stop()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._defaults: dict[Provider, Behaviour] = {}
        self._queues: dict[Provider, deque[Behaviour]] = {}
        self._log: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- life cycle ------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by `timeout` are released at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake LLM server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """For openai.AsyncOpenAI(base_url=...) and AGORA_SUMMARIZER_OPENAI_BASE_URL."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For anthropic.AsyncAnthropic(base_url=...) (the SDK adds /v1/messages)."""
        return self.base_url

    # -- script ----------------------------------------------------------------

    def set_default(self, provider: Provider, behaviour: Behaviour) -> None:
        with self._lock:
            self._defaults[provider] = behaviour

    def enqueue(self, provider: Provider, *behaviours: Behaviour) -> None:
        """One-shot behaviours, used in order before the default."""
        with self._lock:
            self._queues[provider].extend(behaviours)

    def reset(self) -> None:
        """Every provider back to answering ok, queues and request log emptied."""
        with self._lock:
            self._defaults = dict.fromkeys(PROVIDERS, Behaviour.ok())
            self._queues = {provider: deque() for provider in PROVIDERS}
            self._log = []

    def _next(self, provider: Provider) -> Behaviour:
        with self._lock:
            queue = self._queues[provider]
            return queue.popleft() if queue else self._defaults[provider]

    # -- request log -----------------------------------------------------------

    def requests(self, provider: Provider | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._log if provider is None or r.provider == provider]

    def count(self, provider: Provider | None = None) -> int:
        return len(self.requests(provider))

    def wait_for(
        self, count: int, provider: Provider | None = None, *, timeout: float = 5.0
    ) -> bool:
        """Block until `count` requests (of `provider`) arrived; False on timeout.

        From async code: `await asyncio.to_thread(fake.wait_for, 1, "openai")`.
        """

        def arrived() -> bool:
            matching = [r for r in self._log if provider is None or r.provider == provider]
            return len(matching) >= count

        with self._arrived:
            return self._arrived.wait_for(arrived, timeout=timeout)

    def _record(self, request: RecordedRequest) -> None:
        with self._arrived:
            self._log.append(request)
            self._arrived.notify_all()

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake as soon as the server is stopping."""
        self._stopping.wait(seconds)

    def _new_id(self) -> str:
        return f"{next(self._ids):04d}{secrets.token_hex(10)}"


# -- responses ------------------------------------------------------------------


def _estimate(value: object) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


def _generated_text(body: Any) -> str:
    """A deterministic answer naming the model, so a test can tell who answered."""
    model = body.get("model") if isinstance(body, dict) else None
    return f"{DEFAULT_TEXT} (answered by {model})" if model else DEFAULT_TEXT


def _openai_ok(fake: FakeLLM, behaviour: Behaviour, body: Any) -> dict[str, Any]:
    text = behaviour.text if behaviour.text is not None else _generated_text(body)
    prompt_tokens = behaviour.input_tokens or _estimate(body.get("messages", []))
    completion_tokens = behaviour.output_tokens or _estimate(text)
    return {
        "id": f"chatcmpl-{fake._new_id()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": behaviour.finish_reason or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _anthropic_ok(fake: FakeLLM, behaviour: Behaviour, body: Any) -> dict[str, Any]:
    text = behaviour.text if behaviour.text is not None else _generated_text(body)
    return {
        "id": f"msg_{fake._new_id()}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "unknown"),
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": behaviour.finish_reason or "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": behaviour.input_tokens
            or _estimate([body.get("system", ""), body.get("messages", [])]),
            "output_tokens": behaviour.output_tokens or _estimate(text),
        },
    }


_ERROR_TYPES = {
    "openai": {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"},
    "anthropic": {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    },
}


def _error_body(provider: Provider, status: int, message: str) -> dict[str, Any]:
    default = "server_error" if provider == "openai" else "api_error"
    error_type = _ERROR_TYPES[provider].get(status, default)
    if provider == "openai":
        return {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _nonsense(provider: Provider, fake: FakeLLM, behaviour: Behaviour, body: Any) -> Any:
    if behaviour.variant == "shape":
        return {"result": "this is not what a chat completion looks like", "ok": True}
    text = "" if behaviour.variant == "empty" else "... --- ?!?! 1234 ***"
    answer = Behaviour.ok(text)
    return (_openai_ok if provider == "openai" else _anthropic_ok)(fake, answer, body)


# -- the HTTP side ----------------------------------------------------------------


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-llm/1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the request log, not stderr."""

        def do_POST(self) -> None:
            provider = _PATHS.get(self.path.split("?", 1)[0])
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if provider is None:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake._record(RecordedRequest(provider, self.path, headers, body))
            self._answer(provider, fake._next(provider), body if isinstance(body, dict) else {})

        def _answer(self, provider: Provider, behaviour: Behaviour, body: dict[str, Any]) -> None:
            if behaviour.delay:
                fake._wait(behaviour.delay)
            if behaviour.kind in ("ok", "timeout"):
                make = _openai_ok if provider == "openai" else _anthropic_ok
                self._send(200, make(fake, behaviour, body), provider=provider)
            elif behaviour.kind == "error":
                error = _error_body(provider, behaviour.status, behaviour.message)
                self._send(behaviour.status, error, provider=provider)
            elif behaviour.kind == "rate_limited":
                error = _error_body(provider, 429, "Rate limit reached; try again later.")
                retry = {"retry-after": f"{behaviour.retry_after:g}"}
                self._send(429, error, provider=provider, headers=retry)
            elif behaviour.variant == "not_json":
                self._send_raw(200, b"<html>Bad gateway, or something</html>", provider)
            else:
                self._send(200, _nonsense(provider, fake, behaviour, body), provider=provider)

        def _send(
            self,
            status: int,
            payload: Any,
            *,
            provider: Provider | None = None,
            headers: dict[str, str] | None = None,
        ) -> None:
            self._send_raw(status, json.dumps(payload).encode(), provider, headers)

        def _send_raw(
            self,
            status: int,
            data: bytes,
            provider: Provider | None,
            headers: dict[str, str] | None = None,
        ) -> None:
            try:
                self.send_response(status)
                # Always JSON, even for the not-JSON body: the SDK has to find out itself.
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                request_header = "x-request-id" if provider == "openai" else "request-id"
                self.send_header(request_header, f"req_{fake._new_id()}")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout): nothing to tell anyone.
                self.close_connection = True

    return Handler
