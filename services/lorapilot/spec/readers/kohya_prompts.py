"""sd-scripts sample-prompt files: `.txt` with per-line options, `.toml` and `.json`.

A `.txt` line is `prompt --n negative --w 768 --h 512 --s 28 --l 7 --d 42`, as sd-scripts'
`line_to_prompt_dict` reads it; a `.toml` file has `[prompt]` defaults and `[[prompt.subset]]`
entries, a `.json` file a list of lines or mappings, both with the keys that function produces.
Each prompt becomes a SamplePrompt; options LoRA Pilot does not render are named in a notice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lorapilot.spec import document
from lorapilot.spec.draft import Draft
from lorapilot.spec.issues import SpecError

# sd-scripts' prompt-dict keys → SamplePrompt fields. `scale` is CFG; FLUX's `guidance_scale` (--g)
# is the guidance its distilled model is given, which is what a FLUX render's guidance_scale means.
_FIELDS = {
    "prompt": "text",
    "negative_prompt": "negative_prompt",
    "width": "width",
    "height": "height",
    "sample_steps": "steps",
    "seed": "seed",
    "scale": "guidance_scale",
    "guidance_scale": "guidance_scale",
}
# Per-line options: flag → (prompt-dict key, parser). `--s` is clamped to 1..1000 as sd-scripts does.
_OPTIONS = {
    "n": ("negative_prompt", str),
    "w": ("width", int),
    "h": ("height", int),
    "d": ("seed", int),
    "s": ("sample_steps", lambda v: max(1, min(1000, int(v)))),
    "l": ("scale", float),
    "g": ("guidance_scale", float),
}
# Options sd-scripts parses that LoRA Pilot's renders have no equivalent for.
_NOT_RENDERED = {
    "ss": "samples use the model's own scheduler",
    "fs": "no per-prompt flow shift",
    "cn": "no ControlNet images",
    "i": "no init images",
    "ctr": "no CFG truncation",
    "rcfg": "no CFG renormalisation",
    "f": "no frame counts",
}


def read_prompt_file(draft: Draft, value: Any, source: str) -> None:
    """Put the prompts of the file `value` names into `sample.prompts`."""
    path = draft.referenced_file(value, source)
    if path is None:
        return
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".toml", ".json"):
        draft.issue(source, "must be a .txt, .toml or .json prompt file", value)
        return
    try:
        entries = _entries(path, suffix)
    except SpecError as exc:
        draft.issues.extend(exc.issues)
        return
    except (ValueError, KeyError, TypeError) as exc:
        draft.issue(source, f"not a prompt file sd-scripts reads: {exc}", value)
        return
    except RecursionError:  # a .json file nested deeper than the parser goes
        draft.issue(source, "not a prompt file sd-scripts reads: nested too deeply", value)
        return
    prompts = []
    for index, entry in enumerate(entries):
        where = f"{source} ({path.name}, prompt {index + 1})"
        raw = parse_line(entry) if isinstance(entry, str) else entry
        if not isinstance(raw, Mapping):
            draft.issue(where, "must be a prompt line or a mapping with a prompt", entry)
            continue
        prompts.append(_sample_prompt(draft, raw, where))
    draft.put(("sample", "prompts"), prompts, source)


def parse_line(line: str) -> dict[str, Any]:
    """One `.txt` line as sd-scripts' `line_to_prompt_dict` reads it; options it would not use are
    kept under `--flag` so that they can be named."""
    text, *options = line.split(" --")
    parsed: dict[str, Any] = {"prompt": text.strip()}
    for option in options:
        flag, _, arg = option.strip().partition(" ")
        key, convert = _OPTIONS.get(flag.lower(), (None, str))
        try:
            parsed[key or f"--{flag}"] = convert(arg.strip())
        except ValueError:
            parsed[f"--{flag}"] = arg
    return parsed


def _entries(path: Path, suffix: str) -> list[Any]:
    if suffix == ".txt":
        lines = document.read_text(path).splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if suffix == ".json":
        data = json.loads(document.read_text(path))
        if not isinstance(data, list):
            raise ValueError("a .json prompt file holds a list of prompts")
        return data
    data = document.load(path)
    base = dict(data["prompt"])
    subsets = base.pop("subset")
    return [{**base, **subset} for subset in subsets]


def _sample_prompt(draft: Draft, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    prompt: dict[str, Any] = {}
    for key, value in raw.items():
        field = _FIELDS.get(key)
        if field is None:
            draft.notice(where, f"{key}: ignored ({_why_not(key)})")
        elif key == "scale" and "guidance_scale" in raw:
            if value != raw["guidance_scale"]:
                draft.notice(where, f"--l {value}: ignored; the guidance scale (--g) is rendered")
        elif not (key == "negative_prompt" and isinstance(value, str) and not value.strip()):
            prompt[field] = value
    return prompt


def _why_not(key: str) -> str:
    flag = key.removeprefix("--")
    if flag in _OPTIONS:
        return "its value is not a number; sd-scripts skips it too"
    return _NOT_RENDERED.get(flag, "not an option LoRA Pilot renders")
