"""JSON request bodies as pydantic models: a service declares each body it takes once, with its
checks, and a body that does not fit is refused (400, `{"error": message}`) naming every field that
is wrong and what it takes, e.g. `seed: a whole number from 0 to 4294967295, found -1`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ConfigDict, ValidationError

from lorapilot.web.errors import InvalidBodyError


class TextOnlyJSON(DefaultJSONProvider):
    """Request bodies whose strings are all valid Unicode text. JSON can escape a lone surrogate
    (`"\\ud800"`), which no file, caption or password can hold: refused here, once for every route,
    instead of failing where the value is written (and even for `get_json(silent=True)`)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        value = super().loads(s, **kwargs)
        if _has_lone_surrogate(value):
            raise InvalidBodyError(
                "the JSON body holds text that is not valid Unicode (a lone surrogate such as \\ud800); "
                "send UTF-8 text"
            )
        return value


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


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
