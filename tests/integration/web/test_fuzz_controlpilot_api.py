"""Fuzzing ControlPilot's routes through the real app (issue 16): every route, with mutated bodies,
odd path parameters and query strings, answers without crashing (no 500), writes nothing outside
the workspace, and the app still answers afterwards. Training never starts (a submit only queues a
job file), ComfyUI is a closed port, supervisord is not configured and the hub is offline."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from lorapilot.controlpilot import create_app
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
    odd_strings,
    path_params,
    routes,
    send,
    upload_content,
)
from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

pytestmark = pytest.mark.fuzz

PASSWORD = "controlpilot-fuzz-password"
CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "configs"
FORM_ROUTES = ["/api/jobs", "/api/jobs/validate", "/api/models/register", "/api/models/unregister"]
NEXT_URLS = ["/", "/models", "//evil.example", "/\t/evil.example", "https://evil.example"]
PASTED = ("aitoolkit_flux.yaml", "kohya_args.toml")
SESSION_ENDPOINTS = {"auth.logout", "auth.login"}  # fuzzed apart: they would end the fuzzer's session


@dataclass
class Target:
    http: FlaskClient
    ws: Workspace
    outside: Path
    watch: OutsideTheWorkspace
    job_id: str


@pytest.fixture
def target(tmp_path, monkeypatch) -> Target:
    """ControlPilot on a workspace with a dataset, a queued job and a model to register; $TMPDIR is
    a private empty folder, and `outside` a folder beside the workspace that must stay empty."""
    system_tmp, outside = tmp_path / "system-tmp", tmp_path / "outside"
    system_tmp.mkdir()
    outside.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    monkeypatch.setenv("LORAPILOT_COMFY_URL", "http://127.0.0.1:9")  # nothing listens there
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    write_demo_images(ws.images / "2_demo", 2)
    (ws.root / "imports").mkdir()
    (ws.root / "imports" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    app = create_app({"LORAPILOT_PASSWORD": PASSWORD, "TESTING": True}, workspace=ws)
    http = logged_in(app, PASSWORD)
    job = http.post("/api/jobs", json={"profile": "quick_test", "dataset": "demo", "name": "queued"})
    assert job.status_code == 201, job.get_data(as_text=True)
    watch = OutsideTheWorkspace([tmp_path], tmp_path.parent, ws.root)
    return Target(http, ws, outside, watch, job.get_json()["id"])


def templates() -> dict[str, list[dict]]:
    """A valid body of each route that takes one (pasted configs from the fixtures too)."""
    pasted = [(CONFIGS / name).read_text(encoding="utf-8") for name in PASTED]
    submit = [
        {"profile": "quick_test", "dataset": "demo", "name": "fuzzed", "overrides": ["training.max_steps=3"]},
        {"profile": "quick_test", "dataset": "demo", "priority": 3, "gpus": "all"},
        *({"config": text, "name": "pasted"} for text in pasted),
    ]
    return {
        "jobs.submit_job": submit,
        "jobs.validate_job": submit,
        "models.register_model": [{"path": "/workspace/imports/model.safetensors"}, {"path": "imports"}],
        "models.unregister_model": [{"path": "/workspace/imports/model.safetensors"}],
        "models.start_download": [
            {"repo_id": "owner/name", "filename": "model.safetensors", "name": "m", "kind": "checkpoints"},
            {"repo_id": "https://huggingface.co/owner/pipeline"},
        ],
        "comfy_settings.change": [
            {"url": "", "strengths": [0, 0.5, 1.0], "test_after_publish": False},
            {"bases": {"sd15": {"ckpt_name": "base.safetensors"}}, "strengths": "0, 1"},
        ],
        "comfy_actions.test_render": [
            {"strengths": [0, 1], "with": [{"name": "x", "weight": 0.5}], "seed": 1, "size": 512}
        ],
    }


def known_values(target: Target) -> dict[str, list[str]]:
    return {
        "ref": [target.job_id, "queued", "missing"],
        "name": ["trainpilot", "controlpilot.js", "step00000002_0.png"],
        "action": ["start", "stop", "restart"],
        "filename": ["contact_sheet.png"],
    }


def check_still_answers(target: Target) -> None:
    assert target.http.get("/healthz").status_code == 200
    assert target.http.get("/api/jobs").status_code == 200
    assert target.http.get("/api/models").status_code == 200


@pytest.mark.parametrize("endpoint", sorted(templates()))
def test_fuzzed_bodies_never_crash_controlpilot(target, endpoint):
    """Each route that takes a JSON body, with a valid body of it mutated."""
    outside, bodies, known = target.outside, templates()[endpoint], known_values(target)
    with_bodies = [r for r in routes(target.http.application, SESSION_ENDPOINTS) if r.endpoint == endpoint]

    @given(route=st.sampled_from(with_bodies), data=st.data())
    def one_request(route: Route, data: st.DataObject) -> None:
        url = build_url(route.rule, {name: data.draw(st.sampled_from(known[name])) for name in route.params})
        body = data.draw(st.sampled_from(bodies).flatmap(lambda t: mutated(t, outside)))
        reply = send(target.http, route, url, body, {})
        answer_ok(reply, f"{route.method} {url} {encode(body)[:300]}")
        assert target.watch.new() == []

    one_request()
    check_still_answers(target)


def test_fuzzed_path_parameters_and_queries_never_crash_controlpilot(target):
    """Every route (pages included), with odd path parameters, query strings and any JSON body."""
    outside, known = target.outside, known_values(target)
    every_route = routes(target.http.application, SESSION_ENDPOINTS)
    queries = st.dictionaries(
        st.sampled_from(["lines", "bytes", "repeats", "next", "a"]),
        st.sampled_from([s for s in odd_strings(outside) if "\ud800" not in s]),
        max_size=2,
    )

    @given(route=st.sampled_from(every_route), data=st.data(), query=queries)
    def one_request(route: Route, data: st.DataObject, query: dict[str, str]) -> None:
        params = {name: data.draw(path_params(outside, known.get(name, ["x"]))) for name in route.params}
        url = build_url(route.rule, params)
        body = data.draw(st.one_of(st.none(), json_values(outside)), label="body")
        reply = send(target.http, route, url, body, query)
        answer_ok(reply, f"{route.method} {url}")
        assert target.watch.new() == []

    one_request()
    check_still_answers(target)


def test_forged_csrf_tokens_bearer_tokens_and_cookies_are_refused_without_crashing(target):
    app = target.http.application
    latin1 = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=60)
    header = st.one_of(latin1, st.sampled_from(["", "Bearer", "Bearer ", "Bearer \xe9\xff", "bearer x" * 99]))

    @given(
        csrf=header,
        authorization=header,
        cookie=st.one_of(st.none(), latin1),
        url=st.sampled_from(
            ["/api/jobs/validate", "/api/models/register", "/logout", "/metrics", "/api/jobs"]
        ),
    )
    def one_forgery(csrf: str, authorization: str, cookie: str | None, url: str) -> None:
        client = app.test_client()
        if cookie is not None:
            client.set_cookie("lorapilot_session", cookie)
        headers = {"X-CSRF-Token": csrf, "Authorization": authorization}
        for method in ("GET", "POST"):
            reply = client.open(url, method=method, headers=headers, data={"csrf_token": csrf})
            answer_ok(reply, f"{method} {url}")
            assert reply.status_code in (302, 401, 403, 404, 405), (method, url, reply.status_code)
        shared = target.http.post(url, headers=headers, data={"csrf_token": csrf})
        answer_ok(shared, f"POST {url} with the fuzzer's session")
        assert shared.status_code in (403, 405), (url, shared.status_code)

    one_forgery()
    assert target.watch.new() == []
    check_still_answers(target)


def test_fuzzed_forms_and_uploaded_configs_never_crash_controlpilot(target):
    """The submit and register routes also take a plain form, submit an uploaded config file."""
    outside = target.outside
    values = st.sampled_from([s for s in odd_strings(outside) if "\ud800" not in s])
    fields = st.dictionaries(
        st.sampled_from(["profile", "dataset", "name", "overrides", "priority", "gpus", "config", "path"]),
        st.one_of(values, st.sampled_from(["quick_test", "demo", "1", "all"])),
        max_size=5,
    )
    content = st.one_of(upload_content(outside), st.sampled_from([p.read_bytes() for p in CONFIGS.iterdir()]))

    @given(
        url=st.sampled_from(FORM_ROUTES),
        form=fields,
        upload=st.one_of(st.none(), st.tuples(content, file_names(outside))),
    )
    def one_form(url: str, form: dict[str, str], upload: tuple[bytes, str] | None) -> None:
        data: dict[str, object] = dict(form)
        if upload is not None:
            data["file"] = (io.BytesIO(upload[0]), upload[1])
        reply = target.http.post(url, data=data, content_type="multipart/form-data")
        answer_ok(reply, f"POST {url} {sorted(form)}")
        assert target.watch.new() == []

    one_form()
    check_still_answers(target)


def test_fuzzed_logins_never_crash_and_never_redirect_off_the_site(target):
    app = target.http.application
    outside = target.outside

    @given(
        body=st.one_of(mutated({"password": PASSWORD}, outside), json_values(outside)),
        next_url=st.one_of(st.none(), path_params(outside, NEXT_URLS)),
        address=st.ip_addresses(v=4).map(str),
    )
    def one_login(body: object, next_url: str | None, address: str) -> None:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address  # each guesser its own address: none is throttled away
        page = client.get("/login")
        token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        query = {"next": next_url} if next_url is not None else {}
        reply = client.post(
            "/login",
            query_string=query,
            data=encode(body),
            content_type="application/json",
            headers={"X-CSRF-Token": token},
        )
        answer_ok(reply, f"POST /login {body!r:.200}")
        assert reply.status_code in (200, 302, 400, 401, 429), reply.status_code
        location = reply.headers.get("Location", "/")
        assert location.startswith("/") and not location.startswith("//")

    one_login()
    assert target.watch.new() == []
    check_still_answers(target)
