"""The JSON API through the app factory: every route behind login, dataset CRUD, captions, trash."""

from __future__ import annotations

import io
import re

from lorapilot.testing.sample_photos import image_bytes as png
from lorapilot.web import OPEN_ENDPOINTS


def test_every_tagpilot_route_refuses_a_request_without_a_session(app):
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in OPEN_ENDPOINTS:
            continue
        url = re.sub(r"<[^>]+>", "x", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            reply = client.open(url, method=method, json={})
            assert reply.status_code in (302, 401), (method, url, reply.status_code)
            checked += 1
    assert checked >= 25


def test_dataset_lifecycle(api, workspace):
    assert api.post("/api/datasets", json={"name": "cats", "family": "sd15"}).status_code == 201
    assert api.post("/api/datasets", json={"name": "cats"}).status_code == 409
    assert api.post("/api/datasets", json={"name": "dogs", "family": "sd9"}).status_code == 400
    data = {"files": [(io.BytesIO(png()), "a.png"), (io.BytesIO(png((80, 60), (1, 2, 3))), "b.png")]}
    reply = api.post("/api/datasets/cats/upload", data=data, content_type="multipart/form-data")
    assert reply.json["summary"]["images"] == 2
    assert (
        api.post("/api/datasets/cats/upload", data={}, content_type="multipart/form-data").status_code == 400
    )
    assert (
        api.put("/api/datasets/cats/images/a.png/caption", json={"caption": "one\ntwo "}).json["caption"]
        == "one two"
    )
    assert api.get("/api/datasets/cats/images/a.png/caption").json["caption"] == "one two"
    assert api.put("/api/datasets/cats/images/zz.png/caption", json={"caption": "x"}).status_code == 404
    assert api.get("/api/datasets/cats/images/a.png/thumb").mimetype == "image/jpeg"
    assert (
        api.patch("/api/datasets/cats", json={"name": "kittens", "caption_style": "sentence"}).status_code
        == 200
    )
    listed = api.get("/api/datasets").json["datasets"]
    assert [(d["name"], d["settings"]["caption_style"], d["captioned"]) for d in listed] == [
        ("kittens", "sentence", 1)
    ]
    trash_id = api.delete("/api/datasets/kittens/images/b.png").json["trash_id"]
    assert api.get("/api/datasets/kittens").json["images"] == 1
    assert api.post(f"/api/trash/{trash_id}/restore").json["restored"] == "image"
    trash_id = api.delete("/api/datasets/kittens").json["trash_id"]
    assert api.get("/api/datasets/kittens").status_code == 404
    assert api.post(f"/api/trash/{trash_id}/restore", json={"name": "cats"}).json["dataset"] == "cats"
    assert api.get("/api/datasets/cats").json["images"] == 2
    assert api.delete(f"/api/trash/{trash_id}").status_code == 404


def test_the_page_and_its_assets_are_served_without_any_external_reference(api):
    page = api.get("/").text
    assert 'name="csrf-token"' in page and "/assets/tagpilot.js" in page
    for asset in ("tagpilot.js", "tagpilot.css"):
        text = api.get(f"/assets/{asset}").text
        assert "http://" not in text and "https://" not in text
    assert "http" not in re.sub(r'placeholder="http://host:8000/v1"', "", page)
    assert api.get("/assets/../app.py").status_code == 404


def test_a_caption_with_text_that_is_not_unicode_is_a_400_and_changes_nothing(api, workspace):
    """Found by the API fuzzer (issue 16): a lone surrogate in a caption failed writing it, a 500."""
    api.post("/api/datasets", json={"name": "odd"})
    data = {"files": [(io.BytesIO(png()), "a.png")]}
    api.post("/api/datasets/odd/upload", data=data, content_type="multipart/form-data")
    reply = api.put(
        "/api/datasets/odd/images/a.png/caption",
        data='{"caption": "x\\ud800"}',
        content_type="application/json",
    )
    assert reply.status_code == 400 and "not valid Unicode" in reply.json["error"]
    assert api.get("/api/datasets/odd/images/a.png/caption").json["caption"] == ""
