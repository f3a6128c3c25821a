"""The appliance under the repo's own supervisord.conf on a throwaway workspace, one per test
(lorapilot.testing.supervised_appliance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lorapilot.testing.supervised_appliance import SupervisedAppliance

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def appliance(tmp_path: Path, tiny_models: dict[str, Path]) -> Iterator[SupervisedAppliance]:
    app = SupervisedAppliance.start(tmp_path, REPO / "supervisord.conf", tiny_models["sd15"])
    try:
        yield app
    finally:
        app.stop()
