"""Upload intake: files and `.zip` archives in, upright 8-bit images (and their captions) stored.

Nothing from the client is trusted: the type comes from the bytes (Pillow opening only the
formats stored_image lists, so no Ghostscript/EPS or other exotic decoder ever runs), names are cleaned,
sizes are capped, and an archive is checked whole before anything in it is unpacked. Each file
ends up accepted (with notes on what was converted) or rejected with a reason.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from PIL import ExifTags, Image

from lorapilot.data.images import ImageError, load_image
from lorapilot.tagpilot.names import clean_stem, unsafe_archive_path
from lorapilot.tagpilot.store import Dataset
from lorapilot.tagpilot.stored_image import (
    SNIFF_FORMATS,
    ImageRecord,
    RejectedFileError,
    image_record,
    save_thumbnail,
    sha256_of,
    sniff_image,
)

logger = logging.getLogger(__name__)
_KEEP_AS_IS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_CAPTION_SUFFIXES = (".txt", ".caption")
_COPY_CHUNK = 1 << 20
MB = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    max_image_bytes: int = 100 * MB
    max_zip_total_bytes: int = 4096 * MB
    max_zip_ratio: float = 100.0  # uncompressed / compressed, for members over 1 MiB
    max_zip_members: int = 10_000
    max_caption_bytes: int = 64 * 1024


@dataclass
class UploadResult:
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)

    def reject(self, name: str, reason: str) -> None:
        self.rejected.append({"name": name, "reason": reason})


@dataclass
class _Caption:
    name: str
    text: str


class Intake:
    """Receives one upload request into one dataset (call with the dataset's lock held)."""

    def __init__(self, dataset: Dataset, limits: UploadLimits, tmp_dir: Path) -> None:
        self.dataset = dataset
        self.limits = limits
        self.tmp_dir = tmp_dir
        self.result = UploadResult()
        self._hashes = {record.source_sha256: record.name for record in dataset.records()}
        self._stored_by_key: dict[tuple[str, str], str] = {}
        self._captions: dict[tuple[str, str], _Caption] = {}

    def receive(self, files: list[tuple[str, IO[bytes]]]) -> UploadResult:
        """(client file name, stream) pairs → stored images and captions, or reasons."""
        for name, stream in files:
            with self._spooled(stream, name, self.limits.max_image_bytes, is_top_level=True) as tmp:
                if tmp is None:
                    continue
                if _is_zip(tmp):
                    self._receive_zip(name, tmp)
                else:
                    self._receive_one(name, name, tmp, group="")
        self._attach_captions()
        self.dataset.log_rejections(self.result.rejected)
        return self.result

    # -- one file ---------------------------------------------------------------------------------
    def _receive_one(self, label: str, name: str, tmp: Path, group: str) -> None:
        """`label` names the file in the reply (archive/member); `name` gives its stem and suffix."""
        path = PurePosixPath(name.replace("\\", "/"))
        stem_key = (group, path.stem.lower())
        if path.suffix.lower() in _CAPTION_SUFFIXES:
            self._receive_caption(label, tmp, stem_key)
            return
        try:
            record = self._store_image(path.name, tmp)
        except RejectedFileError as exc:
            self.result.reject(label, str(exc))
            return
        except Exception:  # one odd file must not fail the other 99 in the request
            logger.exception("unexpected error storing upload %s", label)
            self.result.reject(label, "could not be processed (see the TagPilot log)")
            return
        self._stored_by_key[stem_key] = record.name
        self.result.accepted.append({"name": label, "stored_as": record.name, "notes": record.notes})

    def _receive_caption(self, name: str, tmp: Path, key: tuple[str, str]) -> None:
        data = tmp.read_bytes()
        if len(data) > self.limits.max_caption_bytes:
            self.result.reject(name, f"caption file is larger than {self.limits.max_caption_bytes} bytes")
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.result.reject(name, "caption file is not UTF-8 text")
            return
        self._captions[key] = _Caption(name, text)

    def _attach_captions(self) -> None:
        for key, caption in self._captions.items():
            stored = self._stored_by_key.get(key)
            if stored is None:
                self.result.reject(caption.name, "caption file with no accepted image of the same name")
                continue
            self.dataset.set_caption(stored, caption.text)
            for item in self.result.accepted:
                if item["stored_as"] == stored:
                    item["caption"] = True

    def _store_image(self, name: str, tmp: Path) -> ImageRecord:
        size = tmp.stat().st_size
        if size == 0:
            raise RejectedFileError("empty file (0 bytes)")
        fmt = sniff_image(tmp)
        digest = sha256_of(tmp)
        if digest in self._hashes:
            raise RejectedFileError(f"identical to {self._hashes[digest]} already in the dataset")
        try:
            upright = load_image(tmp)
        except ImageError as exc:
            raise RejectedFileError(exc.problem) from exc
        notes = conversion_notes(tmp, fmt)
        stem = _unique_stem(clean_stem(name), self.dataset.used_stems())
        if fmt in _KEEP_AS_IS and not notes:
            target = self.dataset.folder / f"{stem}{_KEEP_AS_IS[fmt]}"
            shutil.copyfile(tmp, target)
        elif fmt in ("JPEG", "MPO"):
            target = self.dataset.folder / f"{stem}.jpg"
            upright.save(target, "JPEG", quality=95, subsampling=0)
        else:
            target = self.dataset.folder / f"{stem}.png"
            upright.save(target, "PNG")
        record = image_record(target, upright, original=name, fmt=fmt, digest=digest, notes=notes)
        save_thumbnail(upright, self.dataset.thumbs / f"{stem}.jpg")
        self.dataset.add_record(record)
        self._hashes[digest] = record.name
        return record

    # -- archives ---------------------------------------------------------------------------------
    def _receive_zip(self, name: str, tmp: Path) -> None:
        try:
            with zipfile.ZipFile(tmp) as archive:
                members = archive.infolist()
                problem = self._zip_problem(members)
                if problem:
                    self.result.reject(name, problem)
                    return
                for info in members:
                    try:
                        self._receive_member(name, archive, info)
                    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # e.g. a CRC error in one entry
                        self.result.reject(f"{name}/{info.filename}", f"cannot be unpacked ({exc})")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            self.result.reject(name, f"not a readable zip archive ({exc})")

    def _zip_problem(self, members: list[zipfile.ZipInfo]) -> str | None:
        """Why the whole archive is refused before anything is unpacked (zip bombs), or None."""
        limits = self.limits
        if len(members) > limits.max_zip_members:
            return f"archive has {len(members)} entries, more than the limit of {limits.max_zip_members}"
        total = sum(info.file_size for info in members)
        if total > limits.max_zip_total_bytes:
            return (
                f"archive unpacks to {total / MB:.0f} MB, more than the limit of "
                f"{limits.max_zip_total_bytes / MB:.0f} MB (zip bomb?)"
            )
        for info in members:
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > MB and ratio > limits.max_zip_ratio:
                return (
                    f"{info.filename} expands {ratio:.0f}× ({info.file_size / MB:.0f} MB), more than "
                    f"the {limits.max_zip_ratio:.0f}× images can reach: looks like a zip bomb"
                )
        return None

    def _receive_member(self, archive_name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        label = f"{archive_name}/{info.filename}"
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if info.is_dir() or path.parts[:1] == ("__MACOSX",) or path.name.startswith("."):
            return  # folders and macOS/dot metadata are not user content
        reason = unsafe_archive_path(info.filename)
        if reason is None and (info.external_attr >> 16) & 0o170000 == 0o120000:
            reason = "symbolic link inside the archive"
        if reason is None and info.flag_bits & 0x1:
            reason = "encrypted entry"
        if reason is None and info.file_size > self.limits.max_image_bytes:
            reason = f"larger than the {self.limits.max_image_bytes / MB:.0f} MB per-file limit"
        if reason:
            self.result.reject(label, reason)
            return
        with archive.open(info) as stream, self._spooled(stream, label, self.limits.max_image_bytes) as tmp:
            if tmp is None:
                return
            if _is_zip(tmp):
                self.result.reject(label, "archive inside an archive; unpack it and upload its files")
                return
            self._receive_one(label, str(path), tmp, group=f"{archive_name}/{path.parent}")

    # -- temp files -------------------------------------------------------------------------------
    def _spooled(
        self, stream: IO[bytes], name: str, limit: int, *, is_top_level: bool = False
    ) -> _SpooledCopy:
        return _SpooledCopy(self, stream, name, limit, is_top_level)


class _SpooledCopy:
    """Copies a stream into a temp file in the workspace, at most `limit` bytes (archives: more)."""

    def __init__(self, intake: Intake, stream: IO[bytes], name: str, limit: int, top: bool) -> None:
        self.intake, self.stream, self.name, self.limit, self.top = intake, stream, name, limit, top
        self.path: Path | None = None

    def __enter__(self) -> Path | None:
        handle = tempfile.NamedTemporaryFile(dir=self.intake.tmp_dir, prefix="upload-", delete=False)
        self.path = Path(handle.name)
        try:
            return self._copy(handle)
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise

    def _copy(self, handle: IO[bytes]) -> Path | None:
        with handle:
            head = self.stream.read(8)
            handle.write(head)
            # a top-level archive is bounded by the request size limit, not the per-image one
            limit = None if self.top and head[:4] in _ZIP_MAGIC else self.limit
            copied = len(head)
            while chunk := self.stream.read(_COPY_CHUNK):
                copied += len(chunk)
                if limit is not None and copied > limit:
                    self.intake.result.reject(
                        self.name, f"larger than the {limit / MB:.0f} MB per-file limit"
                    )
                    return None
                handle.write(chunk)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def conversion_notes(path: Path, fmt: str) -> list[str]:
    """What storing the image upright as 8-bit RGB changes, one note each; empty: kept as uploaded."""
    notes = []
    with Image.open(path, formats=SNIFF_FORMATS) as image:
        mode = image.mode
        deep_colour = _sixteen_bit_colour(image)
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        frames = getattr(image, "n_frames", 1)
        has_alpha = image.has_transparency_data
    if orientation not in (1, None):
        notes.append(f"EXIF orientation {orientation} applied: stored upright")
    if has_alpha:
        notes.append("transparency flattened onto white")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode.startswith("I") or mode == "F":
        notes.append(f"{mode} high bit depth scaled to 8-bit")
    elif deep_colour:
        notes.append(f"16-bit {mode} high bit depth scaled to 8-bit")
    elif mode in ("P", "PA"):
        notes.append("palette image converted to RGB")
    elif mode not in ("RGB", "L", "RGBA", "LA"):
        notes.append(f"{mode} converted to RGB")
    if fmt not in _KEEP_AS_IS and fmt != "MPO":
        notes.append(f"{fmt} stored as PNG" + (" (first frame)" if frames > 1 else ""))
    return notes


def _sixteen_bit_colour(image: Image.Image) -> bool:
    """A 16-bit-per-channel colour file (PNG `RGB;16B`, TIFF `RGB;16L`): Pillow decodes it to 8-bit
    RGB(A), so its mode looks like an 8-bit file's and only the raw mode of its data tells."""
    for tile in image.tile:
        args = tile[3] if isinstance(tile[3], tuple) else (tile[3],)
        if args and isinstance(args[0], str) and ";16" in args[0] and not image.mode.startswith("I"):
            return True
    return False


def _unique_stem(stem: str, used: set[str]) -> str:
    """Stems stay unique, so two images never share one caption file (a.png and a.jpg → a.txt)."""
    candidate, k = stem, 1
    while candidate.lower() in used:
        k += 1
        candidate = f"{stem}_{k}"
    used.add(candidate.lower())
    return candidate


def _is_zip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) in _ZIP_MAGIC


def iter_upload_files(files: Any) -> Iterator[tuple[str, IO[bytes]]]:
    """(client file name, stream) for every file part of a Flask request."""
    for storage in files.getlist("files"):
        yield storage.filename or "upload", storage.stream
