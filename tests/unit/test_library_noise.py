"""Third-party start-up lines a user cannot act on are dropped where they are logged, and only those."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorapilot.library_noise import NOISE, DropMessages, quiet_library_noise

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_importing_the_training_engine_prints_nothing():
    """What the daemon's fork server and every job import first: bitsandbytes, transformers, diffusers."""
    env = os.environ | {"PYTHONPATH": str(REPO / "services"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "import lorapilot.engine.trainer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


@pytest.mark.parametrize(("logger_name", "fragment"), list(NOISE))
def test_only_the_listed_message_of_a_library_logger_is_dropped(logger_name, fragment, caplog):
    caplog.set_level(logging.WARNING)
    logger = logging.getLogger(logger_name)

    logger.warning("%s: and the rest of the library's message", fragment)
    logger.warning("something else this library says")

    assert [record.getMessage() for record in caplog.records] == ["something else this library says"]


def test_installing_twice_adds_no_second_filter():
    quiet_library_noise()
    quiet_library_noise()

    for logger_name, _ in NOISE:
        filters = logging.getLogger(logger_name).filters
        assert sum(isinstance(f, DropMessages) for f in filters) == 1
