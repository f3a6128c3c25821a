"""JSON request bodies as pydantic models: a service declares each body it takes once, with its
checks, and a body that does not fit is refused (400, `{"error": message}`) naming every field that
is wrong and what it takes, e.g. `seed: a whole number from 0 to 4294967295, found -1`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from lorapilot.web.errors import InvalidBodyError


class RequestBody(BaseModel):
    """Base of a request body; unknown fields are refused (a misspelt field must not be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    not_an_object: ClassVar[str] = "send a JSON object"  # the answer to a body that is not a mapping

    @classmethod
    def parse(cls, body: Any) -> Self:
        """The body as this model, or InvalidBodyError with the message the API answers."""
        if not isinstance(body, dict):
            raise InvalidBodyError(cls.not_an_object)
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise InvalidBodyError(cls.explain(exc)) from None

    @classmethod
    def explain(cls, exc: ValidationError) -> str:
        """Unknown fields first (with the accepted ones), else each wrong field with what it takes."""
        errors = exc.errors(include_url=False)
        top = [error for error in errors if len(error["loc"]) == 1]
        unknown = sorted(str(error["loc"][0]) for error in top if error["type"] == "extra_forbidden")
        if unknown:
            return f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(cls.field_names())}"
        return "; ".join(_line(error["loc"], str(error["msg"])) for error in errors)

    @classmethod
    def field_names(cls) -> list[str]:
        """The fields as a request spells them."""
        return [info.alias or name for name, info in cls.model_fields.items()]


def _line(loc: Sequence[int | str], message: str) -> str:
    """`("with", 0, "name")` and a message → `with[0].name: message` (no field: the message alone)."""
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else f"{'.' if where else ''}{part}"
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
