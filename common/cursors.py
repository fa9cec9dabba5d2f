"""Opaque, tamper-evident keyset cursors.

A cursor holds the sort key of the last item a page showed (never an OFFSET),
is bound to the listing it came from (its scope: sort, window, filters), and
is signed with HMAC-SHA256, so a cursor that was edited, forged or carried to
another listing is refused as bad input instead of silently paging wrongly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from common.errors import InvalidArgument

_MAC_BYTES = 16
MAX_CURSOR_LENGTH = 1024


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, scope: str, body: bytes) -> bytes:
    return hmac.new(secret, scope.encode() + b"\0" + body, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(position: list[Any], *, secret: bytes, scope: str) -> str:
    body = orjson.dumps(position)
    return _b64encode(_mac(secret, scope, body) + body)


def decode_cursor(token: str, *, secret: bytes, scope: str) -> list[Any]:
    """The position in token; INVALID_ARGUMENT (field `cursor`) when it is not ours."""
    invalid = InvalidArgument.for_field("cursor", "invalid cursor")
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        raw = _b64decode(token)
    except (binascii.Error, ValueError) as error:
        raise invalid from error
    mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, scope, body)):
        raise invalid
    try:
        position = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise invalid from error
    if not isinstance(position, list):
        raise invalid
    return position
