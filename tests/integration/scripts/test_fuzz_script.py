"""`scripts/fuzz`: the long fuzz run reports properties, examples and crashes as a table and JSON."""

from __future__ import annotations

import json


def test_a_short_run_reports_every_example_and_no_crash(tmp_path, run_script):
    report = tmp_path / "fuzz.json"
    done = run_script("fuzz", "--examples", "7", "--json", str(report), "-k", "validator_answers_a_spec")

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(report.read_text())
    [row] = data["properties"]
    assert row["property"] == (
        "tests/unit/spec/test_fuzz_dialects.py::test_validator_answers_a_spec_or_a_named_error"
    )
    assert (row["examples"], row["crashes"], row["result"]) == (7, 0, "passed")
    assert data["crashes"] == 0 and data["examples_per_property"] == 7
    assert "0 crashes" in done.stdout.splitlines()[-2]


def test_a_filter_that_matches_no_property_is_a_failure_not_an_empty_success(tmp_path, run_script):
    done = run_script(
        "fuzz", "--examples", "5", "--json", str(tmp_path / "fuzz.json"), "-k", "no_such_property_xyz"
    )

    assert done.returncode == 1
    assert "no fuzz properties matched" in done.stderr
