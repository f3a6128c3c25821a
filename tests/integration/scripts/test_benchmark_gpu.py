"""`scripts/benchmark-gpu`: on a CPU its tiny cases run both loops and write the figures as JSON."""

from __future__ import annotations

import json
import os

# One OpenMP thread: on a shared 2-core runner, threads spinning on a busy core turn a ~15 s run
# into minutes; the figures here only have to exist, not to be fast.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_tiny_cases_time_both_loops_and_write_the_figures(tmp_path, run_script):
    report = tmp_path / "bench.json"
    done = run_script(
        "benchmark-gpu",
        "--cases",
        "tiny",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--json",
        str(report),
        env=ONE_THREAD,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(report.read_text())
    assert "CPU" in data["device"]
    assert data["peak_tflops"] > 0
    assert set(data["versions"]) == {"torch", "diffusers", "peft", "bitsandbytes"}
    rows = {row["case"]: row for row in data["rows"]}
    assert set(rows) == {"tiny-sd15", "tiny-sdxl", "tiny-flux-dev", "tiny-flux-swap"}
    swap = rows.pop("tiny-flux-swap")  # ours only: block swapping has no reference loop
    assert "reference" not in swap and swap["ratio_steps_per_s"] is None and swap["error"] is None
    assert swap["blocks_to_swap"] == 2 and swap["ours"]["steps_per_s"] > 0 and swap["flops_per_step"] > 0
    assert swap["goals"] == [{"goal": "peak < 24 GiB", "value": None, "met": None}]  # no GPU memory here
    for name, row in rows.items():
        assert row["error"] is None, name
        ref, ours = row["reference"], row["ours"]
        assert ref["steps_per_s"] > 0 and ours["steps_per_s"] > 0, name
        assert row["ratio_steps_per_s"] == round(ours["steps_per_s"] / ref["steps_per_s"], 3), name
        assert ours["images_per_s"] == round(ours["steps_per_s"] * row["batch"], 4)
        assert row["flops_per_step"] > 0 and ours["mfu"] > 0, name
        assert row["timed_steps"] == 3 and row["warmup_steps"] == 1
        assert ref["peak_gib"] is None and ours["host_syncs_per_step"] is None  # CUDA-only figures
    assert rows["tiny-flux-dev"]["gradient_checkpointing"] is True
    table = done.stdout
    assert "steps/s" in table and "MFU" in table and "ours/reference" in table
    assert all(name in table for name in [*rows, "tiny-flux-swap"])
    assert f"written: {report}" in table


def test_an_unknown_case_is_refused_with_the_valid_names(tmp_path, run_script):
    done = run_script(
        "benchmark-gpu",
        "--cases",
        "sd15-bs1,sd99-huge",
        "--json",
        str(tmp_path / "bench.json"),
        env=ONE_THREAD,
        timeout=300,
    )

    assert done.returncode == 2
    assert "sd99-huge" in done.stderr
    valid = "sd15-bs1, sd15-bs8, sdxl-bs1, sdxl-bs4-ckpt, flux-bs1-ckpt, flux-swap, tiny"
    assert f"valid cases: {valid}" in done.stderr
    assert not (tmp_path / "bench.json").exists()
