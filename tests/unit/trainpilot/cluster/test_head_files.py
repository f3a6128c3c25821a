"""The head's side of the cluster transfer: what a node may read and write in the head's workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorapilot.trainpilot.cluster.transfer import HeadFiles, TransferError


@pytest.fixture
def head(tmp_path: Path) -> HeadFiles:
    (tmp_path / "datasets/images/1_demo").mkdir(parents=True)
    (tmp_path / "datasets/images/1_demo/a.png").write_bytes(b"png")
    (tmp_path / "datasets/images/1_demo/a.txt").write_text("a caption")
    (tmp_path / "datasets/images/1_demo/.hidden").write_text("x")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/password").write_text("secret")
    return HeadFiles(str(tmp_path))


def test_a_node_lists_and_reads_the_inputs_a_spec_names_but_not_hidden_files(head: HeadFiles) -> None:
    listed = {f.rel: f.size for f in head.listing(["datasets/images/1_demo"])}
    assert listed == {"datasets/images/1_demo/a.png": 3, "datasets/images/1_demo/a.txt": 9}
    assert head.read("datasets/images/1_demo/a.txt", 2, 100) == b"caption"


@pytest.mark.parametrize("rel", ["../etc/passwd", "/etc/passwd", "datasets/../../x", "", "config/password"])
def test_paths_outside_the_workspace_and_its_secrets_are_refused(head: HeadFiles, rel: str) -> None:
    with pytest.raises(TransferError):
        head.read(rel, 0, 10)
    with pytest.raises(TransferError):
        head.listing([rel])


@pytest.mark.parametrize("rel", ["config/password", "datasets/images/1_demo/a.txt", "jobs/done/x.yaml"])
def test_a_node_writes_and_removes_only_under_outputs(head: HeadFiles, rel: str) -> None:
    with pytest.raises(TransferError):
        head.write(rel, 0, b"overwritten", True)
    with pytest.raises(TransferError):
        head.remove(rel)
    assert (head.root / "config/password").read_text() == "secret"


def test_an_output_file_appears_whole_with_its_last_chunk(head: HeadFiles) -> None:
    target = head.root / "outputs/run/run.safetensors"
    head.write("outputs/run/run.safetensors", 0, b"first-", False)
    assert not target.exists()  # a reader never sees half a LoRA
    head.write("outputs/run/run.safetensors", 6, b"second", True)
    assert target.read_bytes() == b"first-second"
    assert [p.name for p in target.parent.iterdir()] == ["run.safetensors"]


def test_a_state_sent_file_by_file_replaces_the_old_one_in_one_step(head: HeadFiles) -> None:
    state = head.root / "outputs/run/state"
    state.mkdir(parents=True)
    (state / "trainer.pt").write_bytes(b"old")
    (state / "lora-unet.safetensors").write_bytes(b"old")
    head.write("outputs/run/state.tmp/trainer.pt", 0, b"new", True)
    assert (state / "trainer.pt").read_bytes() == b"old"  # still the old state until the swap
    head.swap_state("outputs/run/state")
    assert sorted(p.name for p in state.iterdir()) == ["trainer.pt"]
    assert (state / "trainer.pt").read_bytes() == b"new"
    assert sorted(p.name for p in state.parent.iterdir()) == ["state"]
