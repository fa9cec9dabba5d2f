"""Which limits a request counts against, from the settings and one table of routes.

Every `/api/` request counts against one general limit: its user's (a valid
access token) or, without one, its client IP's. Some routes count against
more: everything under `/api/v1/auth/` per IP (password guessing, account
farming), new posts per user, and votes per user and per IP (vote
manipulation: one account voting in bulk, or many accounts from one place).
A request is let through only if every limit it counts against has room.

Routes are named by method and path template, as FastAPI declares them; a
unit test checks that every template here exists, so renaming a route cannot
silently drop its limit. Limits keyed by user are skipped for requests
without a valid token: those are refused with 401 by the route anyway.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from starlette.routing import compile_path

from gateway.ratelimit.rates import Rate
from gateway.settings import GatewaySettings

Subject = Literal["user", "ip"]
API_PREFIX = "/api/"
AUTH_PREFIX = "/api/v1/auth/"
# IPv6 clients usually get a whole /64: limiting single addresses would be no limit.
IPV6_PREFIX_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Limit:
    """A named rate, counted per user or per client IP.

    `local_fallback` limits are still enforced per process when Redis is
    down (the auth endpoints, where failing open would invite password
    guessing); all others fail open then.
    """

    name: str
    rate: Rate
    per: Subject
    local_fallback: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    """One limit applied to one subject: a user id, or a client IP (or IPv6 /64)."""

    limit: Limit
    subject: str

    @property
    def key(self) -> str:
        return f"{self.limit.name}:{self.subject}"


# (methods, path template, names of the extra limits the route counts against)
ROUTE_LIMITS: tuple[tuple[frozenset[str], str, tuple[str, ...]], ...] = (
    (frozenset({"POST"}), "/api/v1/communities/{name}/posts", ("posts",)),
    (frozenset({"PUT"}), "/api/v1/posts/{post_id}/vote", ("votes", "votes_ip")),
    (frozenset({"PUT"}), "/api/v1/comments/{comment_id}/vote", ("votes", "votes_ip")),
)


def client_subject(host: str) -> str:
    """The IP a limit counts: the address itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # e.g. a test client's name; still one subject per client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX_LENGTH), strict=False))
    return str(address)


class LimitPolicy:
    """The limits of the deployment and the routes they apply to."""

    def __init__(
        self,
        limits: Iterable[Limit],
        routes: Iterable[tuple[frozenset[str], str, tuple[str, ...]]] = ROUTE_LIMITS,
    ) -> None:
        self.limits = {limit.name: limit for limit in limits}
        self._routes: list[tuple[frozenset[str], str, re.Pattern[str], tuple[Limit, ...]]] = []
        for methods, template, names in routes:
            extra = tuple(self.limits[name] for name in names if name in self.limits)
            if extra:
                self._routes.append((methods, template, compile_path(template)[0], extra))

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> LimitPolicy:
        if not settings.rate_limits_enabled:
            return cls(())
        candidates: list[tuple[str, Rate | None, Subject, bool]] = [
            ("user", settings.rate_limit_user, "user", False),
            ("anonymous", settings.rate_limit_anonymous, "ip", False),
            ("auth", settings.rate_limit_auth, "ip", True),
            ("posts", settings.rate_limit_posts, "user", False),
            ("votes", settings.rate_limit_votes, "user", False),
            ("votes_ip", settings.rate_limit_votes_per_ip, "ip", False),
        ]
        return cls(
            Limit(name, rate, per, fallback)
            for name, rate, per, fallback in candidates
            if rate is not None
        )

    def __bool__(self) -> bool:
        return bool(self.limits)

    @property
    def templates(self) -> list[str]:
        return [template for _, template, _, _ in self._routes]

    def route_limits(self, method: str, path: str) -> list[Limit]:
        """The limits a request counts against, whoever sends it (for docs and checks)."""
        if not path.startswith(API_PREFIX):
            return []
        found: list[Limit] = []
        if path.startswith(AUTH_PREFIX) and "auth" in self.limits:
            found.append(self.limits["auth"])
        for methods, _, pattern, extra in self._routes:
            if method in methods and pattern.match(path):
                found.extend(extra)
        return found

    def checks(self, method: str, path: str, *, user_id: str | None, host: str) -> list[Check]:
        """What this request counts against, most general first."""
        if not path.startswith(API_PREFIX):
            return []
        subjects: dict[Subject, str] = {"ip": client_subject(host)}
        if user_id:
            subjects["user"] = user_id
        general = self.limits.get("user" if user_id else "anonymous")
        found = [general] if general is not None else []
        found += self.route_limits(method, path)
        return [Check(limit, subjects[limit.per]) for limit in found if limit.per in subjects]
