"""The RunPod template agrees with the image: the ports the Dockerfile exposes, the volume it declares,
environment variables the appliance really reads, secrets only as RunPod secret references — and the
copy in docs/runpod.md is the file itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lorapilot.appliance.ssh import DEFAULT_PORT as SSH_PORT
from lorapilot.web.public_links import SERVICE_PORTS

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "docker" / "runpod-template.json"
SECRETS = {"LORAPILOT_PASSWORD", "HF_TOKEN"}


def template() -> dict:
    return json.loads(TEMPLATE.read_text(encoding="utf-8"))


def test_the_ports_are_the_dockerfile_s_web_services_over_http_and_ssh_over_tcp():
    exposed = re.search(r"^EXPOSE (.+)$", (REPO / "Dockerfile").read_text(), re.M).group(1).split()
    ports = dict(port.split("/") for port in template()["ports"])
    assert sorted(ports, key=int) == sorted(exposed, key=int)
    web = {str(default) for _, default in SERVICE_PORTS.values()}
    assert {port for port, kind in ports.items() if kind == "http"} == web
    assert {port for port, kind in ports.items() if kind == "tcp"} == {str(SSH_PORT)}


def test_the_volume_is_the_image_s_workspace():
    dockerfile = (REPO / "Dockerfile").read_text()
    mount = template()["volumeMountPath"]
    assert f"VOLUME {mount}" in dockerfile and f"LORAPILOT_WORKSPACE={mount}" in dockerfile
    assert template()["volumeInGb"] >= 50 and template()["containerDiskInGb"] >= 20


def test_every_variable_is_one_the_appliance_reads_and_secrets_are_runpod_secrets():
    sources = [(REPO / "docker" / "entrypoint.sh").read_text()]
    package = REPO / "services" / "lorapilot"
    sources += [path.read_text() for path in package.rglob("*.py") if "testing" not in path.parts]
    docs = (REPO / "docs" / "runpod.md").read_text()
    env = template()["env"]
    assert set(env) >= SECRETS
    for name, value in env.items():
        assert any(f'"{name}"' in s or f"${{{name}" in s or f"${name}" in s for s in sources), name
        assert f"| `{name}` |" in docs, f"docs/runpod.md does not say what {name} means"
        if name in SECRETS:
            assert re.fullmatch(r"\{\{ RUNPOD_SECRET_[a-z0-9_]+ \}\}", value), (
                f"{name} is not a RunPod secret"
            )


def test_docs_runpod_md_shows_the_template_file():
    block = re.search(r"```json\n(.*?)```", (REPO / "docs" / "runpod.md").read_text(), re.S).group(1)
    assert json.loads(block) == template()
    assert "docker/runpod-template.json" in (REPO / "README.md").read_text()
