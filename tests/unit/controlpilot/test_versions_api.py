"""`/api/versions` and the footer: the versions this ControlPilot runs, as the installed packages
report them (what `lorapilot-appliance version` prints)."""

from __future__ import annotations

import platform
from importlib import metadata

import torch

import lorapilot

LIBRARIES = ["diffusers", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors", "nvidia-ml-py"]


def test_the_versions_route_lists_what_is_installed(session):
    shown = session.ok("GET", "/api/versions")["versions"]
    assert [c["name"] for c in shown] == ["lorapilot", "python", "torch", "nvidia driver", *LIBRARIES]
    by_name = {c["name"]: c for c in shown}
    assert by_name["lorapilot"]["version"] == lorapilot.__version__
    assert by_name["python"]["version"] == platform.python_version()
    assert by_name["torch"]["version"] == torch.__version__
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    assert by_name["torch"]["detail"] == build
    for name in LIBRARIES:
        assert by_name[name]["version"] == metadata.version(name), name
    driver = by_name["nvidia driver"]
    if not torch.cuda.is_available():  # no driver here: the reason instead of a version
        assert driver["version"] is None and driver["detail"].startswith("no NVIDIA GPU or driver")


def test_the_dashboard_footer_shows_the_versions(session):
    page = session.call("GET", "/").get_data(as_text=True)
    footer = page[page.index("<footer>") :]
    assert f"LoRA Pilot {lorapilot.__version__} · torch {torch.__version__}" in footer
    for name in LIBRARIES:
        assert f"<th>{name}</th><td>{metadata.version(name)}</td>" in footer, name
