"""A web service that cannot start because of a user's mistake says so in one line and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("program", ["tagpilot", "controlpilot"])
def test_a_too_short_password_ends_the_service_with_its_message_and_no_traceback(program, tmp_path):
    env = {**os.environ, "LORAPILOT_PASSWORD": "short", "LORAPILOT_WORKSPACE": str(tmp_path / "ws")}
    done = subprocess.run(
        [str(BIN / program), "--port", "0", "--workspace", str(tmp_path / "ws")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{program}: LORAPILOT_PASSWORD is shorter than" in done.stderr
    assert "Traceback" not in done.stderr
