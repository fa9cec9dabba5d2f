"""Base classes and shared field types for the public API's JSON shapes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, field_validator

from common import contract
from common.contract import USERNAME_MAX, USERNAME_MIN, USERNAME_PATTERN


class RequestModel(BaseModel):
    """A request body: unknown fields and type coercion are errors, not guesses.

    Strict mode means `{"username": 123}` is a 422 instead of silently becoming
    "123"; forbidding extras catches typos such as `passwrod` instead of
    dropping them.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        """Refuse text nothing behind us can carry, by field name, at the edge.

        JSON allows lone surrogates (\\ud800), which protobuf cannot encode,
        and NUL, which PostgreSQL cannot store; either would otherwise become
        a 500 deep inside a service.
        """
        if not _storable(value):
            raise ValueError("must be valid Unicode text without NUL characters")
        return value


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list | tuple):
        return all(_storable(item) for item in value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    return True


def omit_default(schema: dict[str, Any]) -> None:
    """For optional members that are left out rather than sent as null.

    Without this the JSON schema would claim a `null` default for a member
    whose only documented type is string.
    """
    schema.pop("default", None)


class ResponseModel(BaseModel):
    """A response body. Only used to document and test shapes; handlers send bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def nfkc(value: Any) -> Any:
    """NFKC-normalise strings (and leave anything else for strict validation to refuse).

    Compatibility forms such as fullwidth letters (U+FF41...) become ASCII before the
    pattern check, so look-alikes cannot register as distinct names while a
    user typing on a fullwidth keyboard still reaches their own account.
    """
    return contract.nfkc(value) if isinstance(value, str) else value


# StringConstraints must come before the validator, or pydantic drops the
# pattern from the JSON schema.
Username = Annotated[
    str,
    StringConstraints(min_length=USERNAME_MIN, max_length=USERNAME_MAX, pattern=USERNAME_PATTERN),
    BeforeValidator(nfkc),
]
