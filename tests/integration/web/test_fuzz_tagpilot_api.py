"""Fuzzing TagPilot's routes and uploads through the real app (issue 16): mutated JSON bodies, odd
path parameters and uploads (random bytes, cut and damaged images, zips with odd member names, odd
file names) answer without crashing (no 500), store nothing outside the workspace, and the app
still answers afterwards. Auto-captioning is left out: it would load a captioner model."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from lorapilot.tagpilot import create_app
from lorapilot.testing.api_fuzz import (
    OutsideTheWorkspace,
    Route,
    answer_ok,
    build_url,
    encode,
    file_names,
    json_values,
    logged_in,
    mutated,
    path_params,
    routes,
    send,
    upload_content,
)
from lorapilot.testing.sample_photos import image_bytes
from lorapilot.workspace import Workspace

pytestmark = pytest.mark.fuzz

PASSWORD = "tagpilot-fuzz-password"
DATASET = "cats"
LEFT_OUT = {"auth.logout", "auth.login", "api.autocaption"}  # the session's own; a captioner load
TEMPLATES: dict[str, list[dict]] = {
    "api.create_dataset": [{"name": "dogs", "family": "sd15", "caption_style": "tags", "trigger_word": "t"}],
    "api.update_dataset": [
        {"name": DATASET, "caption_style": "sentence", "family": "sdxl"},
        {"trigger_word": "t", "family": "flux"},
    ],
    "api.put_caption": [{"caption": "a cat, sitting"}],
    "api.bulk_captions": [
        {"op": "trigger", "word": "tok", "images": ["a.png"]},
        {"op": "replace", "find": "cat", "replace": "dog"},
        {"op": "prefix", "text": "photo"},
        {"op": "remove_tag", "tag": "sitting", "images": ["a.png", "b.png"]},
    ],
    "api.export_dataset": [{"repeats": 2, "name": DATASET, "replace": True}, {"repeats": 1}],
    "api.trash_restore": [{"name": "restored"}, {}],
}


@dataclass
class Target:
    http: FlaskClient
    ws: Workspace
    outside: Path
    watch: OutsideTheWorkspace
    trash_id: str

    def dataset_ready(self) -> None:
        """The dataset the fuzzer works on, made again when a fuzzed request renamed or deleted it."""
        found = self.http.get(f"/api/datasets/{DATASET}")
        if found.status_code == 200:
            return
        reply = self.http.post("/api/datasets", json={"name": DATASET})
        assert reply.status_code == 201, (found.status_code, found.get_data(as_text=True)[:500])
        files = [(io.BytesIO(image_bytes(colour=(9, 9, i))), f"{n}.png") for i, n in enumerate("ab")]
        upload = self.http.post(
            f"/api/datasets/{DATASET}/upload", data={"files": files}, content_type="multipart/form-data"
        )
        assert upload.status_code == 200, upload.get_data(as_text=True)
        for name in ("a.png", "b.png"):
            caption = {"caption": "a cat, sitting"}
            self.http.put(f"/api/datasets/{DATASET}/images/{name}/caption", json=caption)


@pytest.fixture
def target(tmp_path, monkeypatch) -> Target:
    """TagPilot with a dataset of two captioned images and a trash entry; $TMPDIR is a private empty
    folder and `outside` a folder beside the workspace, both of which must stay empty."""
    system_tmp, outside = tmp_path / "system-tmp", tmp_path / "outside"
    system_tmp.mkdir()
    outside.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    app = create_app({"LORAPILOT_PASSWORD": PASSWORD, "TESTING": True}, workspace=ws)
    http = logged_in(app, PASSWORD)
    assert http.post("/api/datasets", json={"name": "old"}).status_code == 201
    trash_id = http.delete("/api/datasets/old").get_json()["trash_id"]
    target = Target(http, ws, outside, OutsideTheWorkspace([tmp_path], tmp_path.parent, ws.root), trash_id)
    target.dataset_ready()
    return target


def known_values(target: Target) -> dict[str, list[str]]:
    return {
        "name": [DATASET, "missing", "tagpilot.js"],
        "image": ["a.png", "b.png", "missing.png"],
        "job_id": ["0123456789ab"],
        "entry_id": [target.trash_id, "missing"],
    }


def check_still_answers(target: Target) -> None:
    assert target.http.get("/healthz").status_code == 200
    assert target.http.get("/api/datasets").status_code == 200
    assert target.http.get("/api/trash").status_code == 200


@pytest.mark.parametrize("endpoint", sorted(TEMPLATES))
def test_fuzzed_bodies_never_crash_tagpilot(target, endpoint):
    """Each route that takes a JSON body, with a valid body of it mutated."""
    outside, known = target.outside, known_values(target)
    with_bodies = [r for r in routes(target.http.application, LEFT_OUT) if r.endpoint == endpoint]

    @given(route=st.sampled_from(with_bodies), data=st.data())
    def one_request(route: Route, data: st.DataObject) -> None:
        target.dataset_ready()
        url = build_url(route.rule, {name: data.draw(st.sampled_from(known[name])) for name in route.params})
        body = data.draw(st.sampled_from(TEMPLATES[endpoint]).flatmap(lambda t: mutated(t, outside)))
        reply = send(target.http, route, url, body)
        answer_ok(reply, f"{route.method} {url} {encode(body)[:300]}")
        assert target.watch.new() == []

    one_request()
    check_still_answers(target)


def test_fuzzed_path_parameters_never_crash_tagpilot(target):
    """Every route (pages included), with odd path parameters and any JSON body."""
    outside, known = target.outside, known_values(target)
    every_route = routes(target.http.application, LEFT_OUT)

    @given(route=st.sampled_from(every_route), data=st.data())
    def one_request(route: Route, data: st.DataObject) -> None:
        target.dataset_ready()
        params = {name: data.draw(path_params(outside, known[name])) for name in route.params}
        url = build_url(route.rule, params)
        body = data.draw(st.one_of(st.none(), json_values(outside)))
        reply = send(target.http, route, url, body)
        answer_ok(reply, f"{route.method} {url}")
        assert target.watch.new() == []

    one_request()
    check_still_answers(target)


def test_fuzzed_uploads_are_stored_in_the_dataset_or_refused_never_a_crash(target):
    outside, folder = target.outside, target.ws.drafts / DATASET

    @given(files=st.lists(st.tuples(upload_content(outside), file_names(outside)), min_size=1, max_size=3))
    def one_upload(files: list[tuple[bytes, str]]) -> None:
        target.dataset_ready()
        parts = [(io.BytesIO(content), name) for content, name in files]
        reply = target.http.post(
            f"/api/datasets/{DATASET}/upload", data={"files": parts}, content_type="multipart/form-data"
        )
        answer_ok(reply, f"upload of {[name for _, name in files]!r:.300}")
        if reply.status_code == 200:
            for item in reply.get_json()["accepted"]:
                stored = folder / item["stored_as"]
                assert stored.parent == folder and stored.is_file(), item
        after = target.http.get(f"/api/datasets/{DATASET}")  # whatever came in, the dataset still reads
        assert after.status_code == 200, after.get_data(as_text=True)[:300]
        assert target.watch.new() == []
        assert list(target.ws.tmp.glob("upload-*")) == []  # every spooled copy is removed

    one_upload()
    check_still_answers(target)
