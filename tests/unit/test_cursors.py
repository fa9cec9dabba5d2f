from __future__ import annotations

import base64

import pytest

from common.cursors import decode_cursor, encode_cursor
from common.errors import InvalidArgument

SECRET = b"test-secret"


def test_round_trip() -> None:
    position = [1234.5, "0192f0c8-0000-7000-8000-000000000001"]
    token = encode_cursor(position, secret=SECRET, scope="posts:hot:all")
    assert decode_cursor(token, secret=SECRET, scope="posts:hot:all") == position


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("index", [0, 10, 20, -1])
def test_any_changed_byte_is_refused(index: int) -> None:
    token = encode_cursor([1, "x"], secret=SECRET, scope="s")
    with pytest.raises(InvalidArgument) as error:
        decode_cursor(_flip(token, index), secret=SECRET, scope="s")
    assert error.value.field_errors[0].field == "cursor"


def test_a_cursor_from_another_listing_is_refused() -> None:
    token = encode_cursor([1], secret=SECRET, scope="posts:new:all")
    with pytest.raises(InvalidArgument):
        decode_cursor(token, secret=SECRET, scope="posts:top:week")


def test_a_cursor_signed_with_another_secret_is_refused() -> None:
    token = encode_cursor([1], secret=b"other", scope="s")
    with pytest.raises(InvalidArgument):
        decode_cursor(token, secret=SECRET, scope="s")


@pytest.mark.parametrize("token", ["", "!!!", "a" * 2000, "e30", "' OR 1=1 --"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_cursor(token, secret=SECRET, scope="s")
