"""Request bodies as pydantic models: what a client hears when its body does not fit."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import Field, field_validator

from lorapilot.web.bodies import RequestBody
from lorapilot.web.errors import InvalidBodyError, RefusedRequestError


class Point(RequestBody):
    x: int = 0


class Render(RequestBody):
    not_an_object: ClassVar[str] = 'send a JSON object, e.g. {"seed": 1}'

    seed: int = Field(42, ge=0)
    points: list[Point] = Field(default_factory=list, alias="with")

    @field_validator("seed", mode="before")
    @classmethod
    def _whole(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError(f"a whole number, found {value!r}")
        return value


def refusal(body: object) -> str:
    with pytest.raises(InvalidBodyError) as caught:
        Render.parse(body)
    assert isinstance(caught.value, RefusedRequestError) and caught.value.status == 400
    return str(caught.value)


def test_a_body_that_fits_is_parsed_with_its_defaults():
    parsed = Render.parse({"with": [{"x": 2}]})
    assert parsed.seed == 42 and parsed.points == [Point(x=2)]


def test_unknown_fields_are_named_with_the_fields_accepted():
    assert refusal({"sed": 1, "colour": "red"}) == "unknown field(s) colour, sed; accepted: seed, with"


def test_every_wrong_field_is_named_the_way_the_request_spells_it():
    message = refusal({"seed": True, "with": [{"x": 1}, {"x": "far"}]})
    assert message.startswith("seed: a whole number, found True; with[1].x: Input should be a valid integer")


def test_a_body_that_is_not_an_object_hears_the_bodys_own_example():
    assert refusal(["seed", 1]) == 'send a JSON object, e.g. {"seed": 1}'
    assert refusal(None) == 'send a JSON object, e.g. {"seed": 1}'
