"""The result file a training process leaves for its daemon."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from lorapilot.trainpilot.handoff import Outcome, WorkerResult


def test_a_result_reads_back_as_it_was_written(tmp_path):
    path = tmp_path / ".job.result.json"
    written = WorkerResult(outcome=Outcome.DONE, folder=tmp_path / "run", step=4, lora="run/run.safetensors")
    written.write(path)
    assert WorkerResult.read(path) == written
    assert json.loads(path.read_text())["outcome"] == "done"


def test_a_process_that_left_no_readable_result_reads_as_none(tmp_path):
    path = tmp_path / ".job.result.json"
    assert WorkerResult.read(path) is None  # killed before it wrote one
    path.write_text('{"outcome": "don')  # torn: it cannot be, the file is renamed into place
    assert WorkerResult.read(path) is None
    path.write_text('{"outcome": "finished"}')
    assert WorkerResult.read(path) is None


def test_a_misspelt_outcome_is_refused_by_the_writer(tmp_path):
    with pytest.raises(ValidationError, match="outcome"):
        WorkerResult(outcome="finished")
