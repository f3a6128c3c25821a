"""The files a run leaves behind are the ones the guide tells users to read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lorapilot.engine import train


def test_logs_metrics_and_tensorboard(make_spec, workspace):
    result = train(make_spec(name="my_lora", training={"max_steps": 5}), workspace, show_progress=False)
    logs = result.lora.parent / "_logs"
    assert "step 5/5 loss" in (logs / "train.log").read_text()
    points = [json.loads(line) for line in (logs / "metrics.jsonl").open()]
    assert [p["step"] for p in points] == [1, 2, 3, 4, 5] and all(p["loss"] > 0 for p in points)
    metrics = json.loads((logs / "metrics.json").read_text())
    assert set(metrics) == {"step", "loss", "lr"} and len(metrics["loss"]) == 5
    assert any((logs / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((result.lora.parent / "spec.json").read_text())["output"]["name"] == "my_lora"


def test_the_guides_metrics_snippet_works_as_written(make_spec, workspace):
    result = train(make_spec(name="my_lora", training={"max_steps": 3}), workspace, show_progress=False)
    # The guide's "Quantitative Metrics" command, with /workspace pointing at this workspace.
    snippet = (
        "import json\n"
        "with open('/workspace/outputs/my_lora/_logs/metrics.json') as f:\n"
        "    metrics = json.load(f)\n"
        "print('Latest loss:', metrics['loss'][-1])\n"
    ).replace("/workspace", str(workspace.root))
    done = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, check=True, env={**os.environ}
    )
    assert done.stdout.startswith("Latest loss: ") and float(done.stdout.split()[-1]) > 0
    assert result.lora.parent == workspace.outputs / "my_lora"
