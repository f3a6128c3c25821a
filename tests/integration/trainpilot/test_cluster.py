"""Cluster mode (issue 18): the daemon runs the spool's jobs on a local multi-node Ray cluster whose
nodes each have their own workspace folder, so a job's files reach its node only through the
project's transfer and its outputs come back to the head's workspace."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lorapilot.testing.ray_cluster import LocalCluster, local_cluster
from lorapilot.workspace import Workspace

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    """Three single-slot nodes; the daemons and CLI the test starts are in cluster mode. Tests name it
    before `daemons`, so their daemons stop before the cluster does."""
    with local_cluster(tmp_path / "nodes", {"node-a": 1, "node-b": 1, "node-c": 1}) as running:
        monkeypatch.setenv("LORAPILOT_RAY_ADDRESS", running.address)
        yield running


def test_nine_jobs_run_once_each_spread_over_three_nodes_with_the_loras_on_the_head(
    ws: Workspace, cluster: LocalCluster, cli, daemons, watch
) -> None:
    names = [f"c{i}" for i in range(9)]
    for name in names:
        submitted = cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", name)
        assert submitted.returncode == 0, submitted.stderr
    daemon = daemons.start()

    def busy_nodes() -> set[str]:
        listed = cli("cluster", "--json")
        report = json.loads(listed.stdout) if listed.returncode == 0 else {"nodes": []}
        return {node["name"] for node in report["nodes"] if node["jobs"]}

    watch.until(lambda: len(busy_nodes()) == 3, timeout=200, what="`trainpilot cluster`: a job on each node")
    watch.until(lambda: len(watch.jobs()["done"]) == 9 or watch.jobs()["failed"], timeout=400, what="9 jobs")
    assert watch.jobs()["failed"] == [], daemons.log()
    assert daemon.poll() is None
    nodes = Counter()
    for name in names:
        status = watch.status(name)
        assert status["state"] == "done" and status["attempt"] == 1, status
        assert [a["node"] for a in status["attempts"]] == [status["node"]]
        assert (ws.outputs / name / "_logs" / "train.log").read_text().count(f"run {name}: sd15") == 1
        nodes[status["node"]] += 1
        lora = ws.outputs / name / f"{name}.safetensors"
        assert lora.is_file()
        node_copy = cluster.workspace(status["node"]) / "cache/cluster/workspace/outputs" / name / lora.name
        assert node_copy.read_bytes() == lora.read_bytes()  # trained there, mirrored here
        metrics = json.loads((ws.outputs / name / "_logs" / "metrics.json").read_text())
        assert metrics["step"] == [1, 2, 3, 4]
    assert set(nodes) == {"node-a", "node-b", "node-c"}, nodes
    # the node received the dataset and model through the transfer, not from the head's folders
    staged = cluster.workspace("node-a") / "cache/cluster/workspace"
    assert sorted(p.name for p in (staged / "datasets/images/1_demo").glob("*.png"))
    assert (staged / "models/diffusers/tiny-sd15/model_index.json").is_file()


def _lora_tensors(path: Path) -> dict:
    from safetensors.torch import load_file  # noqa: PLC0415

    return load_file(str(path))


def _fast_sync(ws: Workspace) -> None:
    ws.cluster_config.write_text("cluster:\n  sync_interval_s: 0.2\n")


def test_a_job_whose_node_dies_resumes_on_another_and_ends_with_the_lora_of_an_unbroken_run(
    ws: Workspace, cluster: LocalCluster, cli, daemons, watch
) -> None:
    _fast_sync(ws)
    steps = ["--set", "training.max_steps=80", "--set", "save.every_n_steps=10"]
    for name in ("unbroken", "broken"):
        submitted = cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", name, *steps)
        assert submitted.returncode == 0, submitted.stderr
    daemons.start()
    head_state = ws.outputs / "broken" / "state" / "trainer.pt"

    def saved_and_going_on() -> dict | None:
        status = watch.status("broken")
        past_save = head_state.is_file() and status.get("step", 0) > 10 and status.get("state") == "running"
        return status if past_save else None

    status = watch.until(saved_and_going_on, timeout=300, what="a state save of 'broken' on the head")
    lost = status["node"]
    cluster.kill(lost, pids=[status["pid"]])
    watch.until(
        lambda: len(watch.jobs()["done"]) == 2 or watch.jobs()["failed"], timeout=400, what="both jobs"
    )
    assert watch.jobs()["failed"] == [], daemons.log()
    final = watch.status("broken")
    attempts = final["attempts"]
    assert [a["outcome"] for a in attempts] == ["node lost", "done"], attempts
    assert attempts[0]["node"] == lost and attempts[1]["node"] != lost and final["attempt"] == 2
    log = (ws.outputs / "broken" / "_logs" / "train.log").read_text()
    assert "resuming at step" in log
    expected = _lora_tensors(ws.outputs / "unbroken" / "unbroken.safetensors")
    got = _lora_tensors(ws.outputs / "broken" / "broken.safetensors")
    assert got.keys() == expected.keys()
    for key, tensor in expected.items():
        assert (got[key] == tensor).all(), key  # exact, as the local resume is


def test_a_two_gpu_job_on_two_single_slot_nodes_trains_data_parallel_across_them(
    ws: Workspace, cluster: LocalCluster, cli, daemons, watch
) -> None:
    cluster.kill("node-c")
    submit = ["submit", "--dataset", "demo", "--profile", "tiny"]
    assert cli(*submit, "--name", "wide", "--gpus", "2").returncode == 0
    daemons.start()
    watch.until(lambda: watch.jobs()["done"] or watch.jobs()["failed"], timeout=300, what="the 2-GPU job")
    assert watch.jobs()["failed"] == [], daemons.log()
    for node in ("node-a", "node-b"):  # a rank on each: each node fetched the inputs
        staged = cluster.workspace(node) / "cache/cluster/workspace"
        assert (staged / "models/diffusers/tiny-sd15/model_index.json").is_file(), node
        assert list((staged / "datasets/images/1_demo").glob("*.png")), node
    log = (ws.outputs / "wide" / "_logs" / "train.log").read_text()
    assert "data-parallel: 2 processes (gloo)" in log
    metrics = json.loads((ws.outputs / "wide" / "_logs" / "metrics.json").read_text())
    assert metrics["step"] == [1, 2, 3, 4]  # one run's loss history, not one per rank
    assert cli(*submit, "--name", "single").returncode == 0
    watch.until(lambda: len(watch.jobs()["done"]) == 2, timeout=300, what="the 1-GPU job")
    wide, single = (_lora_tensors(ws.outputs / n / f"{n}.safetensors") for n in ("wide", "single"))
    assert {k: v.shape for k, v in wide.items()} == {k: v.shape for k, v in single.items()}


def _steps_logged(ws: Workspace, name: str) -> list[int]:
    lines = (ws.outputs / name / "_logs" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def test_a_restarted_daemon_reattaches_and_cancel_and_retry_work_on_a_cluster_job(
    ws: Workspace, cluster: LocalCluster, cli, daemons, watch
) -> None:
    _fast_sync(ws)
    steps = ["--set", "training.max_steps=1000", "--set", "save.every_n_steps=250"]
    assert cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", "long", *steps).returncode == 0
    first = daemons.start()
    watch.until(lambda: watch.status("long").get("step", 0) >= 5, timeout=200, what="'long' training")
    first.kill()  # SIGKILL: the head's daemon dies without a word to the cluster
    first.wait(timeout=30)
    at_kill = watch.status("long")["step"]
    watch.until(
        lambda: watch.status("long")["step"] > at_kill + 20, timeout=60, what="training on, no daemon"
    )
    assert watch.jobs()["running"]  # still the daemon's to finish: nothing moved it

    daemons.start()
    watch.until(lambda: "re-attached" in daemons.log(), timeout=60, what="the new daemon to re-attach")
    reattached_at = watch.status("long")["step"]
    watch.until(lambda: watch.status("long")["step"] > reattached_at, timeout=60, what="progress after it")
    assert cli("cancel", "long").returncode == 0
    watch.until(lambda: watch.jobs()["cancelled"], timeout=30, what="the cancel to stop it on its node")
    stopped = watch.status("long")
    assert stopped["state"] == "cancelled" and stopped["step"] < 1000
    log = (ws.outputs / "long" / "_logs" / "train.log").read_text()
    assert log.count("run long: sd15") == 1  # the re-attach did not start it a second time

    assert cli("retry", "long").returncode == 0
    watch.until(lambda: watch.jobs()["done"] or watch.jobs()["failed"], timeout=300, what="the retried job")
    assert watch.jobs()["failed"] == [], daemons.log()
    log = (ws.outputs / "long" / "_logs" / "train.log").read_text()
    assert log.count("run long: sd15") == 2 and f"resuming at step {stopped['step']}" in log
    assert _steps_logged(ws, "long") == list(range(10, 1001, 10))  # logged every 10: none lost or doubled
    final = watch.status("long")
    assert [a["outcome"] for a in final["attempts"]] == ["cancelled", "done"], final["attempts"]


def test_a_node_that_shares_the_head_workspace_trains_in_it_without_a_transfer(
    ws: Workspace, cluster: LocalCluster, cli, daemons, watch
) -> None:
    for name in ("node-a", "node-b", "node-c"):
        cluster.kill(name)
    cluster.add("shared", workspace=ws.root)  # one filesystem: the same folder on head and node
    assert cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", "onfs").returncode == 0
    daemons.start()
    watch.until(lambda: watch.jobs()["done"] or watch.jobs()["failed"], timeout=300, what="the job")
    assert watch.jobs()["failed"] == [], daemons.log()
    assert watch.status("onfs")["node"] == "shared"
    assert (ws.outputs / "onfs" / "onfs.safetensors").is_file()
    assert not (ws.root / "cache/cluster/workspace").exists()  # nothing was copied


def test_a_two_gpu_job_on_a_node_with_two_slots_stays_on_that_node(
    ws: Workspace, cluster: LocalCluster, cli, daemons, watch
) -> None:
    for name in ("node-a", "node-b", "node-c"):
        cluster.kill(name)
    cluster.add("big", cpus=2)
    assert (
        cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", "pair", "--gpus", "2").returncode
        == 0
    )
    daemons.start()
    watch.until(lambda: watch.jobs()["done"] or watch.jobs()["failed"], timeout=300, what="the job")
    assert watch.jobs()["failed"] == [], daemons.log()
    assert watch.status("pair")["node"] == "big"
    log = (ws.outputs / "pair" / "_logs" / "train.log").read_text()
    assert "data-parallel: 2 processes (gloo)" in log  # the node's own processes, no Ray Train
    assert json.loads((ws.outputs / "pair" / "_logs" / "metrics.json").read_text())["step"] == [1, 2, 3, 4]


def test_a_job_that_loses_more_nodes_than_allowed_fails_with_how_to_resume_it(
    ws: Workspace, cluster: LocalCluster, cli, daemons, watch
) -> None:
    ws.cluster_config.write_text("cluster:\n  sync_interval_s: 0.2\n  max_node_failures: 0\n")
    steps = ["--set", "training.max_steps=400", "--set", "save.every_n_steps=10"]
    assert (
        cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", "fragile", *steps).returncode == 0
    )
    daemons.start()
    status = watch.until(
        lambda: (s := watch.status("fragile")).get("step", 0) > 10 and s.get("state") == "running" and s,
        timeout=300,
        what="'fragile' training",
    )
    cluster.kill(status["node"], pids=[status["pid"]])
    watch.until(lambda: watch.jobs()["failed"], timeout=120, what="the job to fail")
    error = (ws.job_dir("failed") / f"{watch.jobs()['failed'][0]}.error").read_text()
    assert "cluster.max_node_failures is 0" in error and "trainpilot retry fragile" in error
    assert [a["outcome"] for a in watch.status("fragile")["attempts"]] == ["node lost"]
