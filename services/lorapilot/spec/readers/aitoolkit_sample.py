"""ai-toolkit's `sample:` section: the prompt list as its UI saves it (`samples`), the older
`prompts` strings with their inline `--n`/`--w`/… flags, `walk_seed`, and the baseline render.

ai-toolkit (`toolkit/config_modules.py` SampleConfig/SampleItem, `GenerateImageConfig`) gives each
prompt its own width, height, negative prompt, seed, guidance and steps, falling back to the
section's values; these become `sample.prompts` entries with the same options.
"""

from __future__ import annotations

from typing import Any

from lorapilot.spec.draft import Draft, Ignored, Rule, To, Unsupported, apply_table, join, section

PROMPTS = ("sample", "prompts")

# One prompt of `sample.samples` (ai-toolkit's SampleItem; the web UI's SampleItem type).
SAMPLE_ITEM: dict[str, Rule] = {
    "prompt": To(("text",)),
    "width": To(("width",)),
    "height": To(("height",)),
    "neg": To(("negative_prompt",)),
    "seed": To(("seed",)),
    "guidance_scale": To(("guidance_scale",)),
    "sample_steps": To(("steps",)),
    "network_multiplier": Unsupported("samples at another LoRA strength", defaults=(1,)),
    "num_frames": Unsupported("video samples", defaults=(1,)),
    "fps": Ignored("image samples only"),
    "ctrl_img": Unsupported("control images for samples"),
    "ctrl_idx": Ignored("no control images"),
    **{f"ctrl_img_{n}": Unsupported("control images for samples") for n in (1, 2, 3)},
}

# ai-toolkit's inline prompt flags (GenerateImageConfig._process_prompt_string): flag → option.
_FLAGS: dict[str, tuple[str, type]] = {
    "n": ("negative_prompt", str),
    "w": ("width", int),
    "h": ("height", int),
    "d": ("seed", int),
    "seed": ("seed", int),
    "l": ("guidance_scale", float),
    "cfg": ("guidance_scale", float),
    "s": ("steps", int),
    "steps": ("steps", int),
}
_IGNORED_FLAGS = ("p2", "n2", "gr", "a", "ref", "ev", "extra_values", "fps", "ctrl_img", "ctrl_idx")
_MULTIPLIER_FLAGS = ("m", "network_multiplier")
_FRAME_FLAGS = ("frames", "num_frames")


def legacy_prompts(draft: Draft, value: Any, source: str) -> None:
    """`prompts: [text, …]`; ai-toolkit turns them into samples unless `samples` is given."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        draft.issue(source, "must be a list of prompts", value)
        return
    draft.hints["aitk_prompts"] = ([{"text": text} for text in value], source)


def samples(draft: Draft, value: Any, source: str) -> None:
    """`samples: [{prompt, width, height, neg, seed, …}, …]` as the web UI writes them."""
    if not isinstance(value, list):
        draft.issue(source, "must be a list of {prompt: …} entries", value)
        return
    items: list[dict[str, Any]] = []
    for i, raw in enumerate(value):
        mapping = section(draft, raw, join(source, i))
        if mapping is None:
            continue
        scratch = Draft(file=draft.file)
        apply_table(scratch, mapping, SAMPLE_ITEM, join(source, i))
        draft.issues.extend(scratch.issues)
        draft.notices.extend(scratch.notices)
        if isinstance(scratch.data.get("text"), str):
            items.append(scratch.data)
    draft.hints["aitk_samples"] = (items, source)


def walk_seed(draft: Draft, value: Any, source: str) -> None:
    """true: prompt i renders with seed + i (`sample.prompts[i].seed`)"""
    if value:
        draft.hints["aitk_walk_seed"] = source


def finish(draft: Draft, *, full_job: bool) -> None:
    """The prompt list, seeds and (for a whole ai-toolkit job) its sampling defaults."""
    found = draft.hints.pop("aitk_samples", None) or draft.hints.pop("aitk_prompts", None)
    draft.hints.pop("aitk_prompts", None)
    walk = draft.hints.pop("aitk_walk_seed", None)
    if found is None:
        return
    items, source = found
    if full_job:
        _sample_defaults(draft, bool(items))
    base_seed = draft.get(("sample", "seed"), 0 if full_job else 42)  # ai-toolkit's seed default: 0
    prompts = []
    for i, item in enumerate(items):
        prompt = _inline_flags(draft, dict(item), join(source, i))
        if walk and "seed" not in prompt and isinstance(base_seed, int):
            prompt["seed"] = base_seed + i  # ai-toolkit: seed + index of the prompt
        prompts.append(prompt["text"] if set(prompt) == {"text"} else prompt)
    draft.put(PROMPTS, prompts, source)


def _sample_defaults(draft: Draft, has_prompts: bool) -> None:
    """SampleConfig's defaults where the job leaves a key out (ours differ)."""
    for key, field, value in (
        ("sample_every", "every", 100),
        ("width", "width", 512),
        ("height", "height", 512),
        ("seed", "seed", 0),
    ):
        if draft.get(("sample", field)) is None and has_prompts:
            draft.default(("sample", field), value, f"sample.{key} (ai-toolkit default)")


def baseline(draft: Draft, skip: bool, disabled: bool) -> None:
    """ai-toolkit renders the prompts once before training unless skip_first_sample or
    disable_sampling is set (BaseSDTrainProcess.run)."""
    if draft.get(PROMPTS) and not skip and not disabled:
        draft.default(("sample", "at_start"), True, "train.skip_first_sample (ai-toolkit default false)")


def _inline_flags(draft: Draft, prompt: dict[str, Any], source: str) -> dict[str, Any]:
    """`a photo --n blurry --w 768` → text plus options, as ai-toolkit parses prompts."""
    text = prompt["text"]
    if "--" not in text:
        return prompt
    head, *parts = text.split("--")
    prompt["text"] = head.strip()
    for part in parts:
        flag = part.split(" ")[0].strip()
        content = part[len(flag) :].strip()
        _one_flag(draft, prompt, flag, content, source)
    return prompt


def _one_flag(draft: Draft, prompt: dict[str, Any], flag: str, content: str, source: str) -> None:
    if flag in _FLAGS:
        field, kind = _FLAGS[flag]
        try:
            prompt[field] = kind(content)  # the prompt string wins over the item's options
        except ValueError:
            draft.issue(source, f"--{flag} needs a {kind.__name__} value", content)
    elif flag in _MULTIPLIER_FLAGS + _FRAME_FLAGS and _is_one(content):
        draft.notice(source, f"ignored: --{flag} {content} is ai-toolkit's default")
    elif flag in _MULTIPLIER_FLAGS + _FRAME_FLAGS:
        draft.issue(source, f"not supported by LoRA Pilot: the prompt flag --{flag}", content)
    elif flag in _IGNORED_FLAGS:
        draft.notice(source, f"ignored: the prompt flag --{flag}")
    else:
        accepted = "--n --w --h --seed --cfg --steps"
        draft.issue(source, f"unknown prompt flag --{flag}", content, accepted=accepted)


def _is_one(content: str) -> bool:
    try:
        return float(content) == 1.0
    except ValueError:
        return False
