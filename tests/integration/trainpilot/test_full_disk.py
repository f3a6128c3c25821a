"""A full disk while a job saves: the job fails with the reason, the partial save goes, the previous
save stays, and `trainpilot retry` resumes from it once there is room again."""

from __future__ import annotations

import hashlib
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TRAINPILOT = shutil.which("trainpilot") or str(Path(sys.executable).with_name("trainpilot"))

# The state's trainer.pt (optimizer moments) is ~200 KiB; its LoRA files, logs and status.json are
# far smaller. A file-size limit between them makes the state save fail as a full disk would, with
# EFBIG ("File too large") instead of ENOSPC.
FILE_SIZE_LIMIT = 128 * 1024


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing the process
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, hard))


def _start_limited_daemon(env: dict[str, str], daemons) -> subprocess.Popen:
    log = daemons.logs / f"daemon-{len(daemons.started)}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [TRAINPILOT, "daemon", "--gpus", "cpu", "--poll", "0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_limit_file_size,  # noqa: PLW1509 - no threads start before the exec
        )
    daemons.started.append(process)  # stopped by the fixture like any other
    return process


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.mark.slow
def test_a_failed_state_save_fails_the_job_cleanly_and_retry_resumes(ws, env, cli, daemons, watch):
    """Issue 16 finding 8: a full disk mid-save left status.json "running" and a partial state.tmp/."""
    args = ["--profile", "tiny", "--dataset", "demo", "--name", "full", "--set", "training.max_steps=60"]
    assert cli("submit", *args, "--set", "save.every_n_steps=5").returncode == 0
    run = ws.outputs / "full"
    first = daemons.start()
    watch.until(lambda: watch.status("full").get("step", 0) >= 3, what="training to start")
    assert daemons.stop(first) == 0  # the stop saves the state and a step LoRA: the previous save
    saved_step = watch.status("full")["step"]
    previous_state = sorted((run / "state").iterdir())
    previous_lora = run / f"full-step{saved_step:08d}.safetensors"
    before = _digests([*previous_state, previous_lora])

    limited = _start_limited_daemon(env, daemons)
    watch.until(lambda: watch.jobs()["failed"], timeout=180, what="the job to fail at its next save")

    [job_id] = watch.jobs()["failed"]
    error = (ws.job_dir("failed") / f"{job_id}.error").read_text()
    assert "saving the training state" in error and "File too large" in error, error
    assert f"step {saved_step}" in error and "trainpilot retry full" in error, error
    status = watch.status("full")
    assert status["state"] == "failed" and status["pid"] is None
    assert status["error"] == error.strip()
    leftovers = [p.name for p in run.rglob("*") if p.name.endswith((".tmp", ".partial"))]
    assert leftovers == [] and not (run / "state.old").exists()
    assert _digests([*previous_state, previous_lora]) == before  # the previous save is intact
    assert limited.poll() is None, "the daemon stopped"
    assert daemons.stop(limited) == 0

    assert cli("retry", "full").returncode == 0
    daemons.start()
    watch.until(lambda: watch.jobs()["done"], timeout=180, what="the retried job to finish")
    log = (run / "_logs" / "train.log").read_text()
    assert f"resuming at step {saved_step}" in log
    assert (run / "full.safetensors").is_file()
    assert watch.status("full")["state"] == "done"
