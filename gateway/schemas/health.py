"""Bodies of the operational endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.schemas.base import ResponseModel


class Health(ResponseModel):
    status: Literal["ok"] = "ok"


class Readiness(ResponseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, str] = Field(
        description="Each dependency (Redis and every upstream service) and `ok`.",
        examples=[{"redis": "ok", "auth": "ok"}],
    )
