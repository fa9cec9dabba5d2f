"""One router per resource of the public API; the app includes every one in ROUTERS."""

from fastapi import APIRouter

from gateway.routers import (
    auth,
    comments,
    communities,
    health,
    posts,
    search,
    summaries,
    users,
    votes,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    auth.router,
    users.router,
    communities.router,
    posts.router,
    comments.router,
    votes.router,
    summaries.router,
    search.router,
)
