"""A real daemon with files in incoming/ that cannot be read as jobs (issue 16, finding 2): each goes to
failed/ with its reason, once, and the good job behind them trains."""

from __future__ import annotations

import json

POISON = {  # file name → (text, what its .error names)
    "my job.yaml": ("model: {path: x}\n", "file name"),
    "bad_created.yaml": ("created: 2024-02-30\nmodel: {path: x}\n", "out of range"),
    "huge.yaml": ("trainpilot_job: 1\nname: huge\nprofile: tiny\npriority: " + "9" * 5000 + "\n", "digits"),
}


def test_unreadable_files_go_to_failed_once_and_the_queue_keeps_running(ws, cli, daemons, watch):
    incoming = ws.job_dir("incoming")
    for name, (text, _) in POISON.items():
        (incoming / name).write_text(text, encoding="utf-8")
    assert cli("submit", "--profile", "tiny", "--dataset", "demo", "--name", "good").returncode == 0
    daemon = daemons.start()

    watch.until(lambda: watch.status("good").get("state") == "done", what="the good job to finish")
    failed = ws.job_dir("failed")
    watch.until(lambda: len(list(failed.glob("*.error"))) == len(POISON), what="the bad files in failed/")
    assert not [p for p in incoming.iterdir() if not p.name.startswith(".")]
    for name, (_, reason) in POISON.items():
        stem = name.rsplit(".", 1)[0]
        assert (failed / name).is_file()
        error = (failed / f"{stem}.error").read_text(encoding="utf-8")
        assert error.startswith("invalid job:") and reason in error, error
    assert daemon.poll() is None

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("  ")[0].strip(): line for line in listed.stdout.splitlines()[1:]}
    for stem in ("my job", "bad_created", "huge"):
        assert "failed" in rows[stem]
    views = {v["name"]: v for v in json.loads(cli("list", "--json").stdout)}
    assert views["good"]["state"] == "done"
    assert "file name" in views["my job"]["error"]
    shown = cli("status", "my job")
    assert shown.returncode == 0 and "file name" in shown.stdout

    daemons.stop(daemon)
    log = daemons.log()
    assert "Traceback" not in log and "while handling the spool" not in log
    for stem in ("my job", "bad_created", "huge"):
        assert sum(f"job {stem} " in line for line in log.splitlines()) == 1, log  # logged once
