"""The spool's promises under abuse: daemons killed mid-job, and daemons racing for the same jobs."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time

import pytest

STEPS = 40


def _steps_logged(ws, name: str) -> list[int]:
    try:
        lines = (ws.outputs / name / "_logs" / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


@pytest.mark.slow
def test_a_sigkilled_daemon_restarted_five_times_loses_and_repeats_nothing(ws, cli, daemons, watch):
    """Acceptance 2: each restart resumes from the saved step; every job ends once, in done/."""
    resumed_from: list[int] = []
    names = ("k1", "k2")
    for name in names:
        args = ["--dataset", "demo", "--name", name, "--set", f"training.max_steps={STEPS}"]
        assert cli("submit", "--profile", "tiny", *args, "--set", "save.every_n_steps=5").returncode == 0
    rng = random.Random(2)
    for _ in range(5):
        pause = rng.randint(1, 3)  # the random point: this many steps after a save
        started = time.time()
        daemon = daemons.start()

        def past_a_save(pause: int = pause, started: float = started) -> bool:
            """A job saved in this round and trained `pause` more steps (metrics.jsonl has a line
            per step, written as the step ends)."""
            for name in names:
                saves = [
                    int(p.stem[-8:])
                    for p in (ws.outputs / name).glob(f"{name}-step*.safetensors")
                    if p.stat().st_mtime > started
                ]
                if saves and not (ws.outputs / name / f"{name}.safetensors").exists():
                    steps = _steps_logged(ws, name)
                    if steps and steps[-1] >= max(saves) + pause:
                        return True
            return False

        watch.until(past_a_save, timeout=180, what="a save, then a few more steps")
        daemon.kill()  # SIGKILL: no chance to clean up
        daemon.wait(timeout=30)
        daemons.wait_group_gone(daemon)  # its training process saves and stops by itself
    daemons.start()
    watch.until(lambda: len(watch.jobs()["done"]) == 2, timeout=300, what="both jobs to finish")

    jobs = watch.jobs()
    assert len(jobs["done"]) == 2 and not any(jobs[s] for s in ("incoming", "running", "failed", "cancelled"))
    for name in names:
        log = (ws.outputs / name / "_logs" / "train.log").read_text()
        starts = log.count(f"run {name}: sd15")
        resumes = [int(n) for n in re.findall(r"resuming at step (\d+)", log)]
        resumed_from += resumes
        assert all(step > 0 for step in resumes), "a restart began from zero"
        assert starts == 1 + len(resumes), "a job was started from zero twice"
        assert _steps_logged(ws, name) == list(range(1, STEPS + 1))  # no step lost, none doubled
        assert watch.status(name)["attempt"] == starts
        assert (ws.outputs / name / f"{name}.safetensors").is_file()
    assert len(resumed_from) >= 5


SUBMITTER = """
import sys
from lorapilot.trainpilot.cli import main
for i in range(5):
    args = ["submit", "--profile", "tiny", "--dataset", "demo", "--name", f"p{sys.argv[1]}_{i}"]
    assert main([*args, "--set", "training.max_steps=1"]) == 0
"""


@pytest.mark.slow
def test_fifty_jobs_from_ten_processes_and_two_daemons_each_run_exactly_once(ws, env, daemons, watch):
    """Acceptance 3: submissions and claims race; the spool and the run folders show one run each."""
    first, second = daemons.start(), daemons.start()
    submitters = [
        subprocess.Popen([sys.executable, "-c", SUBMITTER, str(p)], env=env, stderr=subprocess.PIPE)
        for p in range(10)
    ]
    for process in submitters:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-2000:]
    watch.until(lambda: len(watch.jobs()["done"]) == 50, timeout=400, what="50 jobs in done/")

    jobs = watch.jobs()
    assert len(set(jobs["done"])) == 50
    assert not any(jobs[s] for s in ("incoming", "running", "failed", "cancelled"))
    names = {f"p{p}_{i}" for p in range(10) for i in range(5)}
    assert {p.name for p in ws.outputs.iterdir()} == names
    for name in names:
        log = (ws.outputs / name / "_logs" / "train.log").read_text()
        assert log.count(f"run {name}: sd15") == 1 and "resuming" not in log
        assert _steps_logged(ws, name) == [1]
        assert watch.status(name)["attempt"] == 1 and watch.status(name)["state"] == "done"
    started = [line for i in range(2) for line in daemons.log(i).splitlines() if ") started on" in line]
    assert len(started) == 50
    assert first.poll() is None and second.poll() is None
