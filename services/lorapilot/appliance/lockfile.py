"""The hashed lock files in requirements/ and the manifest they were resolved from.

scripts/lock resolves pyproject.toml on PyPI and writes each lock with a first line
`# manifest-sha256: <digest>`: the digest of pyproject's dependency lists and the torch pin, so a
lock that no longer matches the manifest is caught offline (tests/unit/test_lock_file.py).
`python -m lorapilot.appliance.lockfile digest [REPO]` prints the current digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

LOCK_DIR = "requirements"
TORCH_PIN = f"{LOCK_DIR}/torch.txt"  # the one torch version: bootstrap (CPU) and Dockerfile (CUDA)
RUNTIME_LOCK = f"{LOCK_DIR}/runtime.txt"  # the image: pyproject's dependencies
DEV_LOCK = f"{LOCK_DIR}/dev.txt"  # scripts/bootstrap: the dependencies plus the `dev` extra
DATA_ONLY_LOCK = f"{LOCK_DIR}/data-only.txt"  # installed with --no-deps (clip-anytorch's merges file)
DIGEST_PREFIX = "# manifest-sha256: "


@dataclass(frozen=True)
class Pin:
    name: str  # normalised (PEP 503)
    version: str
    hashes: tuple[str, ...]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def manifest_digest(repo: Path) -> str:
    """sha256 of what a lock is resolved from: requires-python, the dependencies, the dev extra and
    the torch pin (the rest of pyproject.toml, e.g. lint settings, does not touch the lock)."""
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    inputs = {
        "requires-python": project["requires-python"],
        "dependencies": project["dependencies"],
        "dev": project["optional-dependencies"]["dev"],
        "torch": requirement_lines(repo / TORCH_PIN),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    """The digest scripts/lock wrote into the lock's first line, or None."""
    first = lock.read_text(encoding="utf-8").partition("\n")[0]
    return first.removeprefix(DIGEST_PREFIX).strip() if first.startswith(DIGEST_PREFIX) else None


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a pip requirements file: continuation lines joined, comments dropped."""
    joined = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = (re.sub(r"(^|\s)#.*$", "", line) for line in joined.splitlines())
    return [" ".join(line.split()) for line in lines if line.strip()]


def read_pins(lock: Path) -> dict[str, Pin]:
    """Each `name==version --hash=…` of a lock; ValueError for a line that is not such a pin."""
    pins = {}
    for line in requirement_lines(lock):
        spec, *options = line.split(" --hash=")
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", spec.strip())
        if match is None:
            raise ValueError(f"{lock}: not an exact pin: {line!r}")
        name = normalise(match.group(1))
        pins[name] = Pin(name, match.group(2), tuple(option.strip() for option in options))
    return pins


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "digest" or len(args) > 2:
        print("usage: python -m lorapilot.appliance.lockfile digest [REPO]", file=sys.stderr)
        return 2
    print(manifest_digest(Path(args[1] if len(args) == 2 else ".")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
