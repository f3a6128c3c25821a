"""The Models tab's API: base models by family with their sizes, disk usage, registering a path,
the LoRA library with each file's ss_* metadata, and a hub download that fails cleanly offline
without ever showing the token."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import time

import numpy as np
import pytest
from safetensors.numpy import save_file

from lorapilot.engine.metadata import RunFacts, kohya_metadata
from lorapilot.spec import load_spec
from lorapilot.testing.split_files import write_flux_split_files, write_flux_transformer
from lorapilot.testing.tiny_models import single_file_path

TOKEN = "hf_unitTestSecretToken1234567890"
IMPORTED = "/workspace/imports/my-model.safetensors"


def _by_path(models: list[dict]) -> dict[str, dict]:
    return {model["path"]: model for model in models}


def _add_tiny_models(ws, tiny_models, *families: str) -> None:
    for family in families:
        shutil.copytree(tiny_models[family], ws.model_dir("diffusers") / f"tiny-{family}")
        shutil.copyfile(
            single_file_path(tiny_models[family]), ws.model_dir("checkpoints") / f"tiny-{family}.safetensors"
        )


def _folder_bytes(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_inventory_finds_diffusers_folders_and_single_files_with_their_family(session, ws, tiny_models):
    _add_tiny_models(ws, tiny_models, "sd15", "sdxl")
    (ws.model_dir("checkpoints") / "mystery.ckpt").write_bytes(b"pickled weights")
    (ws.model_dir("checkpoints") / "broken.safetensors").write_bytes(b"\x10\x00")
    (ws.model_dir("diffusers") / ".half.partial").mkdir()  # a download in progress is not a model yet
    (ws.model_dir("diffusers") / ".half.partial" / "model_index.json").write_text("{}")

    models = _by_path(session.ok("GET", "/api/models")["models"])

    for family in ("sd15", "sdxl"):
        folder = models[f"/workspace/models/diffusers/tiny-{family}"]
        assert (folder["family"], folder["format"], folder["kind"]) == (family, "diffusers", "diffusers")
        assert folder["size_bytes"] == _folder_bytes(tiny_models[family])
        single = models[f"/workspace/models/checkpoints/tiny-{family}.safetensors"]
        assert (single["family"], single["format"], single["kind"]) == (family, "safetensors", "checkpoints")
        assert single["size_bytes"] == single_file_path(tiny_models[family]).stat().st_size
        assert single["family_note"] == "read from its tensor names"
    mystery = models["/workspace/models/checkpoints/mystery.ckpt"]
    assert mystery["family"] == "unknown" and "convert it to .safetensors" in mystery["family_note"]
    broken = models["/workspace/models/checkpoints/broken.safetensors"]
    assert broken["family"] == "unknown" and broken["family_note"].startswith("unreadable:")
    assert not [path for path in models if "partial" in path]


def test_disk_usage_is_the_workspace_filesystem_and_each_models_folder(session, ws, tiny_models):
    _add_tiny_models(ws, tiny_models, "sd15")
    disk = session.ok("GET", "/api/models")["disk"]
    assert disk["total_bytes"] >= disk["used_bytes"] > 0 and disk["free_bytes"] > 0
    assert disk["by_kind"]["diffusers"] == _folder_bytes(tiny_models["sd15"])
    assert disk["by_kind"]["checkpoints"] == single_file_path(tiny_models["sd15"]).stat().st_size
    assert disk["by_kind"]["loras"] == 0 and set(disk["by_kind"]) >= {"vae", "text_encoders", "captioners"}


def test_a_model_elsewhere_in_the_workspace_can_be_registered_and_unregistered(session, ws, tiny_models):
    imported = ws.root / "imports" / "my-model.safetensors"
    imported.parent.mkdir()
    shutil.copyfile(single_file_path(tiny_models["sd15"]), imported)

    reply = session.call("POST", "/api/models/register", json={"path": IMPORTED})
    assert reply.status_code == 201
    model = reply.get_json()["model"]
    assert (model["path"], model["family"], model["registered"]) == (IMPORTED, "sd15", True)
    assert IMPORTED in (ws.config / "models.yaml").read_text()
    session.ok("POST", "/api/models/register", json={"path": "imports/my-model.safetensors"})  # same file
    listing = session.ok("GET", "/api/models")
    assert listing["registered"] == [IMPORTED]
    assert _by_path(listing["models"])[IMPORTED]["kind"] == "registered"
    assert listing["disk"]["registered_bytes"] == imported.stat().st_size

    gone = session.ok("DELETE", "/api/models/unregister", json={"path": IMPORTED})
    assert gone == {"unregistered": IMPORTED}
    assert session.ok("GET", "/api/models")["registered"] == [] and imported.is_file()
    again = session.call("POST", "/api/models/unregister", json={"path": "imports/my-model.safetensors"})
    assert again.status_code == 404 and "is not registered" in again.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/etc/hostname", "is outside the workspace"),
        ("../outside.safetensors", "is outside the workspace"),
        ("/workspace/models/../../etc/hostname", "is outside the workspace"),
        ("linked/outside.safetensors", "is outside the workspace"),
        ("/workspace/imports/missing.safetensors", "nothing is there"),
        ("/workspace/datasets", "neither a diffusers folder"),
        ("/workspace/models/checkpoints/in-models.safetensors", "listed without registering"),
    ],
)
def test_registering_refuses_a_path_naming_it_and_the_fix(session, ws, tmp_path, path, says):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "outside.safetensors").write_bytes(b"x" * 16)
    (ws.root / "linked").symlink_to(outside)  # a link out of the workspace does not get a model in
    (ws.model_dir("checkpoints") / "in-models.safetensors").write_bytes(b"x" * 16)

    reply = session.call("POST", "/api/models/register", json={"path": path})

    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert repr(path) in error and says in error
    assert not (ws.config / "models.yaml").exists()


@pytest.mark.parametrize(
    "path",
    [
        "a" * 5000,  # one name longer than the file system takes
        "/workspace/" + "folder/" * 700 + "model.safetensors",  # a path longer than it takes
        "imports/model\x00.safetensors",
        "imports/\ud800.safetensors",  # JSON can carry a lone surrogate; no file name can
    ],
    ids=["long-name", "long-path", "nul", "surrogate"],
)
def test_a_path_the_file_system_cannot_take_is_refused_not_a_crash(session, ws, path):
    """Issue 16, finding 5: a 5,000-character path to register answered 500 (ENAMETOOLONG)."""
    reply = session.call("POST", "/api/models/register", json={"path": path})
    assert reply.status_code == 400, reply.text[:300]
    error = reply.get_json()["error"]
    assert (error.startswith("path ") or "not valid Unicode" in error) and len(error) < 1000
    assert session.call("POST", "/api/models/unregister", json={"path": path}).status_code in (400, 404)
    assert not (ws.config / "models.yaml").exists()


def test_registering_without_a_path_says_what_to_send(session):
    reply = session.call("POST", "/api/models/register", json={})
    assert reply.status_code == 400 and "path: give the model's path" in reply.get_json()["error"]


def _engine_metadata(ws) -> dict[str, str]:
    """The ss_* metadata the engine writes into a LoRA, for a quick_test run on the demo dataset."""
    spec = load_spec(profile="quick_test", dataset="demo", name="portrait", workspace=ws).spec
    facts = RunFacts(
        session_id="0123abcd",
        started_at=time.time() - 60,
        finished_at=time.time(),
        base_model_version="sd_v1",
        num_train_images=4,
        num_reg_images=0,
        batches_per_epoch=4,
        epochs=1,
        step=4,
        total_steps=4,
        dataset_dirs={"2_demo": {"n_repeats": 2, "img_count": 2}},
        tag_frequency={"2_demo": {"lpdemo": 2, "red": 1}},
    )
    return kohya_metadata(spec, facts)


def _write_lora(path, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": np.zeros((4, 32), np.float32),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": np.zeros((32, 4), np.float32),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": np.array(4.0, np.float32),
    }
    save_file(tensors, str(path), metadata=metadata)


def test_the_lora_library_shows_each_files_ss_metadata_and_sidecar(session, ws):
    metadata = _engine_metadata(ws)
    _write_lora(ws.outputs / "portrait" / "portrait.safetensors", metadata)
    _write_lora(ws.outputs / "portrait" / "state" / "lora.safetensors", metadata)  # resume state: not a LoRA
    published = ws.model_dir("loras") / "portrait.safetensors"
    _write_lora(published, {**metadata, "format": "pt"})
    published.with_suffix(".json").write_text(json.dumps({"family": "sd15", "trigger_words": ["lpdemo"]}))

    loras = {lora["path"]: lora for lora in session.ok("GET", "/api/loras")["loras"]}

    assert set(loras) == {
        "/workspace/outputs/portrait/portrait.safetensors",
        "/workspace/models/loras/portrait.safetensors",
    }
    run = loras["/workspace/outputs/portrait/portrait.safetensors"]
    assert (run["source"], run["run"], run["name"], run["tensors"], run["error"]) == (
        "run",
        "portrait",
        "portrait",
        3,
        None,
    )
    assert run["metadata"]["ss_output_name"] == "portrait"
    assert run["metadata"]["ss_base_model_version"] == "sd_v1"
    assert run["metadata"]["ss_network_dim"] == metadata["ss_network_dim"]
    assert run["metadata"]["ss_tag_frequency"] == {"2_demo": {"lpdemo": 2, "red": 1}}  # decoded, not text
    assert run["metadata"]["ss_dataset_dirs"] == {"2_demo": {"n_repeats": 2, "img_count": 2}}
    assert run["metadata"]["modelspec.title"] == "portrait"
    assert run["size_bytes"] == (ws.outputs / "portrait" / "portrait.safetensors").stat().st_size
    assert run["sidecar"] is None
    shared = loras["/workspace/models/loras/portrait.safetensors"]
    assert shared["source"] == "loras" and "format" not in shared["metadata"]
    assert shared["sidecar"] == {"family": "sd15", "trigger_words": ["lpdemo"]}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "shorter than a safetensors header"),
        (struct.pack("<Q", 2**40) + b"{}", "its header claims 1099511627776 bytes"),
        (struct.pack("<Q", 500) + b"{}", "it is truncated"),
        (struct.pack("<Q", 4) + b"\xff\xfe{]", "its header is not JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_a_damaged_lora_file_is_an_entry_with_an_error(session, ws, content, says):
    _write_lora(ws.model_dir("loras") / "good.safetensors", {"ss_network_dim": "4"})
    (ws.model_dir("loras") / "damaged.safetensors").write_bytes(content)

    reply = session.call("GET", "/api/loras")

    assert reply.status_code == 200
    loras = {lora["name"]: lora for lora in reply.get_json()["loras"]}
    assert loras["good"]["metadata"] == {"ss_network_dim": "4"} and loras["good"]["error"] is None
    assert loras["damaged"]["error"].startswith("/workspace/models/loras/damaged.safetensors: ")
    assert says in loras["damaged"]["error"] and loras["damaged"]["metadata"] == {}


def _finished(session, download_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        downloads = {d["id"]: d for d in session.ok("GET", "/api/models/downloads")["downloads"]}
        if downloads[download_id]["state"] in ("done", "failed"):
            return downloads[download_id]
        time.sleep(0.05)
    raise AssertionError(f"download {download_id} did not finish: {downloads[download_id]}")


def test_a_download_with_a_token_fails_cleanly_offline_and_never_shows_the_token(
    session, ws, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    replies = []

    reply = session.call(
        "POST", "/api/models/download", json={"repo_id": "stabilityai/sdxl-turbo", "token": TOKEN}
    )
    replies.append(reply.get_data(as_text=True))
    assert reply.status_code == 202
    started = reply.get_json()["download"]
    assert started["target"] == "/workspace/models/diffusers/sdxl-turbo"
    assert started["token_source"] == "request"
    failed = _finished(session, started["id"])
    replies.append(session.call("GET", "/api/models/downloads").get_data(as_text=True))

    assert failed["state"] == "failed"
    assert "the hub is offline here (HF_HUB_OFFLINE is set)" in failed["error"]
    assert "unset HF_HUB_OFFLINE" in failed["error"]
    progress_files = list((ws.tmp / "downloads").glob("*.json"))
    assert [p.name for p in progress_files] == [f"{started['id']}.json"]
    assert json.loads(progress_files[0].read_text())["state"] == "failed"
    assert not (ws.model_dir("diffusers") / "sdxl-turbo").exists()
    kept = [path.read_text(errors="replace") for path in ws.root.rglob("*") if path.is_file()]
    for text in [*replies, caplog.text, *kept]:
        assert TOKEN not in text


def test_the_token_can_come_from_the_workspace_config_and_stays_out_of_the_progress(session, ws, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (ws.config / "hf-token").write_text(TOKEN + "\n")
    body = {
        "repo_id": "https://huggingface.co/owner/models",
        "filename": "unet/w.safetensors",
        "name": "my-unet",
    }

    started = session.ok("POST", "/api/models/download", json=body)["download"]

    assert (started["repo_id"], started["filename"]) == ("owner/models", "unet/w.safetensors")
    assert started["target"] == "/workspace/models/checkpoints/my-unet.safetensors"  # keeps its suffix
    assert started["token_source"] == "config/hf-token"
    assert _finished(session, started["id"])["state"] == "failed"
    assert TOKEN not in (ws.tmp / "downloads" / f"{started['id']}.json").read_text()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"repo_id": "not a repo!"}, 400, "repo_id 'not a repo!' is not a hub repo id"),
        ({"repo_id": ""}, 400, "write it as owner/name"),
        ({"repo_id": "a/b", "filename": "../../etc/passwd"}, 400, "filename '../../etc/passwd'"),
        ({"repo_id": "a/b", "filename": "x.safetensors", "kind": "outputs"}, 400, "kind 'outputs'"),
        ({"repo_id": "a/b", "kind": "vae"}, 400, "give a filename"),
        ({"repo_id": "a/b", "name": ".hidden"}, 400, "name '.hidden'"),
        ({"repo_id": "owner/tiny-sd15"}, 409, "/workspace/models/diffusers/tiny-sd15 already exists"),
        ({"repo_id": "a/b", "name": "a" * 5000}, 400, "a file name takes at most 255"),  # was a 500
    ],
)
def test_download_requests_are_checked_before_anything_starts(session, ws, body, status, says):
    (ws.model_dir("diffusers") / "tiny-sd15").mkdir()
    reply = session.call("POST", "/api/models/download", json=body)
    assert reply.status_code == status and says in reply.get_json()["error"]
    assert session.ok("GET", "/api/models/downloads") == {"downloads": []}


def test_the_models_page_links_back_to_training_and_tagpilot(session):
    page = session.call("GET", "/models")
    assert page.status_code == 200 and "csrf-token" in page.text
    assert 'src="/assets/page_common.js"' in page.text and 'src="/assets/models.js"' in page.text
    assert 'href="/assets/controlpilot.css"' in page.text
    assert '<a href="/">Training</a>' in page.text and 'id="tagpilot-link"' in page.text
    assert 'id="download-token" name="token" type="password"' in page.text
    assert "http" not in page.text.split("<body")[0].replace("http-equiv", "")
    for name in ("page_common.js", "models.js", "models.css"):
        assert session.call("GET", f"/assets/{name}").status_code == 200
    assert session.call("GET", "/assets/other.js").status_code == 404
    assert session.call("GET", "/assets/..%2fapp.py").status_code == 404


def test_a_misspelt_download_field_is_refused_and_the_token_is_never_repeated(session):
    body = {"repo_id": "owner/models", "filname": "unet/w.safetensors", "token": "hf_secret_value"}
    reply = session.call("POST", "/api/models/download", json=body)
    assert reply.status_code == 400
    assert reply.get_json()["error"] == (
        "unknown field(s) filname; accepted: repo_id, filename, name, kind, token"
    )
    bad_token = session.call("POST", "/api/models/download", json={"repo_id": "a/b", "token": 5})
    assert bad_token.status_code == 400 and bad_token.get_json()["error"].startswith("token: ")
    assert session.ok("GET", "/api/models/downloads") == {"downloads": []}


def test_split_file_flux_models_in_comfyuis_folders_are_listed_with_their_family(session, ws, tiny_models):
    write_flux_split_files(tiny_models["flux-dev"], ws.models, "flux1-a.safetensors", fp8_t5=False)
    write_flux_transformer(
        tiny_models["flux-schnell"], ws.models / "diffusion_models" / "flux1-b.safetensors"
    )

    models = _by_path(session.ok("GET", "/api/models")["models"])

    dev = models["/workspace/models/unet/flux1-a.safetensors"]
    schnell = models["/workspace/models/diffusion_models/flux1-b.safetensors"]
    assert (dev["family"], dev["kind"]) == ("flux-dev", "unet")
    assert (schnell["family"], schnell["kind"]) == ("flux-schnell", "diffusion_models")
    assert (
        "its clip_l, t5xxl, vae files are separate" in dev["family_note"]
        and "models/clip" in dev["family_note"]
    )
    assert models["/workspace/models/clip/clip_l.safetensors"]["kind"] == "clip"
    disk = session.ok("GET", "/api/models")["disk"]
    assert disk["by_kind"]["unet"] == (ws.models / "unet" / "flux1-a.safetensors").stat().st_size
