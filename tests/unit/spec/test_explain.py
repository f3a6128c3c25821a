"""`--explain` and the config reference say what the spec's own models say, for every field."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from lorapilot.spec.explain import UnknownFieldError, explain, field_docs, lookup, reference_markdown
from lorapilot.spec.model import Optimizer, SampleSpec, TrainingSpec, TrainSpec

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "config-reference.md"


def test_a_field_shows_its_path_type_default_bounds_and_meaning():
    text = explain("training.learning_rate")
    assert text.splitlines()[0] == "training.learning_rate"
    assert "type:     number" in text and "default:  0.0001" in text
    assert "accepted: > 0 and <= 10" in text
    assert TrainingSpec.model_fields["learning_rate"].description in text


def test_a_choice_field_lists_every_choice_the_model_accepts():
    accepted = lookup("training.optimizer").accepted
    assert accepted == "one of " + ", ".join(typing.get_args(Optimizer))
    assert lookup("training.timestep_sampling").accepted.endswith("(or unset)")


def test_optional_and_required_fields_say_so():
    assert (lookup("sample.width").type, lookup("sample.width").default) == ("integer, optional", "unset")
    assert "a multiple of 8" in lookup("sample.width").accepted
    assert lookup("output.name").default == "required"
    assert lookup("datasets.resolutions").default == "[1024]"


def test_dataset_fields_are_addressed_with_or_without_list_brackets():
    plain = explain("datasets.folder")
    assert plain == explain("datasets[].folder") == explain("datasets[0].folder")
    assert plain.startswith("datasets.folder\n") and "default:  required" in plain
    assert explain("datasets[].bucket.step").startswith("datasets.bucket.step\n")


def test_a_section_lists_each_of_its_fields_on_one_line():
    text = explain("training")
    listed = text.split("fields:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == [f"training.{name}" for name in TrainingSpec.model_fields]
    assert any(line.split(None, 1)[1].startswith("optimizer steps to train") for line in listed)
    assert explain("sample").count("\n  sample.") == len(SampleSpec.model_fields)


def test_every_field_of_the_spec_can_be_explained():
    docs = field_docs()
    assert {d.path for d in docs} >= set(TrainSpec.model_fields)
    assert len({d.path for d in docs}) == len(docs)
    for doc in docs:
        assert doc.description and doc.description in explain(doc.path), doc.path


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("training.lerning_rate", "'training.learning_rate'"),
        ("learning_rate", "'training.learning_rate'"),
        ("seed", "'training.seed' or 'sample.prompts.seed' or 'sample.seed'"),
        ("trainig", "'training'"),
        ("datasets[].foldr", "'datasets.folder'"),
    ],
)
def test_an_unknown_name_is_refused_with_a_did_you_mean(name, suggested):
    with pytest.raises(UnknownFieldError, match="is not a field") as refused:
        explain(name)
    assert f"did you mean {suggested}" in str(refused.value)


def test_a_name_like_nothing_points_at_the_section_listing():
    with pytest.raises(UnknownFieldError) as refused:
        explain("colour_grading")
    assert "--explain SECTION" in str(refused.value)


def test_the_reference_lists_every_field_with_its_description():
    text = reference_markdown()
    for doc in field_docs():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{doc.path}` |"))
        assert doc.description.replace("<", "\\<") in row, doc.path
    assert "trainpilot validate" in text.split("## ", 1)[0]


def test_the_committed_config_reference_is_the_one_the_spec_generates():
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/config-reference.md is out of date; regenerate it with "
        "`python -m lorapilot.spec.explain --markdown > docs/config-reference.md`"
    )
