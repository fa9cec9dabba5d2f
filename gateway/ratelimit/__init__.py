"""Distributed rate limits: sliding windows in Redis, a per-process fallback, ASGI middleware.

`rates` parses the settings' `100/minute`; `policy` says which limits a
request counts against; `windows` counts (Redis and in-process); `limiter`
chooses between them when Redis is down; `middleware` applies it all.
"""
