"""Acceptance 3: an exported dataset trains as it is; plus the .zip download and export replacement."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import pytest
import yaml
from safetensors import safe_open

from lorapilot.testing.datasets import write_demo_images


def _dataset_with_captions(client, tmp_path, count=4):
    name = client.new_dataset("export", family="sd15")
    paths = write_demo_images(tmp_path / "img", count, size=(80, 64), caption="")
    files = [(path.name, path.read_bytes()) for path in paths]
    files += [(path.with_suffix(".txt").name, path.with_suffix(".txt").read_bytes()) for path in paths]
    assert len(client.upload(name, files).json()["accepted"]) == count
    client.ok("POST", f"/api/datasets/{name}/captions/bulk", json={"op": "trigger", "word": "lpx"})
    return name


@pytest.mark.slow
def test_an_exported_folder_trains_on_the_tiny_model(client, server, tmp_path):
    from lorapilot.engine import train  # noqa: PLC0415 - heavy imports only for this test
    from lorapilot.spec import load_spec  # noqa: PLC0415
    from lorapilot.testing.tiny_models import build_tiny_model  # noqa: PLC0415

    name = _dataset_with_captions(client, tmp_path)
    result = client.ok("POST", f"/api/datasets/{name}/export", json={"repeats": 2})
    assert result == {
        "folder": f"/workspace/datasets/images/2_{name}",
        "images": 4,
        "repeats": 2,
        "replaced": [],
    }
    workspace = server.workspace
    folder = workspace.images / f"2_{name}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{i:04d}.png" for i in range(4)] + [f"{i:04d}.txt" for i in range(4)]
    )
    assert all(p.read_text().startswith("lpx, a ") for p in folder.glob("*.txt"))

    model = build_tiny_model("sd15", tmp_path / "tiny-sd15")
    shutil.copytree(model, workspace.model_dir("diffusers") / "tiny-sd15", dirs_exist_ok=True)
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "spec_version": 1,
                "model": {
                    "family": "sd15",
                    "path": "/workspace/models/diffusers/tiny-sd15",
                    "weight_dtype": "fp32",
                },
                "network": {"dim": 4, "alpha": 4},
                "datasets": [{"folder": name, "resolutions": [64], "bucket": {"enabled": False}}],
                "training": {"max_steps": 4, "batch_size": 2, "optimizer": "adamw", "mixed_precision": "no"},
            }
        )
    )
    spec = load_spec(config, name=f"from-{name}", workspace=workspace).spec
    run = train(spec, workspace, show_progress=False)
    with safe_open(str(run.lora), framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["ss_dataset_dirs"]) == {f"2_{name}": {"n_repeats": 2, "img_count": 4}}
    assert json.loads(metadata["ss_tag_frequency"])[f"2_{name}"]["lpx"] == 4


def test_the_zip_download_holds_the_kohya_folder(client, tmp_path):
    name = _dataset_with_captions(client, tmp_path, count=3)
    reply = client.call("GET", f"/api/datasets/{name}/export.zip?repeats=5")
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/zip"
    assert f"filename={5}_{name}.zip" in reply.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(reply.content)) as archive:
        names = sorted(archive.namelist())
        assert names == sorted([f"5_{name}/{i:04d}.{ext}" for i in range(3) for ext in ("png", "txt")])
        assert archive.read(f"5_{name}/0000.txt").decode().startswith("lpx, ")


def test_a_second_export_needs_replace_and_keeps_the_first_in_the_trash(client, server, tmp_path):
    name = _dataset_with_captions(client, tmp_path, count=2)
    summary = client.ok("GET", f"/api/datasets/{name}")
    assert summary["suggested_repeats"] == 40  # two images: as many repeats as the suggestion allows
    client.ok("POST", f"/api/datasets/{name}/export", json={})  # the suggestion is the default
    assert (server.workspace.images / f"40_{name}").is_dir()
    refused = client.call("POST", f"/api/datasets/{name}/export", json={"repeats": 3})
    assert refused.status_code == 409 and "replace" in refused.json()["error"]
    replaced = client.ok("POST", f"/api/datasets/{name}/export", json={"repeats": 3, "replace": True})
    assert replaced["replaced"] == [f"/workspace/datasets/images/40_{name}"]
    assert not (server.workspace.images / f"40_{name}").exists()
    assert (server.workspace.images / f"3_{name}").is_dir()
    trash = client.ok("GET", "/api/trash")["entries"]
    assert any(entry["kind"] == "export" and entry["name"] == f"40_{name}" for entry in trash)
