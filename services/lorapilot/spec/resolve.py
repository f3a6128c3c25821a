"""From a merged draft to a validated TrainSpec: files on disk checked, names translated back.

This is where paths meet the workspace: dataset names and folders are found (kohya's
`<repeats>_<name>` convention included), models are told apart (folder, single file, hub id)
and their family is read off the files, and every path is proven to stay inside the workspace.
Validation errors are reported with the field name the user wrote.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from lorapilot import families, safetensors_header
from lorapilot.families import Family
from lorapilot.families.recognition import (
    BUNDLED_PREFIXES,
    components_in_file,
    probe_folder,
    probe_single_file,
)
from lorapilot.safetensors_header import HeaderError, read_header
from lorapilot.spec.draft import Draft, NativePath
from lorapilot.spec.issues import UNSET, SpecError, SpecIssue, did_you_mean, issue_of
from lorapilot.spec.model import TrainSpec
from lorapilot.tokenizer_files import EMBEDDINGS, missing_tokenizer
from lorapilot.workspace import PathEscapeError, Workspace, path_problem

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
_REPEATS_DIR = re.compile(r"^(\d+)_(.+)$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SINGLE_FILE = (".safetensors", ".sft")
_NUMBER = r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*{_NUMBER}\s*(?:-|to|–)\s*{_NUMBER}\s*$")
_RANGE_HINT = "this is a range; pick one value (the regular and high_quality profiles do)"
# ComfyUI's folders for the component files of split-file models (models/clip was renamed
# text_encoders; both are read), and the pattern names of that component match (the conventional
# names are each family's `split_files`).
_COMPONENT_DIRS = {"clip_l": ("clip", "text_encoders"), "clip_g": ("clip", "text_encoders")}
_COMPONENT_DIRS |= {"t5xxl": ("clip", "text_encoders"), "vae": ("vae",)}
_COMPONENT_NAME = {"clip_l": r"clip[_-]?l", "clip_g": r"clip[_-]?g", "t5xxl": r"t5", "vae": r"."}


class _Resolver:
    def __init__(self, draft: Draft, workspace: Workspace) -> None:
        self.draft = draft
        self.ws = workspace
        self.issues: list[SpecIssue] = list(draft.issues)
        self.index_map: dict[int, int] = {}  # final dataset index → index in the draft

    def source(self, loc: NativePath) -> str:
        """The user's name for native field `loc` (or its nearest known parent)."""
        found = self.lookup(loc, exact=False)
        if found is not None:
            return found
        return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")

    def lookup(self, loc: NativePath, *, exact: bool) -> str | None:
        """Where the user wrote `loc` (dataset fields may come from the shared defaults)."""

        def prefixes(path: NativePath, shortest: int) -> list[NativePath]:
            return [path] if exact else [path[:n] for n in range(len(path), shortest - 1, -1)]

        candidates: list[NativePath] = []
        if len(loc) >= 2 and loc[0] == "datasets" and isinstance(loc[1], int):
            candidates += prefixes(("datasets", self.index_map.get(loc[1], loc[1]), *loc[2:]), 2)
            candidates += prefixes(("dataset_defaults", *loc[2:]), 2)
        candidates += prefixes(loc, 1)
        return next((self.draft.origin[c] for c in candidates if c in self.draft.origin), None)

    def fail(self, loc: NativePath, message: str, value: Any = UNSET, **extra: Any) -> None:
        self.issues.append(SpecIssue(self.source(loc), message, value, file=self.draft.file, **extra))

    def path(self, loc: NativePath, raw: str, hint: str, base: Path | None = None) -> Path | None:
        """`raw` resolved in the workspace, or an issue at `loc` when it leaves it or cannot name a
        file at all (a NUL byte, a name too long: the OS would raise on the first check of it)."""
        try:
            problem = path_problem(raw)
            path = self.ws.resolve(raw, base=base) if problem is None else None
        except PathEscapeError as exc:
            problem = str(exc)
        problem = problem or path_problem(str(path))
        if problem is not None:
            self.fail(loc, problem, raw, hint=hint)
            return None
        return path

    # -- datasets -----------------------------------------------------------------------------
    def datasets(self, data: dict[str, Any]) -> None:
        defaults = data.pop("dataset_defaults", {}) or {}
        entries = data.get("datasets")
        if not isinstance(defaults, dict):
            self.fail(("dataset_defaults",), "must be a mapping of dataset fields", defaults)
            defaults = {}
        if entries and not isinstance(entries, list):
            self.fail(("datasets",), "must be a list of datasets", entries)
            return
        if not entries:
            self.fail(
                ("datasets",),
                "no dataset given",
                hint="name one with --dataset NAME, or list folders in the config",
            )
            return
        resolved: list[dict[str, Any]] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.fail(
                    ("datasets", index), "must be a mapping of dataset fields (folder, repeats...)", entry
                )
                continue
            merged = _deep_merge(defaults, entry)
            for item in self._expand(index, merged):
                self.index_map[len(resolved)] = index
                resolved.append(item)
        data["datasets"] = resolved

    def _expand(self, index: int, entry: dict[str, Any]) -> list[dict[str, Any]]:
        raw = entry.get("folder")
        if not isinstance(raw, str) or not raw.strip():
            self.fail(
                ("datasets", index, "folder"),
                "required: the folder of this dataset's images",
                raw if raw is not None else UNSET,
            )
            return [entry]
        folder = self._find_folder(index, raw.strip(), bool(entry.get("is_reg")))
        if folder is None:
            return [entry]
        by_name = self.draft.hints.get("repeats_from_folder_names", True)
        if _has_images(folder):
            return [_with_folder(entry, folder, by_name)]
        subsets = sorted(p for p in folder.iterdir() if p.is_dir() and _REPEATS_DIR.match(p.name))
        subsets = [p for p in subsets if _has_images(p)]
        if not subsets:
            self.fail(
                ("datasets", index, "folder"),
                "contains no images",
                raw,
                accepted=f"image files ({', '.join(sorted(IMAGE_SUFFIXES))}) or <repeats>_<name> folders",
            )
            return [entry]
        return [_with_folder(entry, sub, by_name) for sub in subsets]

    def _find_folder(self, index: int, raw: str, is_reg: bool) -> Path | None:
        loc: NativePath = ("datasets", index, "folder")
        hint = "datasets live under /workspace/datasets/"
        if "/" not in raw and "\\" not in raw:
            if problem := path_problem(raw):
                self.fail(loc, problem, raw, hint=hint)
                return None
            try:
                return self._find_by_name(loc, raw, is_reg)
            except PathEscapeError as exc:
                self.fail(loc, str(exc), raw, hint=hint)
                return None
        path = self.path(loc, raw, hint)
        if path is None:
            return None
        if not path.is_dir():
            self.fail(loc, "folder not found" if not path.exists() else "not a folder", raw)
            return None
        return path

    def _find_by_name(self, loc: NativePath, name: str, is_reg: bool) -> Path | None:
        """A bare name: `images/<name>` or `images/<repeats>_<name>` (`reg/` for reg sets)."""
        homes = [self.ws.reg, self.ws.images] if is_reg else [self.ws.images, self.ws.reg]
        for home in homes:
            exact = self.ws.resolve(name, base=home)
            if exact.is_dir():
                return exact
            named = (p for p in home.iterdir() if _REPEATS_DIR.match(p.name)) if home.is_dir() else ()
            matches = sorted(p for p in named if _REPEATS_DIR.match(p.name).group(2) == name and p.is_dir())
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                self.fail(
                    loc,
                    "several dataset folders have this name",
                    name,
                    accepted=", ".join(p.name for p in matches),
                )
                return None
        folders = [p.name for p in homes[0].iterdir() if p.is_dir()] if homes[0].is_dir() else []
        known = [m.group(2) if (m := _REPEATS_DIR.match(f)) else f for f in folders]
        self.fail(
            loc,
            f"no dataset of this name in {self.ws.display(homes[0])}",
            name,
            hint=did_you_mean(name, known) or "export it with TagPilot or copy it there",
        )
        return None

    # -- model --------------------------------------------------------------------------------
    def model(self, data: dict[str, Any]) -> None:
        model = data.get("model")
        if not isinstance(model, dict) or not model.get("path"):
            self.fail(
                ("model", "path"),
                "required: a diffusers folder, a .safetensors file or a hub id",
                hint="set model.path, pretrained_model_name_or_path or name_or_path, or use a profile",
            )
            return
        raw = model["path"]
        if not isinstance(raw, str):
            self.fail(("model", "path"), "must be a path or a hub id", raw)
            return
        if isinstance(model.get("assistant_lora"), str):
            self._locate_assistant_lora(model)
        probed = self._locate_model(model, raw)
        if isinstance(model.get("transformer"), str):
            probed = self._locate_transformer(model, probed) or probed
        if model.get("family") is None:
            hint: tuple[Family, str] | None = self.draft.hints.get("family_hint")
            guess: tuple[Family, str] | None = self.draft.hints.get("family_guess")
            family = probed or (hint[0] if hint else None) or (guess[0] if guess else None)
            if hint and probed and hint[0] is not probed:
                # a flag naming a whole line (is_flux: dev and schnell alike) is simply made precise
                said = "" if hint[0].aliases == probed.aliases else f", not {hint[0].label}"
                read = f"the model files are {probed.label}{said}; trained as {probed.label}"
                self.draft.notice(hint[1], read)
            if family is None:
                self.fail(
                    ("model", "family"),
                    "cannot tell the model family",
                    raw,
                    accepted=", ".join(families.ids()),
                    hint="set model.family (LoRA Pilot) or sdxl: true (kohya)",
                )
                return
            model["family"] = family.id
        named = families.find(model["family"])
        if probed and named and not named.trusts(probed):
            self.fail(
                ("model", "family"),
                f"the model at this path is {probed}",
                named.id,
                hint=f"set the family to {probed}, or point the path at a {named} model",
            )
        if isinstance(model.get("vae"), str):
            self._locate_vae(model)
        family = probed or named
        if model.get("source") == "single_file" and family and family.split_files:
            self._locate_components(model, family)

    def _locate_components(self, model: dict[str, Any], family: Family) -> None:
        """The component files of a single file that holds a transformer only (or not every part)."""
        path = Path(model["path"])
        bundled = components_in_file(path)
        for name in family.split_files:
            if name not in bundled:
                self._locate_component(model, name, family)
            elif name in EMBEDDINGS and not (path.with_suffix("") / "model_index.json").is_file():
                dirs = (path.with_suffix("") / name,)
                if why := missing_tokenizer(path, name, dirs, BUNDLED_PREFIXES[name]):
                    self.fail(("model", "path"), f"its {name}: {why}")

    def _check_tokenizer(self, name: str, path: Path, raw: Any = UNSET) -> None:
        """A text encoder file's tokenizer must be had offline (`tokenizer_files`)."""
        if name in EMBEDDINGS and (why := missing_tokenizer(path, name, (path.with_suffix(""),))):
            self.fail(("model", name), why, raw)

    def _locate_component(self, model: dict[str, Any], name: str, family: Family) -> None:
        """A split-file model's `name` file: as given, else found in ComfyUI's model folders."""
        loc: NativePath = ("model", name)
        raw = model.get(name)
        if isinstance(raw, str) and raw:
            if name == "vae":
                return  # checked by _locate_vae
            path = self._model_file(loc, raw)
            if path is None:
                return
            model[name] = str(path)
            if not path.is_file():
                self.fail(loc, "file not found", raw, hint=f"the {name} file of the {family.label} model")
            else:
                self._check_tokenizer(name, path, raw)
            return
        folders = [self.ws.models / d for d in _COMPONENT_DIRS[name]]
        files = sorted(p for d in folders if d.is_dir() for p in d.iterdir() if p.suffix in _SINGLE_FILE)
        chosen = _pick_component(name, family, files)
        where = " or ".join(self.ws.display(d) for d in folders)
        if isinstance(chosen, Path):
            model[name] = str(chosen)
            self._check_tokenizer(name, chosen)
            self.draft.notice(
                f"model.{name}", f"{family.label} split files: using {self.ws.display(chosen)} as {name}"
            )
            return
        transformer = Path(model["path"]).name
        if chosen:
            self.fail(
                loc,
                f"several {name} files in {where} could go with {transformer}",
                accepted=", ".join(p.name for p in chosen),
                hint=f"set model.{name} to the one to use",
            )
        else:
            names = family.split_files[name]
            self.fail(
                loc,
                f"{transformer} holds the {family.label} transformer only; its {name} file was not found "
                f"in {where}",
                hint=f"set model.{name}" + (f", or put the file there as {names[0]}" if names else ""),
            )

    def _locate_model(self, model: dict[str, Any], raw: str) -> Family | None:
        loc: NativePath = ("model", "path")
        local = self._local_candidate(raw)
        if local is None:
            if _HUB_ID.match(raw):
                model["source"] = "hub"
                return None
            self.fail(
                loc,
                "not found in the workspace, and not a hub id (owner/name)",
                raw,
                hint="models live under /workspace/models/",
            )
            return None
        path = self._model_file(loc, raw)
        if path is None:
            return None
        model["path"] = str(path)
        if not path.exists():
            self.fail(
                loc, "model not found", raw, hint="put the model under /workspace/models/ or name a hub id"
            )
            return None
        if path.is_dir():
            model["source"] = "folder"
            if not (path / "model_index.json").is_file():
                self.fail(loc, "not a diffusers model folder (no model_index.json)", raw)
            return probe_folder(path)
        if path.suffix.lower() in _SINGLE_FILE:
            model["source"] = "single_file"
            return probe_single_file(path)
        if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
            self.fail(
                loc,
                "pickled checkpoints can run code when loaded; refused",
                raw,
                hint="convert the checkpoint to .safetensors",
            )
        else:
            self.fail(loc, "not a model file", raw, accepted=".safetensors file or diffusers folder")
        return None

    def _local_candidate(self, raw: str) -> str | None:
        """`raw` if it names a local path (existing, absolute, relative or a model file), else None."""
        if raw.startswith(("/", ".", "~")) or raw.lower().endswith((*_SINGLE_FILE, ".ckpt")):
            return raw
        if path_problem(raw):
            return raw  # not a hub id either; refused as a path, naming the field
        try:
            path = self.ws.resolve(raw)
        except PathEscapeError:
            return raw
        return raw if path_problem(str(path)) or path.exists() else None

    def _model_file(
        self, loc: NativePath, raw: str, hint: str = "models live under /workspace/models/"
    ) -> Path | None:
        """`raw` resolved in the workspace, or an issue at `loc` when it leaves it."""
        return self.path(loc, raw, hint)

    def _locate_transformer(self, model: dict[str, Any], folder: Family | None) -> Family | None:
        """A transformer file that replaces the diffusers folder's own (diffusion-pipe's
        transformer_path); the family is the file's, if the folder is of the same line."""
        loc: NativePath = ("model", "transformer")
        raw = model["transformer"]
        if model.get("source") != "folder":
            self.fail(loc, "replaces the transformer of a diffusers folder; model.path is not one", raw)
            return None
        path = self._model_file(loc, raw)
        if path is None:
            return None
        model["transformer"] = str(path)
        if not path.is_file() or path.suffix.lower() not in _SINGLE_FILE:
            self.fail(loc, "not a .safetensors file" if path.exists() else "file not found", raw)
            return None
        found = probe_single_file(path)
        if found is None or found.denoiser != "transformer":
            self.fail(loc, "not the transformer file of a model family LoRA Pilot knows", raw)
            return None
        if folder is not None and not (
            found.trusts(folder) or folder.trusts(found) or found.aliases == folder.aliases
        ):
            self.fail(loc, f"a {found.label} transformer cannot replace the {folder.label} model's", raw)
            return None
        return found

    def _locate_assistant_lora(self, model: dict[str, Any]) -> None:
        loc: NativePath = ("model", "assistant_lora")
        raw = model["assistant_lora"]
        if self._local_candidate(raw) is None and _HUB_ID.match(raw):
            return
        path = self._model_file(loc, raw, hint="LoRAs live under /workspace/models/loras/")
        if path is None:
            return
        model["assistant_lora"] = str(path)
        problem = safetensors_header.lora_file_problem(path)
        if problem:
            self.fail(loc, problem, raw, hint="put the adapter's .safetensors under /workspace/models/loras/")

    def _locate_vae(self, model: dict[str, Any]) -> None:
        raw = model["vae"]
        if self._local_candidate(raw) is None and _HUB_ID.match(raw):
            return
        path = self._model_file(("model", "vae"), raw)
        if path is None:
            return
        if not path.exists():
            self.fail(("model", "vae"), "VAE not found", raw)
        model["vae"] = str(path)

    def text_encoder_default(self, data: dict[str, Any]) -> None:
        """A reader's default for training the text encoders (sd-scripts: on), applied once the
        family is known: where its encoders stay frozen, a notice says what the trainer would do."""
        hint: tuple[bool, str] | None = self.draft.hints.get("train_text_encoder_default")
        model, network = data.get("model"), data.setdefault("network", {})
        if hint is None or not isinstance(model, dict) or not isinstance(network, dict):
            return
        family = families.find(model.get("family"))
        if family is None or "train_text_encoder" in network:
            return
        if family.trains_text_encoders:
            network["train_text_encoder"] = hint[0]
            self.draft.origin[("network", "train_text_encoder")] = hint[1]
        elif hint[0]:
            self.draft.notice(
                hint[1].split(" (")[0],
                f"{family.label} LoRAs train the transformer only (text encoders frozen, outputs "
                "cached), where sd-scripts would train a text-encoder LoRA too",
            )

    # -- output -------------------------------------------------------------------------------
    def output(self, data: dict[str, Any]) -> None:
        output = data.setdefault("output", {})
        if not isinstance(output, dict):
            self.fail(("output",), "must be a mapping of keys (name, folder)", output)
            return
        name = output.get("name")
        if not name:
            self.fail(
                ("output", "name"),
                "required: the run's name",
                hint="pass --name NAME, or set output_name (kohya) / config.name (ai-toolkit)",
            )
            return
        raw = output.get("folder")
        if raw is None:
            output["folder"] = str(self.ws.outputs / str(name))
            return
        if not isinstance(raw, str):
            self.fail(("output", "folder"), "must be a folder path", raw)
            return
        folder = self.path(("output", "folder"), raw, "outputs live under /workspace/outputs/")
        if folder is not None:
            output["folder"] = str(folder)

    # -- validation ---------------------------------------------------------------------------
    def validate(self, data: dict[str, Any]) -> TrainSpec:
        try:
            spec = TrainSpec.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self.issues.append(self._translate(error))
            raise SpecError(self.issues) from None
        if self.issues:
            raise SpecError(self.issues)
        return spec

    def _translate(self, error: ErrorDetails) -> SpecIssue:
        """A pydantic error named the way the user wrote the field, with a hint where one helps."""
        loc: NativePath = tuple(error["loc"])
        issue = issue_of(error, self.source(loc), file=self.draft.file)
        if error["type"] == "extra_forbidden":
            return replace(issue, hint=did_you_mean(str(loc[-1]), _all_field_names()))
        if error["type"] == "value_error" and isinstance(error.get("input"), dict):
            found = (self.lookup((*loc, n), exact=True) for n in _field_names_in(issue.message))
            named = [where for where in found if where is not None]
            issue = replace(issue, field=", ".join(named) if named else issue.field)
        if isinstance(issue.value, str) and _RANGE.match(issue.value):
            issue = replace(issue, hint=_RANGE_HINT)
        return issue


def finalize(draft: Draft, workspace: Workspace) -> TrainSpec:
    """Validate a merged draft against the workspace; raises SpecError with every problem."""
    draft = draft.with_defaults()
    resolver = _Resolver(draft, workspace)
    data = copy.deepcopy(draft.data)
    data.setdefault("spec_version", 1)
    resolver.model(data)
    resolver.text_encoder_default(data)
    resolver.datasets(data)
    resolver.output(data)
    return resolver.validate(data)


def _pick_component(name: str, family: Family, files: list[Path]) -> Path | list[Path]:
    """The file for component `name` of `family` among `files`: its conventional name first, else the
    only one that fits and is not another family's conventional file; otherwise the candidates (none,
    or several to choose from)."""
    by_name = {p.name.lower(): p for p in files}
    ours = family.split_files[name]
    for conventional in ours:
        if conventional in by_name:
            return by_name[conventional]
    theirs = {n for f in families.all_families() for n in f.split_files.get(name, ())} - set(ours)
    pattern = re.compile(_COMPONENT_NAME[name])
    fitting = [
        p for p in files if pattern.search(p.stem.lower()) and p.name.lower() not in theirs and _fits(name, p)
    ]
    return fitting[0] if len(fitting) == 1 else fitting


def _fits(name: str, path: Path) -> bool:
    """Whether the file's tensors are the component's: the flow models' VAEs have 16 latent channels."""
    if name != "vae":
        return True
    try:
        shape = read_header(path).get("decoder.conv_in.weight", {}).get("shape", [])
    except (OSError, HeaderError):
        return False
    return len(shape) == 4 and shape[1] == 16


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.iterdir())


def _with_folder(entry: dict[str, Any], folder: Path, by_name: bool = True) -> dict[str, Any]:
    """The entry for one image folder; `<repeats>_<name>` supplies repeats and class tokens
    unless the dialect does not read folder names (`by_name`: ai-toolkit, diffusion-pipe)."""
    out = dict(entry, folder=str(folder))
    match = _REPEATS_DIR.match(folder.name) if by_name else None
    if match:
        out.setdefault("repeats", int(match.group(1)))
        out.setdefault("class_tokens", match.group(2).replace("_", " "))
    return out


def _field_names_in(message: str) -> list[str]:
    return re.findall(r"[a-z][a-z_]+[a-z]", message)


def _all_field_names() -> list[str]:
    names: set[str] = set()
    stack = [TrainSpec]
    while stack:
        model = stack.pop()
        for name, info in model.model_fields.items():
            names.add(name)
            for arg in (*getattr(info.annotation, "__args__", ()), info.annotation):
                if isinstance(arg, type) and hasattr(arg, "model_fields") and arg not in stack:
                    stack.append(arg)
    return sorted(names)
