"""The model catalog: every shipped entry names a registered family, a folder and a size; users add
and override entries in config/models.yaml, and a bad entry is refused naming the file and field."""

from __future__ import annotations

import pytest
import yaml

from lorapilot import families
from lorapilot.appliance import model_catalog
from lorapilot.appliance.model_catalog import CatalogError
from lorapilot.controlpilot import model_inventory
from lorapilot.workspace import Workspace

FOLDERS = {"checkpoints", "diffusion_models", "text_encoders", "vae", "diffusers"}


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.from_env(tmp_path / "ws").ensure()


def test_every_shipped_entry_names_a_family_a_folder_and_a_size(ws):
    entries = model_catalog.shipped_entries()
    assert len({entry.name for entry in entries}) == len(entries)
    for entry in entries:
        assert entry.family in families.ids(), entry.name
        assert entry.folder in FOLDERS, entry.name
        assert entry.size_bytes > 0, entry.name
        assert entry.license, entry.name
        assert ws.models in entry.target(ws).parents
        if entry.folder == "diffusers":
            assert entry.size_is_estimate and entry.filename is None, entry.name
        else:  # one file: its exact size, and the base input each family's ComfyUI workflow takes it as
            assert entry.filename and not entry.size_is_estimate, entry.name
            for family, key in entry.comfy.items():
                assert key in families.get(family).comfy.files, (entry.name, family, key)


def test_the_catalog_covers_each_trained_family_with_a_pullable_base():
    bases = {entry.family for entry in model_catalog.shipped_entries() if entry.folder != "vae"}
    for family in (families.SD15, families.SDXL, families.SD3, families.FLUX_DEV, families.FLUX_SCHNELL):
        assert family.id in bases


def test_every_flux_and_sd3_base_input_is_filled_by_some_entry():
    filled = {
        (family, key) for entry in model_catalog.shipped_entries() for family, key in entry.comfy.items()
    }
    for family in (families.SD3, families.FLUX_DEV, families.FLUX_SCHNELL):
        assert {(family.id, key) for key in family.comfy.files} <= filled


def _write_user(ws: Workspace, document) -> None:
    ws.models_config.write_text(yaml.safe_dump(document), encoding="utf-8")


def test_user_entries_are_added_and_replace_shipped_ones_of_the_same_name(ws):
    _write_user(
        ws,
        {
            "paths": [],
            "catalog": [
                {"name": "my-xl", "family": "sdxl", "folder": "checkpoints", "repo": "me/my-xl",
                 "filename": "weights/my-xl.safetensors", "size_bytes": 1234},
                {"name": "sd15", "family": "sd15", "folder": "checkpoints", "repo": "mirror/sd15",
                 "filename": "sd15.safetensors", "size_bytes": 99},
            ],
        },
    )  # fmt: skip
    entries = {entry.name: entry for entry in model_catalog.load(ws)}
    assert entries["my-xl"].target(ws) == ws.models / "checkpoints" / "my-xl.safetensors"
    assert entries["my-xl"].source == "/workspace/config/models.yaml"
    assert (entries["sd15"].repo, entries["sd15"].size_bytes) == ("mirror/sd15", 99)
    assert "flux-dev" in entries  # the shipped ones stay


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"family": "sdxl", "folder": "checkpoints", "repo": "a/b", "filename": "x.safetensors"}, "name"),
        ({"name": "x", "family": "sdxx", "folder": "checkpoints", "repo": "a/b", "filename": "x",
          "size_bytes": 1},
         "catalog[0] (x).family: unknown family 'sdxx'"),
        ({"name": "x", "family": "sdxl", "folder": "checkpoints", "repo": "a/b", "filename": "x"},
         "catalog[0] (x).size_bytes: Field required"),
        ({"name": "x", "family": "sdxl", "folder": "loras", "repo": "a/b", "filename": "x", "size_bytes": 1},
         "catalog[0] (x).folder"),
        ({"name": "x", "family": "sdxl", "folder": "vae", "repo": "a/b", "filename": "../x", "size_bytes": 1},
         "catalog[0] (x).filename"),
        ({"name": "x", "family": "sdxl", "folder": "checkpoints", "repo": "a/b", "size_bytes": 1},
         "filename: which file of a/b"),
        ({"name": "x", "family": "flux-dev", "folder": "vae", "repo": "a/b", "filename": "ae.safetensors",
          "size_bytes": 1, "comfy": {"flux-dev": "ckpt_name"}}, "flux-dev takes no 'ckpt_name'"),
        ({"name": "x", "family": "sdxl", "folder": "vae", "repo": "a/b", "filename": "x", "size_bytes": 1,
          "sha256": "abc"}, "catalog[0] (x).sha256"),
        ({"name": "x", "family": "sdxl", "folder": "vae", "repo": "a/b", "filename": "x", "size_bytes": 1,
          "size": 1}, "catalog[0] (x).size: unknown field; accepted: name, family"),
    ],
)  # fmt: skip
def test_a_bad_user_entry_is_refused_naming_the_file_and_the_field(ws, entry, says):
    _write_user(ws, {"catalog": [entry]})
    with pytest.raises(CatalogError) as caught:
        model_catalog.load(ws)
    assert str(caught.value).startswith("/workspace/config/models.yaml: ")
    assert says in str(caught.value)


def test_a_broken_user_file_is_named_with_what_it_should_hold(ws):
    ws.models_config.write_text("catalog: {name: x}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"models.yaml: catalog must be a list of entries, e.g."):
        model_catalog.load(ws)
    ws.models_config.write_text("catalog: [\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"models\.yaml is not valid YAML"):
        model_catalog.load(ws)


def test_an_unknown_name_lists_the_catalog(ws):
    with pytest.raises(CatalogError, match=r"no catalog entry 'sdxl-base'; the catalog has: sd15, "):
        model_catalog.find(ws, "sdxl-base")


def test_registering_a_path_on_the_models_page_keeps_the_users_catalog_entries(ws):
    entry = {"name": "mine", "family": "sd15", "folder": "checkpoints", "repo": "me/mine",
             "filename": "mine.safetensors", "size_bytes": 10}  # fmt: skip
    _write_user(ws, {"catalog": [entry]})
    (ws.root / "imports").mkdir()
    (ws.root / "imports" / "a.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    model_inventory.register(ws, "/workspace/imports/a.safetensors")
    assert model_inventory.registered_paths(ws) == ["/workspace/imports/a.safetensors"]
    assert "mine" in {e.name for e in model_catalog.load(ws)}
