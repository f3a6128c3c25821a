"""The family registry is the one place family facts live, and every layer agrees with it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import lorapilot
from lorapilot import families
from lorapilot.comfy.workflows import BUILDERS, build
from lorapilot.families import AITOOLKIT_ARCH, DIFFUSION_PIPE_TYPE, Family
from lorapilot.families.registry import DIALECT_NAMES, register
from lorapilot.testing.tiny_families import FAMILIES as TINY_FAMILIES

PACKAGE = Path(lorapilot.__file__).parent
REGISTRY = PACKAGE / "families"
# Other programs' vocabularies that happen to spell one of our ids; each says why it stays literal.
EXEMPT = {
    PACKAGE / "testing" / "comfyui_nodes.py": "ComfyUI's own DualCLIPLoader `type` choices",
}


def _literal_ids(path: Path) -> list[tuple[int, str]]:
    ids = set(families.ids())
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ids
    ]


def test_no_module_outside_the_registry_spells_a_family_id():
    found = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if REGISTRY not in path.parents and path not in EXEMPT
        for hits in [_literal_ids(path)]
        if hits
    }
    assert found == {}, "use the registry (lorapilot.families) instead of these literals"


def test_no_page_or_script_spells_a_family_id():
    ids = "|".join(map(re.escape, families.ids()))
    quoted = re.compile(rf"""["'>]({ids})["'<]""")
    pages = [p for p in PACKAGE.rglob("*") if p.suffix in (".html", ".js")]
    assert pages, "the web services' pages were not found"
    found = {str(p.relative_to(PACKAGE)): quoted.findall(p.read_text(encoding="utf-8")) for p in pages}
    assert {page: hits for page, hits in found.items() if hits} == {}


def test_the_literal_check_catches_a_spelt_id(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(f"if family == {families.SDXL.id!r}:\n    pass\n")
    assert _literal_ids(module) == [(1, families.SDXL.id)]


@pytest.mark.parametrize("family", families.all_families(), ids=str)
def test_every_family_has_an_adapter_a_comfyui_workflow_and_a_tiny_model(family: Family):
    from lorapilot.engine.families import adapter_for  # noqa: PLC0415 - torch only here

    adapter = adapter_for(family.id)
    assert adapter.family is family
    assert family.comfy.workflow in BUILDERS
    assert family.id in TINY_FAMILIES, "add a tiny recipe in lorapilot.testing.tiny_families"
    base = {key: f"{key}.safetensors" for key in family.comfy.inputs}
    from lorapilot.comfy.workflows import Base, Render  # noqa: PLC0415

    assert build(family.id, Render("x"), Base(base))


@pytest.mark.parametrize("family", families.all_families(), ids=str)
def test_every_family_names_its_lora_targets_and_kohya_names(family: Family):
    assert family.lora.denoiser
    assert family.kohya.base_model_version
    assert set(family.aliases) <= set(DIALECT_NAMES)
    if family.trains_text_encoders:
        assert family.lora.text_encoder, "text-encoder training needs CLIP targets"
    if "locon" in family.network_types:
        assert family.lora.conv, "LoCon needs conv targets"


def test_dialect_names_pick_the_family_the_trainer_would():
    assert families.by_alias(AITOOLKIT_ARCH, "sd1") is families.SD15
    assert (
        families.by_alias(AITOOLKIT_ARCH, "flux", "/workspace/models/FLUX.1-schnell") is families.FLUX_SCHNELL
    )
    assert families.by_alias(AITOOLKIT_ARCH, "flux", "/workspace/models/FLUX.1-dev") is families.FLUX_DEV
    assert families.by_alias(AITOOLKIT_ARCH, "flux", None) is families.FLUX_DEV
    assert families.by_alias(DIFFUSION_PIPE_TYPE, "sd15") is None
    assert families.alias_names(DIFFUSION_PIPE_TYPE) == ("sdxl", "sd3", "flux")


def test_an_unknown_family_is_refused_naming_the_known_ones():
    with pytest.raises(families.UnknownFamilyError, match="unknown model family 'sd4'; known: sd15, sd2"):
        families.get("sd4")
    assert families.find("sd4") is None and families.find(None) is None


def test_a_family_cannot_be_registered_twice_or_with_an_unknown_dialect():
    with pytest.raises(ValueError, match="registered twice"):
        register(families.SD15)
    stray = Family(
        **{**families.SD15.__dict__, "id": "stray", "aliases": {"kohya script": ("x",)}},
    )
    with pytest.raises(ValueError, match="unknown dialect keys"):
        register(stray)
    assert families.find("stray") is None


def test_facts_are_read_only():
    with pytest.raises(TypeError):
        families.FLUX_DEV.comfy.options["weight_dtype"] = "fp8_e4m3fn"  # type: ignore[index]
    with pytest.raises(AttributeError):
        families.SD15.native_resolution = 1024  # type: ignore[misc]
