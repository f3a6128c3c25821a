"""Shared fixtures. Tests never touch the network: the hub is switched offline before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # read once when huggingface_hub is imported, so set it first
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Fuzz budget (tests marked `fuzz`): the same examples on every CI run, so a red run reproduces;
# `scripts/fuzz --examples N` runs the same properties with fresh random examples and a larger N.
FUZZ_EXAMPLES = int(os.environ.get("LORAPILOT_FUZZ_EXAMPLES", "200"))
settings.register_profile(
    "ci",
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=FUZZ_EXAMPLES,
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("LORAPILOT_FUZZ_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny model family, built once per test session; family name → pipeline folder.

    SD1.5, SD2 and SDXL also have their single-file checkpoint beside the folder
    (see `lorapilot.testing.tiny_models.single_file_path`).
    """
    # imported here: diffusers takes seconds to import, and most test runs never need it
    from lorapilot.testing.tiny_models import ensure_tiny_models  # noqa: PLC0415

    return ensure_tiny_models(tmp_path_factory.mktemp("tiny-models"), single_file=True)


@pytest.fixture
def page(request: pytest.FixtureRequest):
    """A headless Chromium page; screenshots (`page.shot(step)`) go to test-artifacts/<test folder>/."""
    from lorapilot.testing.browser import CHROMIUM, MISSING, chromium_page  # noqa: PLC0415

    if CHROMIUM is None:
        pytest.skip(MISSING)
    with chromium_page(REPO / "test-artifacts" / request.path.parent.name) as page:
        yield page
