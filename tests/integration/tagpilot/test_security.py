"""Acceptance 5 against the running process: no session, no access; no path leaves the workspace;
oversized uploads and zip bombs are refused; nothing is written outside the workspace."""

from __future__ import annotations

import io
import re

import pytest
import requests
from PIL import Image

from lorapilot.tagpilot import create_app
from lorapilot.testing.sample_photos import zip_bomb, zip_of
from lorapilot.testing.web_client import ApplianceClient
from lorapilot.workspace import Workspace

OPEN = {"healthz", "auth.login"}


def _routes(tmp_path):
    """Every (method, url, endpoint) the TagPilot app registers, with placeholder path values."""
    app = create_app({"LORAPILOT_PASSWORD": "x"}, workspace=Workspace.from_env(tmp_path / "routes-ws"))
    found = []
    for rule in app.url_map.iter_rules():
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, url, rule.endpoint))
    assert len(found) > 25, found
    return found


def _png(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_every_route_but_healthz_and_login_refuses_a_request_without_a_session(server, tmp_path):
    for method, url, endpoint in _routes(tmp_path):
        reply = requests.request(method, f"{server.url}{url}", allow_redirects=False, timeout=10, json={})
        if endpoint in OPEN:
            continue
        assert reply.status_code in (302, 401), (method, url, reply.status_code)
        if reply.status_code == 302:
            assert reply.headers["Location"].startswith("/login?next=")
        else:
            assert reply.json() == {"error": "login required"}
    assert requests.get(f"{server.url}/healthz", timeout=5).json()["ok"] is True
    login = requests.get(f"{server.url}/login", timeout=5)
    assert login.status_code == 200 and "datasets" not in login.text


def test_a_session_without_the_csrf_token_cannot_change_anything(client, server, tmp_path):
    name = client.new_dataset("csrf")
    for method, url, endpoint in _routes(tmp_path):
        if method in ("GET",) or endpoint in OPEN:
            continue
        target = url.replace("/datasets/x", f"/datasets/{name}")
        reply = client.http.request(method, f"{server.url}{target}", json={"name": "y"}, timeout=10)
        assert reply.status_code == 403, (method, url, reply.status_code)
    assert client.ok("GET", f"/api/datasets/{name}")["images"] == 0


def test_wrong_passwords_and_cookie_flags(server):
    assert ApplianceClient(server.url).login("wrong").status_code == 401
    client = ApplianceClient(server.url)
    reply = client.login(server.password)
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.call("GET", "/")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert server.password not in server.log.read_text()


def test_a_cookie_copied_before_logout_is_refused_by_the_running_service(server):
    """Issue 16, finding 9: the signed cookie alone kept a logged-out session alive for a week."""
    client = ApplianceClient(server.url)
    assert client.login(server.password).ok
    copied = client.http.cookies.get("lorapilot_session")
    replay = requests.Session()
    replay.cookies.set("lorapilot_session", copied)
    assert replay.get(f"{server.url}/api/datasets", timeout=10).status_code == 200
    assert client.ok("POST", "/logout", json={}) == {"ok": True}
    assert replay.get(f"{server.url}/api/datasets", timeout=10).status_code == 401
    page = replay.get(f"{server.url}/", timeout=10, allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")


@pytest.mark.parametrize(
    "path",
    [
        "/api/datasets/..%2F..%2Fconfig",
        "/api/datasets/.tagpilot",
        "/api/datasets/%2e%2e",
        "/api/datasets/x/images/..%2F..%2F..%2Fconfig%2Fpassword",
        "/api/datasets/x/images/.%2E%2Fdataset.json/caption",
        "/api/trash/..%2F..%2Fconfig",
    ],
)
def test_path_traversal_in_urls_is_refused(client, path):
    reply = client.call("GET", path)
    assert reply.status_code in (400, 404), (path, reply.status_code)
    assert "password" not in reply.text.lower() or "not allowed" in reply.text


def test_path_traversal_in_names_is_refused_or_cleaned(client, server):
    for bad in ("../evil", "..", ".hidden", "a/b", "/abs", "x" * 65, ""):
        reply = client.call("POST", "/api/datasets", json={"name": bad})
        assert reply.status_code == 400 and "not allowed" in reply.json()["error"], bad
    name = client.new_dataset("names")
    assert client.call("PATCH", f"/api/datasets/{name}", json={"name": "../../evil"}).status_code == 400
    exported = client.call("POST", f"/api/datasets/{name}/export", json={"repeats": 1, "name": "../evil"})
    assert exported.status_code == 400
    reply = client.upload(name, [("../../../evil.png", _png()), ("..\\..\\evil2.png", _png((50, 50)))])
    assert [item["stored_as"] for item in reply.json()["accepted"]] == ["evil.png", "evil2.png"]
    archive = zip_of(
        {"../../evil3.png": _png((40, 40)), "/abs/evil4.png": _png((30, 30)), "ok/fine.png": _png((20, 20))}
    )
    reasons = {
        item["name"]: item["reason"] for item in client.upload(name, [("t.zip", archive)]).json()["rejected"]
    }
    assert reasons == {
        "t.zip/../../evil3.png": "'..' in the path inside the archive",
        "t.zip//abs/evil4.png": "absolute path inside the archive",
    }
    restore = client.call("POST", "/api/trash/..%2F..%2Fevil/restore", json={"name": "../x"})
    assert restore.status_code in (400, 404)
    root = server.workspace.root.parent
    evil = sorted(path.relative_to(root) for path in root.rglob("evil*"))
    stored = server.workspace.drafts.relative_to(root) / name
    assert {stored / "evil.png", stored / "evil2.png"} <= set(evil)
    assert all(stored in path.parents for path in evil), evil  # thumbnails are in the dataset too


def test_oversized_uploads_and_zip_bombs_are_refused(client, server):
    name = client.new_dataset("limits")
    big = b"\x89PNG" + bytes((server.max_upload_mb + 1) * 2**20)
    reply = client.upload(name, [("huge.png", big)])
    assert reply.status_code == 413 and f"{server.max_upload_mb} MB limit" in reply.json()["error"]
    one_file = b"\x89PNG" + bytes((server.max_image_mb + 1) * 2**20)
    reply = client.upload(name, [("large.png", one_file), ("fine.png", _png())])
    assert reply.json()["rejected"] == [
        {"name": "large.png", "reason": f"larger than the {server.max_image_mb} MB per-file limit"}
    ]
    reply = client.upload(name, [("bomb.zip", zip_bomb(64))]).json()
    assert reply["accepted"] == [] and "zip bomb" in reply["rejected"][0]["reason"]
    nested = zip_of({"inner.zip": zip_of({"a.png": _png()})})
    reply = client.upload(name, [("nested.zip", nested)]).json()
    assert reply["rejected"] == [
        {
            "name": "nested.zip/inner.zip",
            "reason": "archive inside an archive; unpack it and upload its files",
        }
    ]
    assert client.ok("GET", f"/api/datasets/{name}")["images"] == 1


def test_nothing_is_written_outside_the_workspace(client, server):
    """Uploads, a zip download and an export; the server fixture checks the same over the whole session."""
    name = client.new_dataset("outside")
    client.upload(name, [("a.png", _png()), ("b.zip", zip_of({"c.png": _png((70, 50))}))])
    assert client.call("GET", f"/api/datasets/{name}/export.zip").status_code == 200
    client.ok("POST", f"/api/datasets/{name}/export", json={"repeats": 1})
    assert list(server.tmpdir.iterdir()) == []
    root = server.workspace.root.parent
    assert sorted(path.name for path in root.iterdir()) == sorted(["ws", "system-tmp", "tagpilot.log"])
    ours = [
        path.name for path in server.workspace.tmp.iterdir() if path.name.startswith(("upload-", "export-"))
    ]
    assert ours == []  # TagPilot's own temp files are removed once used
