"""Acceptance 6: a job asking for 2 GPUs trains data-parallel; here on CPU, over gloo."""

from __future__ import annotations

from safetensors.torch import load_file


def test_a_two_process_job_writes_one_lora_shaped_like_a_single_process_one(ws, cli, daemons, watch):
    daemons.start("cpu:2")  # two CPU slots: a 2-"GPU" job gets two processes
    for name, gpus in (("single", "1"), ("pair", "2")):
        queued = cli("submit", "--profile", "tiny", "--dataset", "demo", "--name", name, "--gpus", gpus)
        assert queued.returncode == 0, queued.stderr
    watch.until(lambda: len(watch.jobs()["done"]) == 2, timeout=300, what="both jobs in done/")

    single = load_file(str(ws.outputs / "single" / "single.safetensors"))
    pair = load_file(str(ws.outputs / "pair" / "pair.safetensors"))
    assert pair.keys() == single.keys()
    assert {k: v.shape for k, v in pair.items()} == {k: v.shape for k, v in single.items()}
    assert any(not (pair[k] == single[k]).all() for k in pair)  # it trained, on other batches

    log = (ws.outputs / "pair" / "_logs" / "train.log").read_text()
    assert "data-parallel: 2 processes (gloo)" in log
    assert log.count("run pair: sd15") == 1  # rank 1 writes nothing
    assert sorted(p.name for p in (ws.outputs / "pair").glob("*.safetensors")) == [
        "pair-step00000002.safetensors",
        "pair.safetensors",
    ]
    assert watch.status("pair")["state"] == "done" and watch.status("pair")["step"] == 4
