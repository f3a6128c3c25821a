"""Which images scripts/run's demo uses: the sample photographs, or the folder LORAPILOT_DEMO_DATASET
names, refused with a message that names the variable when it is missing, a file or has no images."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lorapilot.appliance.demo_dataset import (
    DEMO_DATASET_ENV,
    DemoDatasetError,
    choose_source,
    main,
    upload_batches,
)


def test_without_the_variable_the_demo_uses_the_twenty_sample_photographs(tmp_path):
    source = choose_source({DEMO_DATASET_ENV: "  "}, tmp_path)

    assert len(source.images) == 20 == len(source.files)
    assert {"astronaut.jpg", "chelsea.png", "coffee.jpg", "rocket.jpg"} <= {p.name for p in source.images}
    with Image.open(tmp_path / "astronaut.jpg") as photo:
        assert photo.size == (512, 512) and photo.mode == "RGB"
    assert source.description == "20 sample photographs (scikit-image's)"


def test_a_users_folder_gives_its_images_and_captions_from_subfolders_but_not_hidden_ones(tmp_path):
    folder = tmp_path / "mine"
    (folder / "5_dogs").mkdir(parents=True)
    (folder / ".cache").mkdir()
    for path in (folder / "a.PNG", folder / "5_dogs" / "b.webp", folder / ".cache" / "c.png"):
        Image.new("RGB", (8, 8)).save(path, format="PNG" if path.suffix.lower() == ".png" else "WEBP")
    (folder / "5_dogs" / "b.txt").write_text("a dog\n")
    (folder / "readme.md").write_text("not an image\n")

    source = choose_source({DEMO_DATASET_ENV: str(folder)}, tmp_path / "unused")

    assert [p.relative_to(folder).as_posix() for p in source.files] == [
        "5_dogs/b.txt",
        "5_dogs/b.webp",
        "a.PNG",
    ]
    assert [p.name for p in source.images] == ["b.webp", "a.PNG"]
    assert source.description == f"your folder {folder}"
    assert not (tmp_path / "unused").exists()  # no sample photographs written


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: None, "no such folder"),
        (lambda path: path.write_text("x"), "not a folder"),
        (lambda path: (path.mkdir(), (path / "a.txt").write_text("caption only")), "no images in it"),
    ],
    ids=["missing", "a file", "no images"],
)
def test_an_unusable_folder_is_refused_naming_the_variable(tmp_path, make, problem):
    path = tmp_path / "photos"
    make(path)

    with pytest.raises(DemoDatasetError) as refused:
        choose_source({DEMO_DATASET_ENV: str(path)}, tmp_path / "scratch")

    assert str(refused.value).startswith(f"{DEMO_DATASET_ENV}={path}: {problem}")
    assert str(refused.value).endswith("or unset it")


def test_the_check_command_exits_1_with_the_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DEMO_DATASET_ENV, str(tmp_path / "gone"))

    assert main(["--check"]) == 1

    assert capsys.readouterr().err == (
        f"[run] {DEMO_DATASET_ENV}={tmp_path / 'gone'}: no such folder; point it at a folder of images, "
        "or unset it\n"
    )


def test_the_check_command_counts_a_good_folders_images(tmp_path, monkeypatch, capsys):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    monkeypatch.setenv(DEMO_DATASET_ENV, str(tmp_path))

    assert main(["--check"]) == 0

    assert capsys.readouterr().out == f"[run] demo dataset: 2 images from {tmp_path}\n"


def test_upload_batches_keep_each_caption_with_its_image():
    files = [Path(f"d/{i:02d}{suffix}") for i in range(10) for suffix in (".png", ".txt")]

    batches = list(upload_batches(files, size=5))

    assert [len(batch) for batch in batches] == [4, 4, 4, 4, 4]
    assert [path for batch in batches for path in batch] == files
    assert all(len({path.stem for path in batch}) == len(batch) // 2 for batch in batches)
