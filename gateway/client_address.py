"""The client's real address and scheme, believing proxy headers only from trusted proxies.

Rate limits per IP and HSTS both depend on who the client is and how it
connected. Behind a load balancer the peer is the balancer, and the client is
in `X-Forwarded-For`; but anyone can send that header, so it is believed only
when the peer is one of AGORA_TRUSTED_PROXIES, and then read from the right:
each trusted hop appends the address it saw, so the first address from the
right that is not a trusted proxy is the client (whatever a client wrote
further left is ignored). This middleware rewrites the ASGI scope's `client`
and `scheme` once, so everything after it (limits, logs, HSTS) sees the same
answer. It replaces uvicorn's own proxy handling, which the gateway turns off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_FOR = b"x-forwarded-for"
_FORWARDED_PROTO = b"x-forwarded-proto"
_SCHEMES = {"http": "http", "https": "https"}


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """IPs or CIDRs as networks; ValueError names the first entry that is neither."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidate = text.strip()
    if candidate.startswith("[") and "]" in candidate:  # [v6]:port
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.partition(":")[0]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


class TrustedProxies:
    """Decides whether a peer is one of ours and who the client behind it is."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in network for network in self._networks)

    def client_of(self, peer: str, forwarded_for: str) -> str:
        """The rightmost address of the chain peer <- X-Forwarded-For that we do not trust.

        A malformed entry stops the walk there: whatever stands left of it was
        written by someone we cannot vouch for, so the last good hop wins.
        """
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            if not self.trusts(client):
                break
            address = _address(hop)
            if address is None:
                break
            client = str(address)
        return client


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in scope["headers"] if key == name]
    return ",".join(values) if values else None


class ClientAddressMiddleware:
    """Rewrites scope["client"] and scope["scheme"] from trusted proxies' headers."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str]) -> None:
        self.app = app
        self.proxies = TrustedProxies(parse_networks(trusted_proxies))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.proxies and scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer is not None and self.proxies.trusts(peer[0]):
                forwarded_for = _header(scope, _FORWARDED_FOR)
                if forwarded_for:
                    scope["client"] = (self.proxies.client_of(peer[0], forwarded_for), 0)
                proto = _header(scope, _FORWARDED_PROTO)
                if proto:
                    # The hop nearest to us is the one that terminated TLS.
                    scheme = _SCHEMES.get(proto.split(",")[-1].strip().lower())
                    if scheme is not None:
                        scope["scheme"] = scheme
        await self.app(scope, receive, send)
