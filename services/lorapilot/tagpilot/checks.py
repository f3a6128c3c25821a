"""The per-dataset report: what in a dataset will train badly, image by image.

Decode errors never get this far (intake refuses those files); these are the warnings that leave
the choice to the user: too few pixels for the chosen family, extreme aspect ratios, perceptual
duplicates, missing captions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import imagehash

from lorapilot import families
from lorapilot.tagpilot.store import DEFAULT_FAMILY, Dataset, ImageRecord

MAX_ASPECT = 3.0  # wider than 3:1 lands in a thin bucket or loses most of itself to cropping
DUPLICATE_DISTANCE = 6  # of 64 pHash bits; re-encodes and resizes differ by 0-4, different photos by 20+


@dataclass(frozen=True)
class Finding:
    image: str
    check: str
    message: str


def image_findings(record: ImageRecord, family: str) -> list[Finding]:
    # The side of the square the family is made for; fewer pixels than that get upscaled.
    known = families.find(family)
    side = known.native_resolution if known else DEFAULT_FAMILY.native_resolution
    w, h = record.width, record.height
    found = []
    if w * h < side * side:
        found.append(
            Finding(
                record.name,
                "low_resolution",
                f"{w}×{h} ({w * h / 1e6:.2f} MP) is below {family}'s {side}×{side} "
                f"({side * side / 1e6:.2f} MP); training will upscale it and learn the blur",
            )
        )
    aspect = max(w, h) / max(1, min(w, h))
    if aspect > MAX_ASPECT:
        found.append(
            Finding(
                record.name, "extreme_aspect", f"aspect ratio {aspect:.1f}:1 is beyond {MAX_ASPECT:.0f}:1"
            )
        )
    return found


def duplicate_groups(records: list[ImageRecord], distance: int = DUPLICATE_DISTANCE) -> list[list[str]]:
    """Groups of images whose perceptual hashes are within `distance` bits (single linkage)."""
    hashes = [(record.name, imagehash.hex_to_hash(record.phash)) for record in records if record.phash]
    parent = {name: name for name, _ in hashes}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for i, (name_a, hash_a) in enumerate(hashes):
        for name_b, hash_b in hashes[i + 1 :]:
            if hash_a - hash_b <= distance:
                parent[root(name_b)] = root(name_a)
    groups: dict[str, list[str]] = {}
    for name, _ in hashes:
        groups.setdefault(root(name), []).append(name)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def dataset_report(dataset: Dataset) -> dict[str, Any]:
    """Counts, per-image findings, duplicate groups, missing captions and recent refusals."""
    settings = dataset.settings()
    records = dataset.records()
    findings = [finding for record in records for finding in image_findings(record, settings["family"])]
    groups = duplicate_groups(records)
    for group in groups:
        for name in group:
            others = ", ".join(other for other in group if other != name)
            findings.append(Finding(name, "duplicate", f"looks the same as {others}"))
    uncaptioned = [record.name for record in records if not dataset.caption(record.name)]
    findings.extend(Finding(name, "no_caption", "has no caption") for name in uncaptioned)
    converted = {record.name: record.notes for record in records if record.notes}
    return {
        "dataset": dataset.name,
        "family": settings["family"],
        "images": len(records),
        "captioned": len(records) - len(uncaptioned),
        "findings": [finding.__dict__ for finding in sorted(findings, key=lambda f: (f.image, f.check))],
        "duplicates": groups,
        "converted": converted,
        "rejected": dataset.rejections(),
    }
