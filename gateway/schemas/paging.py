"""What every cursor-paginated listing shares."""

from __future__ import annotations

from typing import Any

from pydantic import Field

NEXT_CURSOR = Field(
    description="Pass as `cursor` for the next page; null on the last page. Opaque: "
    "a cursor that was altered, or used on another listing, is a 400.",
)


def page_payload(items: list[dict[str, Any]], next_token: str) -> dict[str, Any]:
    """`{"items": [...], "next_cursor": ...}`; a service's empty token means the last page."""
    return {"items": items, "next_cursor": next_token or None}
