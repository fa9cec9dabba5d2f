"""What every provider is and answers, and the two kinds of failure the chain tells apart.

A transient failure (timeout, connection error, 429, 408/409, 5xx) may well
succeed if tried again shortly, so the chain retries it with backoff. A
permanent one (a bad key, a refused request, an answer that is no summary)
would fail the same way again, so the chain moves straight on to the next
provider. Both count against the provider's circuit breaker.

Error messages are ours, built from the status code and exception type only:
SDK messages can quote the request or part of the API key, and these errors
end up in logs and in the job table.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from services.summarizer.prompt import Prompt

# Statuses worth another try: request timeout, conflict (the SDKs retry it too),
# rate limited. Every 5xx is too, including Anthropic's 529 "overloaded".
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
# Longest Retry-After we take from a provider; more means "not soon": move on.
_RETRY_AFTER_MAX_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Completion:
    """A usable summary and what it cost; text is already clean plain text."""

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int


class Provider(Protocol):
    """A way to turn a prompt into a summary; raises ProviderError subclasses only."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def complete(self, prompt: Prompt) -> Completion: ...


class ProviderError(Exception):
    """A provider could not give a summary this time."""

    # The metric outcome this failure is counted under.
    outcome = "permanent_error"

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status


class TransientProviderError(ProviderError):
    """Worth another try after a backoff (timeouts, connection errors, 429, 5xx)."""

    outcome = "transient_error"

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(provider, message, status=status)
        # What the provider asked us to wait (Retry-After), when it said.
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Would fail the same way again (bad key, refused request): next provider."""


class InvalidCompletion(PermanentProviderError):
    """The provider answered, but not with a summary (empty, filtered, unparseable)."""

    outcome = "invalid"


def is_transient_status(status: int) -> bool:
    return status in _TRANSIENT_STATUSES or status >= 500


def status_error(
    provider: str, status: int, error_type: str, headers: Mapping[str, str]
) -> ProviderError:
    """The error for an HTTP error answer, by status alone (never the body: see module doc)."""
    message = f"HTTP {status} ({error_type})"
    if is_transient_status(status):
        return TransientProviderError(
            provider, message, status=status, retry_after=retry_after_seconds(headers)
        )
    return PermanentProviderError(provider, message, status=status)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds a provider asked us to wait: retry-after-ms, retry-after (seconds or a date)."""
    value: float | None = None
    if milliseconds := headers.get("retry-after-ms"):
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = None
    if value is None and (raw := headers.get("retry-after")):
        try:
            value = float(raw)
        except ValueError:
            when = email.utils.parsedate_tz(raw)
            value = None if when is None else email.utils.mktime_tz(when) - time.time()
    if value is None or math.isnan(value):
        return None
    return min(max(value, 0.0), _RETRY_AFTER_MAX_SECONDS)


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """An SDK's exception classes; the OpenAI and Anthropic SDKs share one generated shape."""

    timeout: type[Exception]
    connection: type[Exception]
    status: type[Exception]
    validation: type[Exception]


def sdk_error(provider: str, error: Exception, sdk: SdkErrors) -> ProviderError:
    """Our error for an SDK's exception (status errors carry `status_code` and `response`)."""
    if isinstance(error, sdk.timeout):
        return TransientProviderError(provider, "timed out")
    if isinstance(error, sdk.connection):
        return TransientProviderError(provider, "connection failed")
    if isinstance(error, sdk.status):
        status: int = getattr(error, "status_code", 0)
        response = getattr(error, "response", None)
        headers: Mapping[str, str] = getattr(response, "headers", {})
        return status_error(provider, status, type(error).__name__, headers)
    if isinstance(error, sdk.validation):
        return InvalidCompletion(provider, "response body could not be parsed")
    return PermanentProviderError(provider, type(error).__name__)


def reported_tokens(usage: object, field: str, estimate: int) -> int:
    """A token count from a response's usage, or our estimate when the provider left it out."""
    value = getattr(usage, field, None)
    return value if isinstance(value, int) and value >= 0 else estimate


def quiet_sdk_logs(logger_name: str) -> None:
    """Keep an SDK's logger at INFO or above, even when the service runs at DEBUG.

    The OpenAI and Anthropic SDKs log every request's options at DEBUG, the
    whole prompt (users' posts and comments) included; that must not reach our
    log stream just because someone turned debugging on.
    """
    logger = logging.getLogger(logger_name)
    if logger.level < logging.INFO:
        logger.setLevel(logging.INFO)
