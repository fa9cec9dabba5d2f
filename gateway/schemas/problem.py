"""The RFC 9457 problem details document every error answers with."""

from __future__ import annotations

from pydantic import ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from gateway.schemas.base import ResponseModel, omit_default


class FieldProblem(ResponseModel):
    """One invalid input: where it is and what is wrong with it."""

    field: str = Field(
        description="Dotted path of the offending field, e.g. `email` or `query.limit`.",
        examples=["username"],
    )
    message: str = Field(examples=["String should have at least 3 characters"])


class Problem(ResponseModel):
    """An error, as `application/problem+json` (RFC 9457)."""

    # Problem types may add members (readiness adds `checks`).
    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(
        default="about:blank",
        description="A URI naming the kind of problem; `about:blank` means the status says it all.",
    )
    title: str = Field(examples=["Unprocessable Entity"])
    status: int = Field(ge=400, le=599, description="The HTTP status code, repeated.")
    detail: str = Field(description="What went wrong with this request, for humans.")
    instance: str | SkipJsonSchema[None] = Field(
        default=None,
        description="The request path this problem occurred on.",
        json_schema_extra=omit_default,
    )
    errors: list[FieldProblem] | SkipJsonSchema[None] = Field(
        default=None,
        description="Field-level errors: each invalid (422) or taken (409) field.",
        json_schema_extra=omit_default,
    )
