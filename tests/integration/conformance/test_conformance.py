"""Configs written the way each trainer documents them validate here, and the marked ones train.

Every file under tests/fixtures/conformance/<dialect>/ whose first line is `# conformance: validate`
or `# conformance: train` is a case; other files there (dataset TOMLs, prompt files) are the
files those configs name. A `train` case runs in the foreground on the tiny models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from lorapilot.trainpilot.cli import main

from .conftest import CONFORMANCE

MARK = "# conformance:"


def _cases() -> list[tuple[str, str]]:
    cases = []
    for path in sorted(CONFORMANCE.rglob("*")):
        if not path.is_file():
            continue
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        if first and first[0].startswith(MARK):
            cases.append((str(path.relative_to(CONFORMANCE)), first[0][len(MARK) :].strip()))
    return cases


CASES = _cases()


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = main([*map(str, args)])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_there_are_cases_for_every_dialect():
    dialects = {Path(name).parts[0] for name, _ in CASES}
    assert dialects == {"kohya", "aitoolkit", "diffusion_pipe"}


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[name for name, _ in CASES])
def test_a_documented_config_validates_without_unknown_keys(name, kind, conformance_workspace, capsys):
    config = conformance_workspace.root / "configs" / "conformance" / name
    rc, out, err = _run(capsys, "validate", config, "--workspace", conformance_workspace.root)
    assert rc == 0, err
    assert "unknown key" not in out + err


@pytest.mark.parametrize(
    "name", [n for n, kind in CASES if kind == "train"], ids=[n for n, kind in CASES if kind == "train"]
)
def test_a_documented_config_trains_on_the_tiny_model(name, conformance_workspace, capsys, tmp_path):
    config = conformance_workspace.root / "configs" / "conformance" / name
    rc, out, err = _run(capsys, "train", config, "--workspace", conformance_workspace.root)
    assert rc == 0, err[-3000:]
    lora = Path(next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("LoRA:")))
    with safe_open(str(lora), "pt") as handle:
        assert any(key.endswith(("lora_up.weight", "lora_B.weight")) for key in handle.keys()), lora  # noqa: SIM118
