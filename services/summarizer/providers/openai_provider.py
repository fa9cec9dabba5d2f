"""OpenAI (or any OpenAI-compatible endpoint) through the official SDK's chat completions.

The SDK's own retries are off (`max_retries=0`): the chain retries with
tenacity and records every attempt on the breaker, and two layers of retries
would multiply calls and hide them from both. Its timeout applies to each
phase of the request (connect, each read, ...), so the whole call is also
bounded by `asyncio.timeout`, and a server trickling bytes cannot hold it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai

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
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    status=openai.APIStatusError,
    validation=openai.APIResponseValidationError,
)


class OpenAIProvider:
    """Chat completions with one system and one user message."""

    name = "openai"

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
        quiet_sdk_logs("openai")
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=0
        )

    async def complete(self, prompt: Prompt) -> Completion:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=[
                        {"role": "system", "content": prompt.system},
                        {"role": "user", "content": prompt.user},
                    ],
                    temperature=self._temperature,
                    max_tokens=prompt.max_output_tokens,
                )
        except TimeoutError:
            raise TransientProviderError(self.name, "timed out") from None
        except openai.OpenAIError as error:
            # Not chained: the SDK's message may quote the key or the request.
            raise sdk_error(self.name, error, _ERRORS) from None
        except ValueError:
            # A 200 whose body is not JSON at all.
            raise InvalidCompletion(self.name, "response body is not JSON") from None
        return self._completion(response, prompt)

    def _completion(self, response: Any, prompt: Prompt) -> Completion:
        # The SDK does not validate bodies strictly, so a malformed one shows up
        # here as missing or mistyped attributes.
        try:
            choice = response.choices[0]
            content, finish_reason = choice.message.content, choice.finish_reason
        except (AttributeError, IndexError, KeyError, TypeError):
            raise InvalidCompletion(self.name, "response has no message") from None
        if finish_reason == "content_filter":
            raise InvalidCompletion(self.name, "answer was filtered")
        if not isinstance(content, str):
            raise InvalidCompletion(self.name, "message has no text")
        text = clean_summary(content, max_chars=self._max_chars, provider=self.name)
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            provider=self.name,
            model=self.model,
            input_tokens=reported_tokens(usage, "prompt_tokens", prompt.estimated_input_tokens),
            output_tokens=reported_tokens(usage, "completion_tokens", estimate_tokens(text)),
        )

    async def aclose(self) -> None:
        await self._client.close()
