"""Idle stop's RunPod action against a local HTTP server standing in for RunPod's GraphQL API
(RUNPOD_API_BASE_URL points the `runpod` client at it): the request carries the pod id, the key
and `podStop` or `podTerminate`; RunPod's refusals come back as errors that never hold the key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lorapilot.appliance.idle_settings import IdleSettings
from lorapilot.appliance.stop_action import StopActionError, run_action

POD = {"RUNPOD_POD_ID": "p0d1d2x3", "RUNPOD_API_KEY": "rpa_SECRETKEY"}


@dataclass
class FakeRunPod:
    requests: list[dict] = field(default_factory=list)
    answer: tuple[int, dict] = (200, {"data": {"podStop": {"id": "p0d1d2x3", "desiredStatus": "EXITED"}}})


@pytest.fixture
def runpod_api(monkeypatch) -> Iterator[FakeRunPod]:
    fake = FakeRunPod()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            status, answer = fake.answer
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("RUNPOD_API_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_stop_sends_pod_stop_for_this_pod_with_its_key(runpod_api):
    action = IdleSettings(mode="idle", on_runpod="stop").action(POD)
    run_action(action, POD)
    (sent,) = runpod_api.requests
    assert sent["path"] == "/graphql"
    assert sent["headers"]["Authorization"] == "Bearer rpa_SECRETKEY"
    query = " ".join(sent["body"]["query"].split())
    assert 'podStop(input: { podId: "p0d1d2x3" })' in query
    assert "podTerminate" not in query


def test_remove_sends_pod_terminate(runpod_api):
    runpod_api.answer = (200, {"data": {"podTerminate": None}})
    run_action(IdleSettings(mode="idle", on_runpod="remove").action(POD), POD)
    query = " ".join(runpod_api.requests[0]["body"]["query"].split())
    assert 'podTerminate(input: { podId: "p0d1d2x3" })' in query
    assert "podStop" not in query


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((401, {"errors": [{"message": "unauthorized"}]}), "RunPod refused the API key in RUNPOD_API_KEY"),
        ((200, {"errors": [{"message": "no pod"}]}), "RunPod did not stop pod p0d1d2x3: no pod"),
        ((500, {"oops": 1}), "RunPod's API did not answer the stop of pod p0d1d2x3"),
    ],
)
def test_refusals_say_what_went_wrong_without_the_key(runpod_api, answer, message):
    runpod_api.answer = answer
    with pytest.raises(StopActionError, match=message) as refused:
        run_action(IdleSettings(mode="idle").action(POD), POD)
    assert "SECRETKEY" not in str(refused.value)


def test_a_pod_id_that_could_change_the_query_is_refused_before_any_request(runpod_api):
    hostile = {**POD, "RUNPOD_POD_ID": 'x" }) { id } mutation { podTerminate(input: { podId: "y'}
    with pytest.raises(StopActionError, match="is not a RunPod pod id"):
        run_action(IdleSettings(mode="idle").action(hostile), hostile)
    assert runpod_api.requests == []
