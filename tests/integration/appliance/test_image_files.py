"""The image's build files: hadolint-clean, and every program supervisord starts is really installed."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def supervisor_programs() -> dict[str, str]:
    parser = configparser.RawConfigParser()
    parser.read(REPO / "supervisord.conf")
    sections = [s for s in parser.sections() if s.startswith("program:")]
    return {s.removeprefix("program:"): parser.get(s, "command") for s in sections}


def test_hadolint_passes_on_the_dockerfile():
    done = subprocess.run([HADOLINT, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_program_command_is_a_console_script_or_a_file_the_image_installs():
    scripts = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
    dockerfile = (REPO / "Dockerfile").read_text()
    programs = supervisor_programs()
    assert "trainpilot" in programs
    for name, command in programs.items():
        executable = shlex.split(command)[0]
        installed = executable in scripts or (executable.startswith("/") and executable in dockerfile)
        assert installed, f"[program:{name}] runs {executable!r}, which nothing installs"


def test_the_entrypoint_and_the_image_agree_on_paths():
    dockerfile = (REPO / "Dockerfile").read_text()
    entrypoint = (REPO / "docker" / "entrypoint.sh").read_text()
    assert "COPY docker/entrypoint.sh /usr/local/bin/lorapilot-entrypoint" in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/lorapilot-entrypoint"]' in dockerfile
    assert "exec supervisord -n -c /opt/lorapilot/supervisord.conf" in entrypoint
    assert "COPY supervisord.conf ./" in dockerfile and "WORKDIR /opt/lorapilot" in dockerfile
    assert "VOLUME /workspace" in dockerfile
    done = subprocess.run(["bash", "-n", str(REPO / "docker" / "entrypoint.sh")], check=False)
    assert done.returncode == 0


def test_the_image_ships_the_docs_controlpilot_serves():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "WORKDIR /opt/lorapilot" in dockerfile and "COPY docs ./docs" in dockerfile
    assert "LORAPILOT_DOCS=/opt/lorapilot/docs" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not {"docs", "docs/", "*.md", "**/*.md"} & set(ignored)


def test_the_image_installs_torch_at_the_bootstrap_s_version_then_the_hashed_lock():
    dockerfile = (REPO / "Dockerfile").read_text()
    steps = [
        "COPY requirements ./requirements",
        'RUN pip install -r requirements/torch.txt --index-url "${TORCH_INDEX}"',
        "RUN pip install --require-hashes -r requirements/runtime.txt",
        "RUN pip install --no-deps --no-build-isolation .",
    ]
    at = [dockerfile.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), dict(zip(steps, at, strict=True))
    # One torch version: requirements/torch.txt, which scripts/bootstrap installs too.
    assert not re.search(r"torch==\d|TORCH_VERSION", dockerfile)
    assert "requirements/torch.txt" in (REPO / "scripts" / "bootstrap").read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not {"requirements", "requirements/", "*.txt", "**/*.txt"} & set(ignored)


def test_supervisord_has_no_http_control_server():
    parser = configparser.RawConfigParser()
    parser.read(REPO / "supervisord.conf")
    assert not parser.has_section("inet_http_server")
    assert parser.get("unix_http_server", "chmod") == "0700"
