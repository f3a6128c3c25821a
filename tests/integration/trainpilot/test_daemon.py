"""`trainpilot daemon` as a real process, driven through the `trainpilot` commands a user types."""

from __future__ import annotations

import json
import os
import signal
import time

from safetensors.torch import load_file

NAMES = ("test_a", "test_b", "test_c")


def test_queued_jobs_all_finish_and_list_shows_them_in_order(ws, cli, daemons, watch):
    """Acceptance 1: three jobs submitted with the CLI end in done/ with their LoRAs."""
    for name in NAMES[:2]:
        queued = cli("run", "--dataset", "demo", "--profile", "tiny", "--name", name, "--detach")
        assert queued.returncode == 0, queued.stderr
    daemons.start()
    followed = cli("run", "--dataset", "demo", "--profile", "tiny", "--name", "test_c")
    assert followed.returncode == 0, followed.stderr
    assert f"LoRA:    {ws.outputs / 'test_c' / 'test_c.safetensors'}" in followed.stdout

    watch.until(lambda: len(watch.jobs()["done"]) == 3, what="three jobs in done/")
    for name in NAMES:
        lora = load_file(str(ws.outputs / name / f"{name}.safetensors"))
        assert any(key.startswith("lora_unet_") for key in lora)
        assert watch.status(name)["state"] == "done"
        assert watch.status(name)["step"] == 4

    listed = cli("list")
    assert listed.returncode == 0
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [row[1] for row in rows] == list(NAMES)  # in submission order
    assert [row[2] for row in rows] == ["done"] * 3
    views = json.loads(cli("list", "--json").stdout)
    assert [(v["name"], v["state"], v["status"]["step"]) for v in views] == [(n, "done", 4) for n in NAMES]
    assert "trainpilot_job: 1" in (ws.outputs / "test_a" / "job.yaml").read_text()  # as submitted
    one = json.loads(cli("status", "test_b", "--json").stdout)
    assert one["state"] == "done" and one["status"]["lora"].endswith("test_b.safetensors")
    assert "LoRA written" in cli("logs", "test_b").stdout


def test_bad_jobs_fail_with_their_reason_and_the_daemon_keeps_serving(ws, cli, daemons, watch):
    """Acceptance 4: malformed job, a training error and a killed process each land in failed/."""
    incoming = ws.job_dir("incoming")
    (incoming / "typo.yaml").write_text(  # a plain kohya config dropped in by hand, with a typo
        "model:\n  pretrained_model_name_or_path: /workspace/models/diffusers/tiny-sd15\n"
        "training:\n  learnig_rate: 1e-4\n"
    )
    (incoming / "envelope.yaml").write_text("trainpilot_job: 1\nname: envelope\npriority: high\nprofile: x\n")
    broken = ws.images / "1_broken"
    broken.mkdir()
    (broken / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 10)
    assert cli("submit", "--profile", "tiny", "--dataset", "broken", "--name", "raises").returncode == 0
    long_run = [
        "--profile",
        "tiny",
        "--dataset",
        "demo",
        "--name",
        "killed",
        "--set",
        "training.max_steps=5000",
    ]
    assert cli("submit", *long_run).returncode == 0
    assert cli("submit", "--profile", "tiny", "--dataset", "demo", "--name", "fine").returncode == 0
    daemons.start()

    pid = watch.until(
        lambda: watch.status("killed").get("step", 0) > 0 and watch.status("killed")["pid"],
        what="the long job to train",
    )
    os.kill(pid, signal.SIGKILL)
    watch.until(lambda: len(watch.jobs()["failed"]) == 4 and watch.jobs()["done"], what="all jobs to end")

    errors = {
        json.loads(cli("status", name, "--json").stdout)["name"]: cli("status", name).stdout
        for name in ("typo", "envelope", "raises", "killed")
    }
    assert "training.learnig_rate: unknown key" in errors["typo"] and "learning_rate" in errors["typo"]
    assert "priority" in errors["envelope"] and "'high'" in errors["envelope"]
    assert "bad.jpg" in errors["raises"]
    assert "killed by SIGKILL" in errors["killed"]
    assert watch.status("killed")["state"] == "failed"
    assert (ws.outputs / "fine" / "fine.safetensors").is_file()
    assert (ws.job_dir("failed") / "typo.error").read_text().strip()


def test_cancel_stops_a_training_job_within_seconds_and_keeps_its_saves(ws, cli, daemons, watch):
    """Acceptance 5, then a retry that resumes the cancelled run where it stopped."""
    # at most 200 steps: the engine reports (and can be stopped) every step
    args = ["--profile", "tiny", "--dataset", "demo", "--name", "long", "--set", "training.max_steps=200"]
    assert cli("submit", *args).returncode == 0
    queued = cli("submit", "--profile", "tiny", "--dataset", "demo", "--name", "never")
    assert cli("cancel", "never").returncode == 0, queued.stderr  # a queued job goes at once
    daemons.start()
    watch.until(lambda: list((ws.outputs / "long").glob("long-step*.safetensors")), what="a periodic save")

    asked = time.monotonic()
    cancelled = cli("cancel", "long", timeout=60)
    watch.until(lambda: watch.jobs()["cancelled"] and len(watch.jobs()["cancelled"]) == 2, timeout=5)
    elapsed = time.monotonic() - asked
    assert cancelled.returncode == 0, cancelled.stderr
    assert elapsed < 5, f"cancel took {elapsed:.1f} s"
    saves = sorted((ws.outputs / "long").glob("long-step*.safetensors"))
    assert saves and not (ws.outputs / "long" / "long.safetensors").exists()
    status = watch.status("long")
    assert status["state"] == "cancelled" and 0 < status["step"] < 200
    assert status["lora"] == str(saves[-1])

    assert cli("retry", "long").returncode == 0
    log = ws.outputs / "long" / "_logs" / "train.log"
    watch.until(lambda: f"resuming at step {status['step']}" in log.read_text(), what="the retry to resume")
    assert not (ws.outputs / "never").exists()


def test_sigterm_saves_the_job_and_the_next_start_resumes_it(ws, cli, daemons, watch):
    """Acceptance 7: supervisord's stop (SIGTERM) pauses the job; the next daemon finishes it."""
    args = ["--profile", "tiny", "--dataset", "demo", "--name", "paused", "--set", "training.max_steps=60"]
    assert cli("submit", *args).returncode == 0
    first = daemons.start()
    watch.until(lambda: watch.status("paused").get("step", 0) >= 3, what="training to start")
    assert daemons.stop(first) == 0
    stopped = watch.status("paused")
    assert stopped["state"] == "interrupted" and 3 <= stopped["step"] < 60
    assert len(watch.jobs()["running"]) == 1
    assert json.loads(cli("status", "paused", "--json").stdout)["state"] == "interrupted"

    daemons.start()
    watch.until(lambda: watch.jobs()["done"], timeout=180, what="the resumed job to finish")
    log = (ws.outputs / "paused" / "_logs" / "train.log").read_text()
    assert f"resuming at step {stopped['step']}" in log
    assert watch.status("paused")["attempt"] == 2


def test_jobs_also_run_in_fresh_interpreters_as_on_gpu_machines(ws, cli, daemons, watch):
    """`spawn`, the start method used with GPUs: no fork server, each job imports the engine itself."""
    assert cli("submit", "--profile", "tiny", "--dataset", "demo", "--name", "fresh").returncode == 0
    daemons.start("cpu", "--start-method", "spawn")
    watch.until(lambda: watch.jobs()["done"], timeout=180, what="the job to finish")
    assert (ws.outputs / "fresh" / "fresh.safetensors").is_file()
    assert "(spawn)" in daemons.log()
