"""The hashed locks in requirements/ agree with pyproject.toml, and drive the bootstrap.

A lock that disagrees with the manifest installs a program nobody declared: this fails until
`scripts/lock` is rerun. Checked offline: the manifest digest scripts/lock recorded, each declared
dependency's pin against its specifier, a hash on every pin, and (from the installed packages'
metadata) that every pin is in the dependency tree and every package of the tree is pinned.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from lorapilot.appliance.lockfile import (
    DATA_ONLY_LOCK,
    DEV_LOCK,
    RUNTIME_LOCK,
    TORCH_PIN,
    Pin,
    manifest_digest,
    normalise,
    read_pins,
    recorded_digest,
    requirement_lines,
)

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
DEV = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]
LOCKS = [RUNTIME_LOCK, DEV_LOCK, DATA_ONLY_LOCK]
RELOCK = "the lock is stale: run scripts/lock"
# What only PyPI's CUDA build of torch needs; the torch install brings it where it is wanted.
CUDA_TORCH_ONLY = re.compile(r"torch|triton|cuda-.*|nvidia-.*")


def pins(lock: str) -> dict[str, Pin]:
    return read_pins(REPO / lock)


def torch_version() -> str:
    (line,) = requirement_lines(REPO / TORCH_PIN)
    requirement = Requirement(line)
    (specifier,) = requirement.specifier
    assert requirement.name == "torch" and specifier.operator == "==", line
    return specifier.version


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_was_resolved_from_the_current_manifest(lock):
    assert recorded_digest(REPO / lock) == manifest_digest(REPO), f"{lock}: {RELOCK}"


def test_the_digest_changes_with_a_dependency_and_not_with_other_settings(tmp_path):
    (tmp_path / "requirements").mkdir()
    (tmp_path / TORCH_PIN).write_text((REPO / TORCH_PIN).read_text())
    manifest = (REPO / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(manifest.replace("line-length = 110", "line-length = 100"))
    assert manifest_digest(tmp_path) == manifest_digest(REPO)
    one_more = manifest.replace("dependencies = [", 'dependencies = [\n  "six",', 1)
    (tmp_path / "pyproject.toml").write_text(one_more)
    assert manifest_digest(tmp_path) != manifest_digest(REPO)
    (tmp_path / "pyproject.toml").write_text(manifest)
    (tmp_path / TORCH_PIN).write_text("torch==2.0.0\n")
    assert manifest_digest(tmp_path) != manifest_digest(REPO)


@pytest.mark.parametrize(("lock", "declared"), [(RUNTIME_LOCK, RUNTIME), (DEV_LOCK, RUNTIME + DEV)])
def test_every_declared_dependency_is_pinned_at_a_version_its_specifier_allows(lock, declared):
    pinned = pins(lock)
    for requirement in declared:
        pin = pinned.get(normalise(requirement.name))
        assert pin is not None, f"{lock} does not pin {requirement}: {RELOCK}"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{lock} pins {pin.name}=={pin.version}, outside {requirement}: {RELOCK}"
        )


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_exact_and_has_sha256_hashes(lock):
    pinned = pins(lock)
    assert pinned, f"{lock} pins nothing"
    for pin in pinned.values():
        Version(pin.version)  # an exact, valid version
        assert pin.hashes, f"{lock}: {pin.name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), (pin.name, pin.hashes)


def test_the_dev_lock_installs_the_runtime_lock_s_versions():
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    differing = {n: (p.version, dev[n].version) for n, p in runtime.items() if n not in dev or dev[n] != p}
    assert not differing, f"runtime vs dev: {differing}"


@pytest.mark.parametrize("lock", LOCKS)
def test_no_lock_pins_torch_or_what_only_its_cuda_build_needs(lock):
    declared = {normalise(r.name) for r in RUNTIME + DEV}
    cuda = {n for n in pins(lock) if CUDA_TORCH_ONLY.fullmatch(n) and n not in declared}
    assert not cuda, f"{lock} would install a CUDA torch stack on a CPU machine: {sorted(cuda)}"
    assert "nvidia-ml-py" in pins(RUNTIME_LOCK)  # NVML's pure-Python binding is declared, so locked


def test_the_bootstrap_installs_the_torch_pin_then_the_hashed_lock():
    version = torch_version()
    assert Version(version).local is None, "the pin names the release; the index picks CPU or CUDA"
    bootstrap = (REPO / "scripts" / "bootstrap").read_text()
    assert f"TORCH_PIN={TORCH_PIN}" in bootstrap and f"LOCK={DEV_LOCK}" in bootstrap
    assert f"DATA_ONLY_LOCK={DATA_ONLY_LOCK}" in bootstrap
    assert '--require-hashes -r "$LOCK"' in bootstrap and "--no-deps --no-build-isolation -e ." in bootstrap
    assert not re.search(r"torch==\d", bootstrap), "the torch version lives in requirements/torch.txt only"
    assert "setuptools" in pins(RUNTIME_LOCK), "--no-build-isolation builds with the locked setuptools"


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _tree(roots: list[Requirement]) -> dict[str, str]:
    """Every distribution the roots need, by the installed packages' metadata: name → version."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(r, "") for r in roots]
    while queue:
        requirement, extra = queue.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = normalise(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        dist = _installed(name)
        if dist is None:
            pytest.skip(f"{name} is not installed here: scripts/bootstrap installs the lock")
        found[name] = dist.version
        for text in dist.requires or []:
            queue.extend((Requirement(text), wanted) for wanted in ["", *sorted(requirement.extras)])
    return found


def test_the_dev_lock_is_exactly_the_installed_dependency_tree():
    """No pin that nothing needs, no needed package unpinned (torch and the CUDA stack excepted)."""
    pinned = pins(DEV_LOCK)
    installed = {n: dist.version for n in pinned if (dist := _installed(n)) is not None}
    differing = {n: (p.version, installed.get(n)) for n, p in pinned.items() if installed.get(n) != p.version}
    if differing:
        pytest.skip(f"this environment is not installed from the lock (pin, installed): {differing}")
    tree = {n: v for n, v in _tree(RUNTIME + DEV).items() if not CUDA_TORCH_ONLY.fullmatch(n) or n in pinned}
    assert sorted(set(pinned) - set(tree)) == [], "pinned but needed by nothing: " + RELOCK
    assert sorted(set(tree) - set(pinned)) == [], "needed but not pinned: " + RELOCK
