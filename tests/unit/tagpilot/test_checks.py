"""Report checks: resolution per family, aspect ratio, perceptual duplicates, repeats suggestion."""

from __future__ import annotations

from lorapilot.tagpilot.checks import duplicate_groups, image_findings
from lorapilot.tagpilot.export import suggest_repeats
from lorapilot.tagpilot.store import ImageRecord


def _record(name, width, height, phash="0" * 16):
    return ImageRecord(name, name, width, height, "PNG", 1, "x", phash)


def test_low_resolution_depends_on_the_family_and_extreme_aspect_is_flagged():
    square = _record("a.png", 768, 768)
    assert image_findings(square, "sd15") == []
    assert [f.check for f in image_findings(square, "sdxl")] == ["low_resolution"]
    assert [f.check for f in image_findings(_record("b.png", 4000, 1000), "sdxl")] == ["extreme_aspect"]


def test_duplicates_group_by_hamming_distance():
    records = [
        _record("a.png", 1, 1, "ffff000000000000"),
        _record("b.png", 1, 1, "ffff000000000003"),  # 2 bits from a
        _record("c.png", 1, 1, "0000ffffffff0000"),
        _record("d.png", 1, 1, "ffff00000000000f"),  # 2 bits from b, 4 from a
    ]
    assert duplicate_groups(records) == [["a.png", "b.png", "d.png"]]
    assert duplicate_groups(records, distance=1) == []


def test_repeats_suggestion_shrinks_as_datasets_grow():
    assert [suggest_repeats(n) for n in (0, 1, 10, 15, 20, 100, 500)] == [1, 40, 15, 10, 8, 2, 1]
