"""Model providers of summaries (OpenAI, Anthropic, local extractive) and the chain over them.

The worker needs only `build_chain(settings)` and `SummaryChain.summarize(prompt)`;
see chain.py for the fallback, retry and breaker rules.
"""
