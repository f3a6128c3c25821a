"""The TrainSpec models document themselves: `validate --explain` and the config reference read this."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from lorapilot.spec.model import TrainSpec


def models_of(model: type[BaseModel], seen: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """`model` and every model its fields hold (in lists, unions and optionals too)."""
    if model in seen:
        return seen
    seen.append(model)
    for info in model.model_fields.values():
        pending = [info.annotation]
        while pending:
            kind = pending.pop()
            pending.extend(typing.get_args(kind))
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                models_of(kind, seen)
    return seen


def test_every_field_of_every_spec_model_has_a_description():
    models = models_of(TrainSpec, [])
    assert {m.__name__ for m in models} >= {"TrainingSpec", "BucketSpec", "EarlyStoppingSpec", "DatasetSpec"}
    undocumented = [
        f"{model.__name__}.{name}"
        for model in models
        for name, info in model.model_fields.items()
        if not (info.description or "").strip()
    ]
    assert undocumented == [], "add description= to these fields"
