"""A job file carrying a full spec gets the same workspace checks as a config (issue 16, finding 6):
its dataset folders, model and output folder must be inside the workspace, whoever wrote the file."""

from __future__ import annotations

import copy

from lorapilot.spec import load_spec
from lorapilot.spool import Job, Spool
from lorapilot.testing.datasets import write_demo_images


def test_spec_paths_outside_the_workspace_fail_the_job_naming_the_field(ws, cli, daemons, watch, tmp_path):
    outside = tmp_path / "outside"
    write_demo_images(outside / "images", 4, size=(64, 64), caption="lpdemo,")
    (outside / "model.safetensors").write_bytes((ws.model_dir("diffusers") / "tiny-sd15").name.encode())
    valid = load_spec(profile="tiny", dataset="demo", name="base", workspace=ws).spec.model_dump(mode="json")

    def submit(name: str, field: str, value: str) -> None:
        spec = copy.deepcopy(valid)
        spec["output"] = {**spec["output"], "name": name, "folder": f"/workspace/outputs/{name}"}
        section, _, key = field.partition(".")
        target = spec["datasets"][0] if section == "datasets[0]" else spec[section]
        target[key] = value
        Spool(ws).submit(Job(name=name, spec=spec))

    submit("dataset_outside", "datasets[0].folder", str(outside / "images"))
    submit("model_outside", "model.path", str(outside / "model.safetensors"))
    submit("output_outside", "output.folder", str(outside / "runs" / "output_outside"))
    submit("container_path", "output.folder", "/workspace/outputs/container_path")
    daemons.start()

    watch.until(lambda: len(watch.jobs()["failed"]) == 3 and watch.jobs()["done"], what="all jobs to end")
    assert (ws.outputs / "container_path" / "container_path.safetensors").is_file()
    for name, field in (
        ("dataset_outside", "spec.datasets[0].folder"),
        ("model_outside", "spec.model.path"),
        ("output_outside", "spec.output.folder"),
    ):
        shown = cli("status", name)
        assert shown.returncode == 0 and "state:     failed" in shown.stdout
        error = shown.stdout.partition("error:")[2]
        assert f"{field}: {outside}" in error and "is outside the workspace" in error, error
        assert not (ws.outputs / name).exists()  # refused before anything was written for it
    assert sorted(p.name for p in outside.iterdir()) == ["images", "model.safetensors"]
