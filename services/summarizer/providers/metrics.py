"""Prometheus metrics of model calls: outcomes, latency, tokens and what they cost.

Labels are the provider and the configured model (never the dated model name
a provider reports back), so series stay few and prices match by name.
Breaker states come from common.breaker's own gauge.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram

from services.summarizer.providers.base import Completion

LLM_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

LLM_CALLS = Counter(
    "agora_llm_calls_total",
    "Summary attempts by provider, model and outcome "
    "(ok, transient_error, permanent_error, invalid, skipped_open).",
    ["provider", "model", "outcome"],
)
LLM_CALL_SECONDS = Histogram(
    "agora_llm_call_duration_seconds",
    "Time one attempt at a provider took, whatever its outcome.",
    ["provider"],
    buckets=LLM_CALL_BUCKETS,
)
LLM_TOKENS = Counter(
    "agora_llm_tokens_total",
    "Tokens of successful summaries as the provider reported them, by direction (input, output).",
    ["provider", "model", "direction"],
)
LLM_COST = Counter(
    "agora_llm_cost_usd_total",
    "Estimated cost of successful summaries in US dollars, from AGORA_SUMMARIZER_PRICES.",
    ["provider", "model"],
)


def cost_usd(completion: Completion, prices: Mapping[str, tuple[float, float]]) -> float:
    """Cost at `prices` (USD per million tokens, input and output); 0 for unpriced models."""
    input_price, output_price = prices.get(completion.model, (0.0, 0.0))
    return (completion.input_tokens * input_price + completion.output_tokens * output_price) / 1e6


def record_usage(completion: Completion, prices: Mapping[str, tuple[float, float]]) -> None:
    labels = (completion.provider, completion.model)
    LLM_TOKENS.labels(*labels, "input").inc(completion.input_tokens)
    LLM_TOKENS.labels(*labels, "output").inc(completion.output_tokens)
    LLM_COST.labels(*labels).inc(cost_usd(completion, prices))
