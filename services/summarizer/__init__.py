"""The summarizer service: AI summaries of threads, made in the background.

It follows post and comment events, debounces them per post into jobs in its
own schema, and makes summaries with OpenAI, then Anthropic, then a local
extractive summariser, whichever answers first. Summaries live in its schema
and, for fast reads, in Redis for a day.
"""
