"""Turning a request into a validated TrainSpec and a queued job, the way `trainpilot submit` does.

A request names a dataset and a profile, or carries a pasted config in any dialect (YAML or TOML),
plus optional run name, `key=value` overrides, priority and GPU count. Validation is `load_spec`,
so the messages are those of `trainpilot validate`.
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lorapilot.controlpilot.errors import ControlPilotError
from lorapilot.spec import DIALECTS, LoadedSpec, SpecError, SpecIssue, load_spec
from lorapilot.spool import Job, JobRecord, Spool
from lorapilot.workspace import Workspace

PASTED = "(pasted config)"


@dataclass
class Request:
    """The fields of a submit or validate request, checked for type."""

    config: str | None = None
    config_format: str | None = None  # yaml | toml; detected when missing
    dialect: str | None = None
    profile: str | None = None
    dataset: str | None = None
    name: str | None = None
    overrides: list[str] = field(default_factory=list)
    priority: int = 0
    gpus: int | str = 1

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Request:
        unknown = sorted(set(body) - set(cls.__dataclass_fields__) - {"format"})
        if unknown:
            raise ControlPilotError(f"unknown field(s) {', '.join(unknown)}; accepted: {_fields()}")
        text = {k: _text(body, k) for k in ("config", "dialect", "profile", "dataset", "name")}
        overrides = body.get("overrides") or []
        if isinstance(overrides, str):
            overrides = [line.strip() for line in overrides.splitlines() if line.strip()]
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ControlPilotError("overrides: a list of key=value strings, e.g. training.max_steps=50")
        request = cls(**text, overrides=overrides, config_format=_text(body, "format"))
        request.priority = _int(body.get("priority", 0), "priority")
        gpus = body.get("gpus", 1)
        request.gpus = gpus if gpus == "all" else _int(gpus, "gpus")
        if request.dialect and request.dialect not in DIALECTS:
            raise ControlPilotError(f"dialect: {request.dialect!r} is not one of {', '.join(DIALECTS)}")
        if request.config_format not in (None, "yaml", "toml"):
            raise ControlPilotError("format: yaml or toml")
        if not request.config and not request.profile:
            raise ControlPilotError("give a config (pasted or uploaded) or a profile and a dataset")
        return request


def validate(workspace: Workspace, request: Request) -> LoadedSpec:
    """The normalised spec, or SpecError naming every problem (with the pasted file named as such)."""
    with _pasted_file(workspace, request) as path:
        try:
            return load_spec(
                path,
                dialect=request.dialect,
                profile=request.profile,
                dataset=request.dataset,
                name=request.name,
                overrides=request.overrides,
                workspace=workspace,
            )
        except SpecError as exc:
            if path is None:
                raise
            raise SpecError([_rename(issue, str(path)) for issue in exc.issues]) from None


def submit(spool: Spool, request: Request) -> tuple[JobRecord, LoadedSpec]:
    """Validate and queue, as `trainpilot submit` does (same envelope, same name checks)."""
    loaded = validate(spool.ws, request)
    spec = loaded.spec
    job = Job.for_spec(
        spec,
        priority=request.priority,
        gpus=request.gpus,
        profile=request.profile,
        dataset=request.dataset,
        overrides=request.overrides,
    )
    return spool.submit(job, Path(spec.output.folder)), loaded


@contextmanager
def _pasted_file(workspace: Workspace, request: Request) -> Iterator[Path | None]:
    """The pasted config as a file in the workspace's temp folder (the readers read files)."""
    if not request.config:
        yield None
        return
    suffix = request.config_format or _detect_format(request.config)
    folder = Path(tempfile.mkdtemp(prefix="pasted-", dir=workspace.tmp))
    try:
        # the file name is the run name when neither the config nor the request names one
        path = folder / f"{request.name or 'pasted'}.{suffix}"
        path.write_text(request.config, encoding="utf-8")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _detect_format(text: str) -> str:
    try:
        return "toml" if tomllib.loads(text) else "yaml"
    except tomllib.TOMLDecodeError:
        return "yaml"


def _rename(issue: SpecIssue, path: str) -> SpecIssue:
    return replace(issue, file=PASTED) if issue.file and issue.file.endswith(Path(path).name) else issue


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ControlPilotError(f"{key}: expected text, found {value!r}")
    return value.strip() if key != "config" else value


def _int(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlPilotError(f"{key}: expected a whole number, found {value!r}") from None


def _fields() -> str:
    return ", ".join(["format", *Request.__dataclass_fields__])
