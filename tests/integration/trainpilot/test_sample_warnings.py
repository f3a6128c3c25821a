"""A sample render that fails after the final LoRA is written: the job is done, with a warning in
its status, its log and on the command line."""

from __future__ import annotations

import json


def test_a_failed_final_sample_leaves_a_done_job_with_a_warning(ws, cli, daemons, watch):
    sampling = (
        "--set",
        "sample.every=2",
        "--set",
        "sample.prompts=[lpdemo a cat]",
        "--set",
        "sample.steps=1",
    )
    queued = cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", "warned", *sampling)
    assert queued.returncode == 0, queued.stderr
    blocked = ws.outputs / "warned" / "samples" / "step00000004_0.png"
    blocked.mkdir(parents=True)  # a folder where the last render goes: writing it fails
    daemons.start()
    watch.until(lambda: watch.jobs()["done"] or watch.jobs()["failed"], what="the job to end")

    assert len(watch.jobs()["done"]) == 1, daemons.log()
    assert (ws.outputs / "warned" / "warned.safetensors").is_file()
    assert (ws.outputs / "warned" / "samples" / "step00000002_0.png").is_file()
    status = watch.status("warned")
    assert status["state"] == "done" and status["error"] is None
    assert [w.split(":")[0] for w in status["warnings"]] == ["sample render at step 4 failed"]
    shown = cli("status", "warned")
    assert "warning:   sample render at step 4 failed" in shown.stdout
    assert json.loads(cli("status", "warned", "--json").stdout)["status"]["warnings"] == status["warnings"]
    log = (ws.outputs / "warned" / "_logs" / "train.log").read_text()
    assert "sample render at step 4 failed" in log and "the LoRA is written" in log
