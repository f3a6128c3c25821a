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
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from lorapilot.spec import DIALECTS, LoadedSpec, SpecError, SpecIssue, load_spec
from lorapilot.spec.model import check_run_name
from lorapilot.spool import Job, JobRecord, Spool
from lorapilot.web.bodies import RequestBody
from lorapilot.workspace import Workspace

PASTED = "(pasted config)"


class Request(RequestBody):
    """The body of a submit or validate request (JSON, or a form with an uploaded config file)."""

    not_an_object: ClassVar[str] = "send a JSON object (or a form with a config file)"

    config: str | None = None
    config_format: Literal["yaml", "toml"] | None = Field(None, alias="format")  # detected when missing
    dialect: str | None = None
    profile: str | None = None
    dataset: str | None = None
    name: str | None = None
    overrides: list[str] = Field(default_factory=list)
    priority: int = Field(0, ge=-1000, le=1000)  # the job envelope's range
    gpus: int | Literal["all"] = 1

    @field_validator("config", "dialect", "profile", "dataset", "name", mode="before")
    @classmethod
    def _text(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected text, found {value!r}")
        return value if info.field_name == "config" else value.strip()

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str | None) -> str | None:
        # It names the run's folder and LoRA file: never a path (`/tmp/x`, `../config/…`).
        return None if value is None else check_run_name(value)

    @field_validator("config_format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> str | None:
        if value in (None, ""):
            return None
        if value not in ("yaml", "toml"):
            raise ValueError("yaml or toml")
        return value

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, value: str | None) -> str | None:
        if value and value not in DIALECTS:
            raise ValueError(f"{value!r} is not one of {', '.join(DIALECTS)}")
        return value

    @field_validator("overrides", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> list[str]:
        value = value or []  # absent, empty text or an empty list
        if isinstance(value, str):  # the form's text area: one override a line
            value = [line.strip() for line in value.splitlines() if line.strip()]
        if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
            raise ValueError("a list of key=value strings, e.g. training.max_steps=50")
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> int:
        return _whole(value)

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: Any) -> int | str:
        if value == "all":
            return value
        gpus = _whole(value)
        if gpus < 1:
            raise ValueError("must be 1 or more, or 'all'")
        return gpus

    @model_validator(mode="after")
    def _config_or_profile(self) -> Request:
        if not self.config and not self.profile:
            raise ValueError("give a config (pasted or uploaded) or a profile and a dataset")
        return self


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
        # a fixed name inside the private folder: the request's name reaches load_spec as --name does
        path = folder / f"pasted.{suffix}"
        path.write_text(request.config, encoding="utf-8")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _detect_format(text: str) -> str:
    try:
        return "toml" if tomllib.loads(text) else "yaml"
    except tomllib.TOMLDecodeError:
        return "yaml"
    except ValueError:  # TOML syntax whose value cannot be built (a 5,000-digit integer): the reader says so
        return "toml"


def _rename(issue: SpecIssue, path: str) -> SpecIssue:
    return replace(issue, file=PASTED) if issue.file and issue.file.endswith(Path(path).name) else issue


def _whole(value: Any) -> int:
    """A whole number as JSON or a form field sends it (`3`, `"3"`)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e309 is infinity
        raise ValueError(f"expected a whole number, found {value!r}") from None
