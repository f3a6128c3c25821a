"""Fuzzing the job-file reader (issue 16): whatever lands in the spool's folders, every reader gets a
record (a job, or the problem with it), and the daemon moves what cannot be read to failed/ with the
reason, without an exception and without writing outside the workspace.

Files are mutations of a real envelope written by `Spool.submit` and of the guide's plain configs:
values of the wrong type, dates, odd keys, raw text and bytes spliced in, odd file names.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from lorapilot.spec import load_spec
from lorapilot.spool import Job, JobState, NameTakenError, Spool
from lorapilot.spool.job import JOB_SUFFIXES
from lorapilot.spool.views import all_views, job_view
from lorapilot.testing.datasets import write_demo_images
from lorapilot.trainpilot.daemon import Daemon
from lorapilot.trainpilot.job_text import describe, table
from lorapilot.workspace import Workspace

pytestmark = pytest.mark.fuzz

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PLAIN_YAML = sorted((FIXTURES / "seed").glob("*.yaml"))[:6] + sorted((FIXTURES / "configs").glob("*.yaml"))
PLAIN_TOML = sorted((FIXTURES / "configs").glob("*.toml"))
SNIPPETS = [
    "created: 2024-02-30\n",
    "submitted_at: 2024-02-30\n",
    "submitted_at: 0001-01-01T00:00:00+14:00\n",
    "priority: " + "9" * 5000 + "\n",
    "x = " + "7" * 4400 + "\n",
    "!!timestamp ''",
    "name: !!binary aGVsbG8=\n",
    "\x00",
    "a: &a [x, x]\nb: [*a, *a, *a]\n",
    "spec: {output: my_lora}\n",
    "spec: {output: {folder: /tmp/x}}\n",
    "gpus: all\n",
    "trainpilot_job: 1\n",
    "trainpilot_job: 2\n",
    ": : :\n",
    "\t- [\n",
]
STATES = [JobState.QUEUED] * 4 + [JobState.RUNNING, JobState.DONE, JobState.FAILED, JobState.CANCELLED]
ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=-12)), timezone(timedelta(hours=14))])

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=8)
    | st.datetimes(timezones=ZONES)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
name_characters = st.characters(exclude_categories=("Cs",), exclude_characters="/\x00")
stems = st.text(name_characters, min_size=1, max_size=30)
file_names = (
    st.sampled_from(["job.yaml", "my job.yaml", "ünïcødé.yml", "x.toml", "a..yaml", "-x.yaml", "x.YAML"])
    | st.builds(lambda n: "x" * n + ".yml", st.integers(240, 251))
    | st.builds(str.__add__, stems, st.sampled_from([*JOB_SUFFIXES, ".YML", ".json", ""]))
).filter(lambda name: name not in (".", "..") and len(name.encode()) <= 255)


@pytest.fixture(scope="module")
def envelope(tmp_path_factory) -> dict[str, Any]:
    """A real job file as `trainpilot submit` writes it, parsed."""
    ws = Workspace.from_env(tmp_path_factory.mktemp("envelope") / "ws").ensure()
    write_demo_images(ws.images / "2_demo", 2)
    spec = load_spec(profile="quick_test", dataset="demo", name="fuzzed", workspace=ws).spec
    record = Spool(ws).submit(Job.for_spec(spec, priority=3, profile="quick_test", dataset="demo"))
    return yaml.safe_load(record.path.read_text(encoding="utf-8"))


def paths_in(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key or index path in a parsed document, the document itself first."""
    found = [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found += paths_in(child, (*prefix, key))
    return found


@st.composite
def mutated_document(draw: st.DrawFn, base: Any) -> Any:
    """`base` with a few values replaced, removed or added."""
    doc = json.loads(json.dumps(base, default=str))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths_in(doc)))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if not path or action == "add":
            node = parent[path[-1]] if path else doc
            if isinstance(node, dict):
                node[draw(st.text(max_size=12))] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(values)
    return doc


@st.composite
def contents(draw: st.DrawFn, envelope: dict[str, Any]) -> bytes:
    """A job file's bytes: a mutated envelope or plain config, maybe with text or bytes spliced in."""
    kind = draw(st.sampled_from(["envelope", "envelope", "plain", "toml", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "toml":
        text = draw(st.sampled_from(PLAIN_TOML)).read_text(encoding="utf-8")
    else:
        plain = draw(st.sampled_from(PLAIN_YAML))
        base = envelope if kind == "envelope" else yaml.safe_load(plain.read_text(encoding="utf-8"))
        doc = draw(mutated_document(base))
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=draw(st.booleans()))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(SNIPPETS) | st.text(max_size=10)) + text[at:]
    data = text.encode()
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    return data


def is_job_file(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in JOB_SUFFIXES


@given(data=st.data())
def test_any_file_in_the_spool_is_read_and_an_unreadable_one_is_failed(envelope, tmp_path, monkeypatch, data):
    private_tmp = tmp_path / "tmpdir"
    private_tmp.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # so that tempfile reads $TMPDIR again
    files = data.draw(
        st.lists(
            st.tuples(st.sampled_from(STATES), file_names, contents(envelope)),
            min_size=1,
            max_size=3,
            unique_by=lambda f: f[1],
        ),
        label="files",
    )
    example = Path(tempfile.mkdtemp(dir=tmp_path, prefix="example-"))
    try:
        check_spool(Workspace.from_env(example / "ws").ensure(), files)
        assert [p.name for p in example.iterdir()] == ["ws"]
        assert not list(private_tmp.iterdir())
    finally:
        shutil.rmtree(example)


def check_spool(ws: Workspace, files: list[tuple[JobState, str, bytes]]) -> None:
    spool = Spool(ws)
    for state, name, data in files:
        (spool.folder(state) / name).write_bytes(data)

    records = spool.records()
    assert len(records) == sum(is_job_file(name) for _, name, _ in files)
    for record in records:
        assert (record.job is None) == isinstance(record.problem, str), record
        assert record.job is not None or record.problem.strip()
    spool.queued()
    views = all_views(spool)
    json.dumps(views)
    table(views)
    for record in records:
        describe(job_view(spool, spool.find(record.id)))
    with contextlib.suppress(NameTakenError):  # a fuzzed file may have taken the name
        spool.submit(Job(name="submitted-after", profile="quick_test"))

    unreadable = [r for r in records if r.problem and r.state in (JobState.QUEUED, JobState.RUNNING)]
    failed = Daemon(ws).fail_unreadable()
    assert len(failed) == len(unreadable)
    for record in failed:
        assert record.state is JobState.FAILED and record.path.parent == spool.folder(JobState.FAILED)
        assert record.path.with_suffix(".error").read_text(encoding="utf-8").startswith("invalid job:")
    after = spool.records([JobState.QUEUED, JobState.RUNNING])
    assert not [r for r in after if r.problem]
