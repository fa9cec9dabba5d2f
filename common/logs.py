"""Structured JSON logs on stdout, one line per record, with request context.

Every record carries the service name, the request id and caller from
common.context, and the trace and span ids once OpenTelemetry is active.
Values under secret-looking keys are masked before they are written, so a
token or password passed as `extra` never reaches the log stream.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from common.context import caller_id_var, request_id_var

_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|authorization|api[_-]?key|cookie", re.IGNORECASE
)
_MASK = "[redacted]"
# Attributes every LogRecord has; anything else came in through `extra=`.
# uvicorn adds `color_message`, a copy of the message with terminal colour codes.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _redact(key: str, value: Any) -> Any:
    # A number is a measurement (input_tokens, token_count), never a credential.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return _MASK if _SECRET_KEY.search(key) else value


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """What came in through `extra=`, with secret-looking values masked."""
    return {
        key: _redact(key, value)
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


def _trace_ids() -> tuple[str | None, str | None]:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return None, None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (request_id := request_id_var.get()) is not None:
            entry["request_id"] = request_id
        if (user_id := caller_id_var.get()) is not None:
            entry["user_id"] = user_id
        trace_id, span_id = _trace_ids()
        if trace_id:
            entry["trace_id"], entry["span_id"] = trace_id, span_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(JsonFormatter):
    """A human-friendly line for local terminals; same fields, fewer braces."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if (request_id := request_id_var.get()) is not None:
            extras["request_id"] = request_id
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger (ours, grpc's, uvicorn's) to one formatter on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else ConsoleFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Access lines come from our own middleware, with the request id in them.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
