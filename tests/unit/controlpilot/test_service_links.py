"""ControlPilot's links to the appliance's web services: every page and the services API give the
address the user's browser opens (lorapilot.web.public_links), never a guess made in the page."""

from __future__ import annotations

import re

from lorapilot.controlpilot import create_app
from lorapilot.controlpilot.services import program

PASSWORD = "controlpilot-unit-password"  # the conftest's
SUPERVISOR_INFO = {
    "group": "g",
    "statename": "RUNNING",
    "pid": 7,
    "description": "",
    "start": 1,
    "exitstatus": 0,
}


def _links(html: str) -> dict[str, str]:
    return dict(re.findall(r'<a id="(tagpilot|comfyui)-link" href="([^"]+)"', html))


def test_the_pages_link_to_the_services_on_the_page_s_host_without_settings(ws, login, monkeypatch):
    for variable in (
        "RUNPOD_POD_ID",
        "LORAPILOT_PUBLIC_URL",
        "LORAPILOT_TAGPILOT_PORT",
        "LORAPILOT_COMFYUI_PORT",
    ):
        monkeypatch.delenv(variable, raising=False)
    session = login(create_app({"LORAPILOT_PASSWORD": PASSWORD}, workspace=ws))
    for page in ("/", "/models", "/jobs/anything"):
        html = session.http.get(page).text
        assert _links(html) == {"tagpilot": "http://localhost:7861/", "comfyui": "http://localhost:8188/"}, (
            page
        )


def test_with_a_public_url_pattern_the_pages_and_the_services_api_use_it(ws, login, monkeypatch):
    monkeypatch.delenv("RUNPOD_POD_ID", raising=False)
    monkeypatch.setenv("LORAPILOT_PUBLIC_URL", "https://{port}.gpu.example.com")
    monkeypatch.setenv("LORAPILOT_TAGPILOT_PORT", "9861")
    app = create_app({"LORAPILOT_PASSWORD": PASSWORD}, workspace=ws)
    html = login(app).http.get("/").text
    assert _links(html) == {
        "tagpilot": "https://9861.gpu.example.com/",
        "comfyui": "https://8188.gpu.example.com/",
    }
    with app.test_request_context("/api/services"):
        assert program({**SUPERVISOR_INFO, "name": "tagpilot"})["link"] == "https://9861.gpu.example.com/"
        assert program({**SUPERVISOR_INFO, "name": "trainpilot"})["link"] is None  # no web port
