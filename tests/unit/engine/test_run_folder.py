"""The run folder tells step saves, epoch saves and the final LoRA apart by name alone."""

from __future__ import annotations

import os

from lorapilot.engine.run_folder import RunFolder, SaveKind


def touch(path, written_ns: int):
    path.write_bytes(b"lora")
    os.utime(path, ns=(written_ns, written_ns))
    return path


def test_step_and_epoch_saves_are_named_as_kohya_names_them(tmp_path):
    folder = RunFolder(tmp_path, "my_lora")
    assert folder.periodic_lora(100).name == "my_lora-step00000100.safetensors"
    assert folder.periodic_lora(3, SaveKind.EPOCH).name == "my_lora-000003.safetensors"


def test_each_kind_lists_only_its_own_saves_in_order(tmp_path):
    folder = RunFolder(tmp_path, "my_lora")
    for name in (
        "my_lora.safetensors",
        "my_lora-step00000020.safetensors",
        "my_lora-step00000010.safetensors",
        "my_lora-000002.safetensors",
        "my_lora-000001.safetensors",
        "my_lora-00001.safetensors",  # five digits: not kohya's epoch name
        "other-000001.safetensors",
        "my_lora-000001.json",
    ):
        (tmp_path / name).write_bytes(b"x")
    assert [(n, p.name) for n, p in folder.periodic_loras()] == [
        (10, "my_lora-step00000010.safetensors"),
        (20, "my_lora-step00000020.safetensors"),
    ]
    assert [(n, p.name) for n, p in folder.periodic_loras(SaveKind.EPOCH)] == [
        (1, "my_lora-000001.safetensors"),
        (2, "my_lora-000002.safetensors"),
    ]


def test_the_newest_save_is_the_last_written_whatever_its_kind(tmp_path):
    """A killed job's fallback LoRA (the daemon) and the bridge's publishing order rely on this."""
    folder = RunFolder(tmp_path, "run")
    touch(tmp_path / "run-step00000006.safetensors", 1_000)
    touch(tmp_path / "run-000002.safetensors", 2_000)
    touch(tmp_path / "run-step00000004.safetensors", 500)
    touch(tmp_path / "run.safetensors", 9_000)
    assert [p.name for p in folder.saves()] == [
        "run-step00000004.safetensors",
        "run-step00000006.safetensors",
        "run-000002.safetensors",
    ]
