"""The Models page's catalog API: the entries with where each goes, a pull from a local file server
(standing in for the hub) with progress in the downloads list, the pulled base in the inventory the
training form offers and in comfy.yaml, and refusals that say what to do."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
import yaml

from lorapilot.families import FLUX_DEV
from lorapilot.testing.file_server import FileServer
from lorapilot.testing.split_files import write_flux_transformer

PATH = "/me/tiny-flux/resolve/main/tiny-flux.safetensors"


@pytest.fixture
def server(monkeypatch) -> Iterator[FileServer]:
    files = FileServer().start()
    monkeypatch.setenv("LORAPILOT_HF_ENDPOINT", files.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        yield files
    finally:
        files.stop()


def _finished(session, download_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        downloads = {d["id"]: d for d in session.ok("GET", "/api/models/downloads")["downloads"]}
        if downloads[download_id]["state"] in ("done", "failed"):
            return downloads[download_id]
        time.sleep(0.05)
    raise AssertionError(f"pull {download_id} did not finish: {downloads[download_id]}")


def test_the_catalog_lists_each_entry_with_its_folder_and_size(session):
    catalog = session.ok("GET", "/api/models/catalog")
    entries = {entry["name"]: entry for entry in catalog["entries"]}
    flux = entries["flux-dev"]
    assert flux["target"] == "/workspace/models/diffusion_models/flux1-dev.safetensors"
    assert (flux["family"], flux["size_bytes"], flux["gated"], flux["pulled"]) == (
        FLUX_DEV.id,
        23802932552,
        True,
        False,
    )
    assert catalog["user_file"] == "/workspace/config/models.yaml"


def test_a_pulled_entry_lands_in_the_inventory_and_comfy_yaml_with_progress(
    session, ws, server, tiny_models, tmp_path
):
    data = write_flux_transformer(tiny_models["flux-dev"], tmp_path / "served.safetensors").read_bytes()
    server.files[PATH] = data
    entry = {"name": "tiny-flux", "family": FLUX_DEV.id, "folder": "diffusion_models", "repo": "me/tiny-flux",
             "filename": "tiny-flux.safetensors", "size_bytes": len(data),
             "sha256": hashlib.sha256(data).hexdigest(), "comfy": {FLUX_DEV.id: "unet_name"}}  # fmt: skip
    ws.models_config.write_text(yaml.safe_dump({"catalog": [entry]}), encoding="utf-8")

    reply = session.call("POST", "/api/models/catalog/pull", json={"name": "tiny-flux"})
    assert reply.status_code == 202, reply.text
    done = _finished(session, reply.get_json()["download"]["id"])

    assert (done["state"], done["bytes_done"], done["bytes_total"]) == ("done", len(data), len(data))
    assert done["target"] == "/workspace/models/diffusion_models/tiny-flux.safetensors"
    models = {m["path"]: m for m in session.ok("GET", "/api/models")["models"]}
    pulled = models["/workspace/models/diffusion_models/tiny-flux.safetensors"]
    assert (pulled["family"], pulled["size_bytes"]) == (FLUX_DEV.id, len(data))
    settings = session.ok("GET", "/api/comfy/settings")
    assert settings["bases"][FLUX_DEV.id]["unet_name"] == "tiny-flux.safetensors"
    catalog = {e["name"]: e for e in session.ok("GET", "/api/models/catalog")["entries"]}
    assert catalog["tiny-flux"]["pulled"] is True


def test_a_failed_pull_shows_why_in_the_downloads_list(session, ws, server):
    server.files[PATH] = b"not the file"
    entry = {"name": "tiny-flux", "family": FLUX_DEV.id, "folder": "vae", "repo": "me/tiny-flux",
             "filename": "tiny-flux.safetensors", "size_bytes": 12,
             "sha256": hashlib.sha256(b"the real file").hexdigest()}  # fmt: skip
    ws.models_config.write_text(yaml.safe_dump({"catalog": [entry]}), encoding="utf-8")
    started = session.ok("POST", "/api/models/catalog/pull", json={"name": "tiny-flux"})["download"]
    failed = _finished(session, started["id"])
    assert failed["state"] == "failed"
    assert "is not the catalog's file: its sha256 is" in failed["error"]
    assert list((ws.models / "vae").iterdir()) == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"name": "no-such-model"}, 400, "no catalog entry 'no-such-model'; the catalog has: sd15,"),
        ({"name": "flux-dev"}, 400, "a gated repo: accept its licence (flux-1-dev-non-commercial-license)"),
        ({"nmae": "sd15"}, 400, "unknown field(s) nmae; accepted: name, token"),
    ],
)
def test_pull_requests_are_checked_before_anything_starts(session, body, status, says):
    reply = session.call("POST", "/api/models/catalog/pull", json=body)
    assert reply.status_code == status
    assert says in reply.get_json()["error"]
    assert session.ok("GET", "/api/models/downloads") == {"downloads": []}


def test_a_broken_user_catalog_is_reported_naming_the_file(session, ws):
    ws.models_config.write_text("catalog:\n  - {name: x, family: sdxl}\n", encoding="utf-8")
    reply = session.call("GET", "/api/models/catalog")
    assert reply.status_code == 400
    assert reply.get_json()["error"].startswith("/workspace/config/models.yaml: catalog[0] (x).folder")


def test_the_catalog_needs_the_password(app):
    assert app.test_client().get("/api/models/catalog").status_code == 401
