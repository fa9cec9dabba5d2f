"""Settings of the summarizer process, read once from the environment at start-up.

Besides everything in common.settings.ServiceSettings (AGORA_ENVIRONMENT,
AGORA_DB_*, AGORA_REDIS_*, AGORA_NATS_*, AGORA_SERVICE_ADDRESSES, ...), the
summarizer reads:

| variable | default | meaning |
|---|---|---|
| AGORA_GRPC_PORT | 50056 | gRPC listen port |
| AGORA_METRICS_PORT | 9106 | Prometheus /metrics port; 0 = off |
| AGORA_SUMMARIZER_OPENAI_API_KEY | (unset) | turns the OpenAI provider on |
| AGORA_SUMMARIZER_OPENAI_BASE_URL | (the SDK's) | another OpenAI-compatible endpoint |
| AGORA_SUMMARIZER_OPENAI_MODEL | gpt-4o | |
| AGORA_SUMMARIZER_ANTHROPIC_API_KEY | (unset) | turns the Anthropic provider on |
| AGORA_SUMMARIZER_ANTHROPIC_BASE_URL | (the SDK's) | |
| AGORA_SUMMARIZER_ANTHROPIC_MODEL | claude-3-5-sonnet-20241022 | |
| AGORA_SUMMARIZER_TEMPERATURE | 0.3 | |
| AGORA_SUMMARIZER_PROVIDER_TIMEOUT_SECONDS | 30 | one LLM call, connect to last byte |
| AGORA_SUMMARIZER_MAX_ATTEMPTS | 3 | tries per provider on transient errors |
| AGORA_SUMMARIZER_RETRY_INITIAL_SECONDS | 0.5 | first backoff; doubles, with jitter |
| AGORA_SUMMARIZER_RETRY_MAX_SECONDS | 8 | longest backoff |
| AGORA_SUMMARIZER_BREAKER_FAILURE_RATIO | 0.5 | a provider's breaker opens at this failure ratio |
| AGORA_SUMMARIZER_BREAKER_WINDOW_SECONDS | 60 | over the calls of this window |
| AGORA_SUMMARIZER_BREAKER_MINIMUM_CALLS | 4 | and only once it saw this many |
| AGORA_SUMMARIZER_BREAKER_OPEN_SECONDS | 60 | open for this long, then one trial call |
| AGORA_SUMMARIZER_INPUT_TOKEN_BUDGET | 6000 | tokens of thread sent to a model |
| AGORA_SUMMARIZER_MAX_OUTPUT_TOKENS | 512 | the model's answer |
| AGORA_SUMMARIZER_MAX_SUMMARY_CHARS | 2000 | longest summary stored |
| AGORA_SUMMARIZER_PRICES | (see below) | USD per million tokens, by model, for the cost metric |
| AGORA_SUMMARIZER_DEBOUNCE_SECONDS | 5 | quiet time after the last event before summarising |
| AGORA_SUMMARIZER_MAX_DELAY_SECONDS | 60 | a busy thread is summarised at least this often |
| AGORA_SUMMARIZER_MIN_NEW_COMMENTS | 5 | re-summarise after this many new comments ... |
| AGORA_SUMMARIZER_GROWTH_RATIO | 0.2 | ... and at least this share of the summarised ones |
| AGORA_SUMMARIZER_CONCURRENCY | 4 | summaries made at once by one process |
| AGORA_SUMMARIZER_LEASE_SECONDS | 120 | a claimed job returns to the queue after this |
| AGORA_SUMMARIZER_CACHE_TTL_SECONDS | 86400 | Redis copy of a summary |
| AGORA_SUMMARIZER_DAILY_REQUESTS_PER_USER | 50 | on-demand summaries per user per 24 h |
| AGORA_SUMMARIZER_UPSTREAM_DEADLINE_SECONDS | 5 | calls to posts and comments |
| AGORA_SUMMARIZER_EVENT_ACK_WAIT_SECONDS | 30 | redelivery of an event a dead process held |

With neither API key set the local extractive summariser is the only
provider, so summaries work on a fresh machine with no network.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from common.settings import ServiceSettings
from common.topology import service

_SPEC = service("summarizer")

# USD per million tokens (input, output), list prices when written; override
# with AGORA_SUMMARIZER_PRICES='{"gpt-4o": [2.5, 10]}'. Unknown models cost 0.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "claude-3-5-sonnet-20241022": (3.00, 15.00),
    "claude-3-5-sonnet-latest": (3.00, 15.00),
}


class SummarizerSettings(ServiceSettings):
    """Everything the summarizer process needs; see the module docstring for the variables."""

    grpc_port: int = Field(default=_SPEC.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(default=_SPEC.metrics_port, ge=0, le=65535)

    summarizer_openai_api_key: SecretStr | None = None
    summarizer_openai_base_url: str | None = None
    summarizer_openai_model: str = "gpt-4o"
    summarizer_anthropic_api_key: SecretStr | None = None
    summarizer_anthropic_base_url: str | None = None
    summarizer_anthropic_model: str = "claude-3-5-sonnet-20241022"
    summarizer_temperature: float = Field(default=0.3, ge=0, le=2)
    summarizer_provider_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    summarizer_max_attempts: int = Field(default=3, ge=1, le=10)
    summarizer_retry_initial_seconds: float = Field(default=0.5, ge=0)
    summarizer_retry_max_seconds: float = Field(default=8.0, ge=0)

    summarizer_breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    summarizer_breaker_window_seconds: float = Field(default=60.0, gt=0)
    summarizer_breaker_minimum_calls: int = Field(default=4, ge=1)
    summarizer_breaker_open_seconds: float = Field(default=60.0, gt=0)

    summarizer_input_token_budget: int = Field(default=6000, ge=500, le=200_000)
    summarizer_max_output_tokens: int = Field(default=512, ge=32, le=4096)
    summarizer_max_summary_chars: int = Field(default=2000, ge=200, le=20_000)
    summarizer_prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES)
    )

    summarizer_debounce_seconds: float = Field(default=5.0, ge=0)
    summarizer_max_delay_seconds: float = Field(default=60.0, ge=0)
    summarizer_min_new_comments: int = Field(default=5, ge=1)
    summarizer_growth_ratio: float = Field(default=0.2, ge=0)
    summarizer_concurrency: int = Field(default=4, ge=1, le=64)
    summarizer_lease_seconds: float = Field(default=120.0, ge=5)
    summarizer_cache_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    summarizer_daily_requests_per_user: int = Field(default=50, ge=0)
    summarizer_upstream_deadline_seconds: float = Field(default=5.0, gt=0)
    summarizer_event_ack_wait_seconds: float = Field(default=30.0, ge=1, le=3600)

    @field_validator("summarizer_openai_api_key", "summarizer_anthropic_api_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: Any) -> Any:
        # Deploy tools often render an unset secret as "": that means "off", not a key.
        if isinstance(value, str) and not value.strip():
            return None
        return value
