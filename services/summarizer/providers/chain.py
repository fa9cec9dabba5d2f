"""Providers in order, each behind its breaker and retries: the first good answer wins.

Order: OpenAI (when its key is set), Anthropic (when its key is set), then the
local extractive summariser, always last and always there, so a fresh machine
with no keys and no network still makes summaries, and an outage of both
vendors degrades summaries instead of failing them.

Per provider:
- An open breaker skips it without a call (counted as `skipped_open`).
- Transient errors are retried with tenacity: at most `max_attempts` calls in
  all, exponential backoff with jitter between `retry_initial` and `retry_max`
  seconds, longer when the provider asked for it with Retry-After. Retrying
  stops early once the breaker opens, or when the provider asks us to wait
  longer than `retry_max` (the next provider answers sooner).
- Permanent errors and invalid answers are not retried: the next provider goes.
- Every call's outcome is recorded on the breaker, so the breaker sees each
  attempt, not each summary.

The local provider has no breaker and no retries: it does no I/O, so it
cannot be "down", and a failure there is a bug that retrying would repeat.
Only when it fails too does `summarize` raise SummaryFailed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from common.breaker import BreakerState, CircuitBreaker
from services.summarizer.prompt import Prompt
from services.summarizer.providers.anthropic_provider import AnthropicProvider
from services.summarizer.providers.base import (
    Completion,
    PermanentProviderError,
    Provider,
    ProviderError,
    TransientProviderError,
)
from services.summarizer.providers.local import LocalProvider
from services.summarizer.providers.metrics import (
    LLM_CALL_SECONDS,
    LLM_CALLS,
    cost_usd,
    record_usage,
)
from services.summarizer.providers.openai_provider import OpenAIProvider
from services.summarizer.settings import SummarizerSettings

log = logging.getLogger("agora.summarizer.providers")


class SummaryFailed(Exception):
    """Every provider, the local one included, failed; the message names each failure."""

    def __init__(self, errors: Sequence[ProviderError]) -> None:
        super().__init__("no provider could summarise: " + "; ".join(map(str, errors)))
        self.errors = tuple(errors)


class BreakerOpen(ProviderError):
    """The provider's breaker refused the call: skipped, nothing was sent."""

    outcome = "skipped_open"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_seconds: float = 0.5
    max_seconds: float = 8.0


@dataclass(frozen=True, slots=True)
class ChainLink:
    provider: Provider
    # None: never skipped (the local provider).
    breaker: CircuitBreaker | None


class SummaryChain:
    """Providers tried in order; see the module doc for the rules."""

    def __init__(
        self,
        links: Sequence[ChainLink],
        *,
        retry: RetryPolicy,
        prices: Mapping[str, tuple[float, float]],
    ) -> None:
        if not links:
            raise ValueError("a summary chain needs at least one provider")
        self.links = tuple(links)
        self._retry = retry
        self._prices = dict(prices)

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(link.provider for link in self.links)

    @property
    def has_remote_provider(self) -> bool:
        """A model behind an API is configured (the breakered links are the remote ones)."""
        return any(link.breaker is not None for link in self.links)

    async def summarize(self, prompt: Prompt) -> Completion:
        """The first good answer down the chain; SummaryFailed when there is none."""
        errors: list[ProviderError] = []
        for link in self.links:
            try:
                return await self._with_retries(link, prompt)
            except ProviderError as error:
                errors.append(error)
                # A skip is the breaker working as meant; the attempts were logged already.
                level = logging.INFO if isinstance(error, BreakerOpen) else logging.WARNING
                log.log(
                    level,
                    "summary provider gave up, trying the next",
                    extra={
                        "provider": link.provider.name,
                        "outcome": error.outcome,
                        "error": str(error),
                        "input_hash": prompt.input_hash,
                    },
                )
        raise SummaryFailed(errors)

    async def aclose(self) -> None:
        """Close the providers' HTTP clients."""
        for provider in self.providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()

    async def _with_retries(self, link: ChainLink, prompt: Prompt) -> Completion:
        attempts = itertools.count(1)

        async def attempt() -> Completion:
            return await self._attempt(link, prompt, next(attempts))

        retrying = AsyncRetrying(
            stop=_StopRetrying(self._retry, link.breaker),
            wait=self._wait,
            retry=retry_if_exception_type(TransientProviderError),
            reraise=True,
        )
        return await retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, stretched to a Retry-After the provider sent.

        initial * 2^(n-1) plus up to `initial` of jitter, so replicas retrying
        together spread out; never more than `max_seconds`.
        """
        policy = self._retry
        exponential = policy.initial_seconds * 2.0 ** (state.attempt_number - 1)
        jitter = random.uniform(0, policy.initial_seconds)  # noqa: S311 - spreading, not secrecy
        delay = exponential + jitter
        error = _last_error(state)
        if isinstance(error, TransientProviderError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return min(delay, policy.max_seconds)

    async def _attempt(self, link: ChainLink, prompt: Prompt, number: int) -> Completion:
        """One call to one provider, recorded on its breaker, in the metrics and the log."""
        provider, breaker = link.provider, link.breaker
        labels = (provider.name, provider.model)
        if breaker is not None and not breaker.allow():
            LLM_CALLS.labels(*labels, BreakerOpen.outcome).inc()
            raise BreakerOpen(provider.name, f"circuit breaker {breaker.state.label}")
        started = time.perf_counter()
        try:
            completion = await provider.complete(prompt)
        except asyncio.CancelledError:
            if breaker is not None:
                breaker.release()
            raise
        except ProviderError as error:
            self._failed(link, error, number, time.perf_counter() - started)
            raise
        except Exception as error:
            # A bug, not an outage; logged with its traceback, counted as permanent.
            log.exception("summary provider crashed", extra={"provider": provider.name})
            failure = PermanentProviderError(provider.name, f"unexpected {type(error).__name__}")
            self._failed(link, failure, number, time.perf_counter() - started)
            raise failure from error
        elapsed = time.perf_counter() - started
        if breaker is not None:
            breaker.record_success()
        LLM_CALL_SECONDS.labels(provider.name).observe(elapsed)
        LLM_CALLS.labels(*labels, "ok").inc()
        record_usage(completion, self._prices)
        log.info(
            "summary made",
            extra={
                "provider": provider.name,
                "model": provider.model,
                "attempt": number,
                "duration_ms": round(elapsed * 1000),
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
                "cost_usd": cost_usd(completion, self._prices),
                "input_hash": prompt.input_hash,
            },
        )
        return completion

    def _failed(self, link: ChainLink, error: ProviderError, number: int, elapsed: float) -> None:
        provider = link.provider
        if link.breaker is not None:
            link.breaker.record_failure()
        LLM_CALL_SECONDS.labels(provider.name).observe(elapsed)
        LLM_CALLS.labels(provider.name, provider.model, error.outcome).inc()
        log.warning(
            "summary attempt failed",
            extra={
                "provider": provider.name,
                "model": provider.model,
                "attempt": number,
                "outcome": error.outcome,
                "status": error.status,
                "error": str(error),
                "duration_ms": round(elapsed * 1000),
                "breaker_state": None if link.breaker is None else link.breaker.state.label,
            },
        )


@dataclass(frozen=True, slots=True)
class _StopRetrying:
    """Stop after the last attempt, once the breaker opened, or when asked to wait too long."""

    policy: RetryPolicy
    breaker: CircuitBreaker | None

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        if self.breaker is not None and self.breaker.state is BreakerState.OPEN:
            return True
        error = _last_error(state)
        return (
            isinstance(error, TransientProviderError)
            and error.retry_after is not None
            and error.retry_after > self.policy.max_seconds
        )


def _last_error(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return outcome.exception() if outcome is not None and outcome.failed else None


def build_chain(settings: SummarizerSettings) -> SummaryChain:
    """OpenAI and Anthropic when their keys are set, then local; each vendor with its breaker."""
    links: list[ChainLink] = []
    if settings.summarizer_openai_api_key is not None:
        openai_provider = OpenAIProvider(
            api_key=settings.summarizer_openai_api_key.get_secret_value(),
            model=settings.summarizer_openai_model,
            base_url=settings.summarizer_openai_base_url,
            timeout_seconds=settings.summarizer_provider_timeout_seconds,
            temperature=settings.summarizer_temperature,
            max_summary_chars=settings.summarizer_max_summary_chars,
        )
        links.append(ChainLink(openai_provider, _breaker(openai_provider.name, settings)))
    if settings.summarizer_anthropic_api_key is not None:
        anthropic_provider = AnthropicProvider(
            api_key=settings.summarizer_anthropic_api_key.get_secret_value(),
            model=settings.summarizer_anthropic_model,
            base_url=settings.summarizer_anthropic_base_url,
            timeout_seconds=settings.summarizer_provider_timeout_seconds,
            temperature=settings.summarizer_temperature,
            max_summary_chars=settings.summarizer_max_summary_chars,
        )
        links.append(ChainLink(anthropic_provider, _breaker(anthropic_provider.name, settings)))
    local = LocalProvider(max_summary_chars=settings.summarizer_max_summary_chars)
    links.append(ChainLink(local, None))
    log.info(
        "summary providers",
        extra={"providers": [f"{link.provider.name}:{link.provider.model}" for link in links]},
    )
    return SummaryChain(
        links,
        retry=RetryPolicy(
            max_attempts=settings.summarizer_max_attempts,
            initial_seconds=settings.summarizer_retry_initial_seconds,
            max_seconds=settings.summarizer_retry_max_seconds,
        ),
        prices=settings.summarizer_prices,
    )


def _breaker(name: str, settings: SummarizerSettings) -> CircuitBreaker:
    return CircuitBreaker(
        name,
        failure_ratio=settings.summarizer_breaker_failure_ratio,
        window_seconds=settings.summarizer_breaker_window_seconds,
        minimum_calls=settings.summarizer_breaker_minimum_calls,
        open_seconds=settings.summarizer_breaker_open_seconds,
    )
