"""Anthropic through the official SDK's messages API.

Same rules as the OpenAI provider: the SDK's retries are off (the chain
retries), the whole call is bounded by `asyncio.timeout` on top of the SDK's
per-phase timeout, and SDK messages never reach our errors.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic

from services.summarizer.prompt import Prompt, estimate_tokens
from services.summarizer.providers.base import (
    Completion,
    InvalidCompletion,
    SdkErrors,
    TransientProviderError,
    quiet_sdk_logs,
    reported_tokens,
    sdk_error,
)
from services.summarizer.text import clean_summary

_ERRORS = SdkErrors(
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    status=anthropic.APIStatusError,
    validation=anthropic.APIResponseValidationError,
)


class AnthropicProvider:
    """The messages API with `system=` and one user message."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None,
        timeout_seconds: float,
        temperature: float,
        max_summary_chars: int,
    ) -> None:
        self.model = model
        self._timeout = timeout_seconds
        self._temperature = temperature
        self._max_chars = max_summary_chars
        quiet_sdk_logs("anthropic")
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=0
        )

    async def complete(self, prompt: Prompt) -> Completion:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.messages.create(
                    model=self.model,
                    system=prompt.system,
                    messages=[{"role": "user", "content": prompt.user}],
                    temperature=self._temperature,
                    max_tokens=prompt.max_output_tokens,
                )
        except TimeoutError:
            raise TransientProviderError(self.name, "timed out") from None
        except anthropic.AnthropicError as error:
            # Not chained: the SDK's message may quote the key or the request.
            raise sdk_error(self.name, error, _ERRORS) from None
        except ValueError:
            # A 200 whose body is not JSON at all.
            raise InvalidCompletion(self.name, "response body is not JSON") from None
        return self._completion(response, prompt)

    def _completion(self, response: Any, prompt: Prompt) -> Completion:
        # Bodies are not validated strictly: a malformed one shows up here as
        # missing or mistyped attributes.
        try:
            blocks = list(response.content)
            stop_reason = response.stop_reason
        except (AttributeError, TypeError):
            raise InvalidCompletion(self.name, "response has no content") from None
        if stop_reason == "refusal":
            raise InvalidCompletion(self.name, "answer was refused")
        parts = [getattr(block, "text", None) for block in blocks]
        content = "".join(part for part in parts if isinstance(part, str))
        text = clean_summary(content, max_chars=self._max_chars, provider=self.name)
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            provider=self.name,
            model=self.model,
            input_tokens=reported_tokens(usage, "input_tokens", prompt.estimated_input_tokens),
            output_tokens=reported_tokens(usage, "output_tokens", estimate_tokens(text)),
        )

    async def aclose(self) -> None:
        await self._client.close()
