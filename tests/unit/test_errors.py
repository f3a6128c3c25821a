"""Every error a user can cause has one base, which each entry point shows as its message."""

from __future__ import annotations

import pytest

from lorapilot.comfy.errors import ComfyError, PublishError, SettingsError
from lorapilot.controlpilot.errors import ControlPilotError
from lorapilot.controlpilot.hub_download import DownloadError
from lorapilot.data.dataset import DatasetError
from lorapilot.data.images import ImageError
from lorapilot.engine.families.loading import ModelLoadError
from lorapilot.engine.lora_export import LoraExportError
from lorapilot.engine.optim import OptimizerError
from lorapilot.errors import LoraPilotError
from lorapilot.spec import SpecError, SpecIssue
from lorapilot.spool import InvalidJobError, SpoolError
from lorapilot.tagpilot.errors import TagPilotError
from lorapilot.testing.tiny_models import TinyModelError
from lorapilot.trainpilot.options import UsageError
from lorapilot.web.credentials import CredentialsError
from lorapilot.web.errors import RefusedRequestError
from lorapilot.workspace import PathEscapeError

USER_ERRORS = [
    ComfyError,
    PublishError,
    SettingsError,
    ControlPilotError,
    CredentialsError,
    DatasetError,
    DownloadError,
    ImageError,
    InvalidJobError,
    LoraExportError,
    ModelLoadError,
    OptimizerError,
    PathEscapeError,
    RefusedRequestError,
    SpecError,
    SpoolError,
    TagPilotError,
    TinyModelError,
    UsageError,
]


@pytest.mark.parametrize("error", USER_ERRORS, ids=lambda error: error.__name__)
def test_every_error_a_user_can_cause_is_a_lorapilot_error(error):
    assert issubclass(error, LoraPilotError)


def test_the_errors_keep_the_bases_callers_already_catch():
    assert issubclass(PathEscapeError, ValueError) and issubclass(OptimizerError, ValueError)
    assert issubclass(LoraExportError, ValueError) and issubclass(ModelLoadError, RuntimeError)
    assert issubclass(InvalidJobError, SpecError) and issubclass(InvalidJobError, SpoolError)
    assert issubclass(TagPilotError, RefusedRequestError)
    assert issubclass(ControlPilotError, RefusedRequestError)


def test_a_spec_errors_message_is_every_problem_it_found():
    error = SpecError([SpecIssue("training.learning_rate", "must be positive", -1)])
    assert str(error) == error.render() and "found:    -1" in str(error)
