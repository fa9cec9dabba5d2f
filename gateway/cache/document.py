"""A cached answer: the exact bytes an anonymous caller gets, plus where per-user parts go.

A cached post or page is shared by everyone, so it holds nothing about any one
caller: it is the anonymous answer, byte for byte, and an anonymous hit sends
it untouched. Signed-in callers also get one member per object (`my_vote` on
posts, `is_member` on communities); the document remembers, for each object,
the offset of its closing brace and the id it is about, so personalising is
slicing and joining bytes, never parsing or re-encoding JSON. Because our
payload builders put those members last, the result is exactly what encoding
the personalised dict would have produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Document:
    """Anonymous JSON bytes; `offsets[i]` is where object `ids[i]`'s personal member goes."""

    body: bytes
    offsets: tuple[int, ...] = ()
    ids: tuple[str, ...] = ()

    def personalise(self, member: str, values: Mapping[str, bytes]) -> bytes:
        """The body with `,"member":value` added to each object, value by the object's id.

        `values` must hold every id; ids that repeat (the same post twice on a
        page) get the same value.
        """
        if not self.offsets:
            return self.body
        label = b',"' + member.encode() + b'":'
        parts: list[bytes] = []
        last = 0
        for offset, object_id in zip(self.offsets, self.ids, strict=True):
            parts += (self.body[last:offset], label, values[object_id])
            last = offset
        parts.append(self.body[last:])
        return b"".join(parts)

    # The form stored in Redis: the body, and offsets and ids as space-separated text
    # (ids are UUIDs, never spaces); Lua reads the ids to fetch per-user values.

    @property
    def stored_offsets(self) -> str:
        return " ".join(map(str, self.offsets))

    @property
    def stored_ids(self) -> str:
        return " ".join(self.ids)

    @classmethod
    def from_stored(cls, body: bytes, offsets: bytes, ids: bytes) -> Document:
        return cls(
            body,
            tuple(int(offset) for offset in offsets.split()),
            tuple(i.decode() for i in ids.split()),
        )


def item_document(payload: Mapping[str, Any], *, personal_id: str | None) -> Document:
    """One object; `personal_id` names it when it takes a per-user member."""
    body = orjson.dumps(payload)
    if personal_id is None:
        return Document(body)
    return Document(body, (len(body) - 1,), (personal_id,))


def page_document(
    items: Sequence[Mapping[str, Any]], next_cursor: str | None, *, id_key: str = "id"
) -> Document:
    """`{"items": [...], "next_cursor": ...}` with a per-user member slot in every item."""
    parts: list[bytes] = [b'{"items":[']
    size = len(parts[0])
    offsets: list[int] = []
    for index, item in enumerate(items):
        encoded = orjson.dumps(item)
        if index:
            parts.append(b",")
            size += 1
        parts.append(encoded)
        size += len(encoded)
        offsets.append(size - 1)
    parts.append(b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}")
    ids = tuple(str(item[id_key]) for item in items)
    return Document(b"".join(parts), tuple(offsets), ids)
