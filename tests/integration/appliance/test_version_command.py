"""`lorapilot-appliance version`: the versions a bug report needs, from the installed packages."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

import lorapilot

APPLIANCE = shutil.which("lorapilot-appliance") or str(Path(sys.executable).with_name("lorapilot-appliance"))
LIBRARIES = ["diffusers", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors", "nvidia-ml-py"]


def run_version(*args: str) -> str:
    done = subprocess.run(
        [APPLIANCE, "version", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # nothing but the versions
    return done.stdout


def test_version_prints_one_line_per_component_with_torch_s_build():
    lines = run_version().splitlines()
    table = dict(re.split(r" {2,}", line, maxsplit=1) for line in lines)  # name, then two spaces or more
    assert list(table) == ["lorapilot", "python", "torch", "nvidia driver", *LIBRARIES]
    assert table["lorapilot"] == lorapilot.__version__
    assert table["python"] == f"{platform.python_version()} ({platform.python_implementation()})"
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    assert table["torch"] == f"{torch.__version__} ({build})"
    for name in LIBRARIES:
        assert table[name] == metadata.version(name), name
    if not torch.cuda.is_available():
        assert table["nvidia driver"].startswith("none: no NVIDIA GPU or driver ("), table["nvidia driver"]


def test_version_json_carries_the_same_versions():
    components = json.loads(run_version("--json"))
    text = run_version()
    for component in components:
        shown = component["version"] or ("none" if component["name"] == "nvidia driver" else "not installed")
        assert any(line.startswith(component["name"]) and shown in line for line in text.splitlines())
    assert {c["name"]: c["version"] for c in components}["torch"] == torch.__version__
