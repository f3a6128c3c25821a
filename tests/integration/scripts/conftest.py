"""The repository's scripts, run as a user runs them: a subprocess from the checkout's root."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def run_script() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
        return subprocess.run(
            [sys.executable, str(REPO / "scripts" / name), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO,
            env=env,
        )

    return run
