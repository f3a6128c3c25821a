"""The fast path (`training.fast`) trains the LoRA the eager path trains, in the same files.

On a CPU both paths run; the fast one differs only in float rounding (the fused LoRA product
adds in one `addmm`, the flat optimizer steps one buffer), so after a run their LoRAs agree to the
tolerances below. Resuming stays exact, and the state a run saved resumes under the other path.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lorapilot.engine import train
from lorapilot.engine.checkpoint import load_state
from lorapilot.engine.distributed import train_distributed
from lorapilot.testing.host_syncs import HostReadCounter
from lorapilot.testing.interruptions import SimulatedCrashError, crash_at

# Fields that differ between any two runs (session ids, start and end times, the file's own hash).
PER_RUN = {"ss_session_id", "ss_training_started_at", "ss_training_finished_at", "sshs_model_hash"}
PER_RUN |= {"sshs_legacy_hash", "modelspec.date", "ss_output_name", "modelspec.title"}


def lora_and_metadata(path):
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    return load_file(str(path)), {k: v for k, v in metadata.items() if k not in PER_RUN}


def assert_same_lora(a, b, *, rtol, atol):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        diff = (a[key].float() - b[key].float()).abs().max().item()
        torch.testing.assert_close(
            a[key].float(), b[key].float(), rtol=rtol, atol=atol, msg=f"{key}: max difference {diff:.3g}"
        )


@pytest.mark.parametrize(
    ("family", "optimizer", "args"),
    [
        ("sd15", "adamw", {}),
        ("sd15", "adamw8bit", {"min_8bit_size": 0}),
        ("flux-dev", "adamw", {}),
    ],
)
def test_the_fast_path_trains_the_same_lora_into_the_same_file(family, optimizer, args, make_spec, workspace):
    def run(name, fast):
        training = {"max_steps": 10, "optimizer": optimizer, "optimizer_args": args, "fast": fast}
        save = {"dtype": "fp32"}  # fp16 files would round both to the same or neighbouring values
        spec = make_spec(family, name, network={"dim": 4, "alpha": 2}, training=training, save=save)
        return train(spec, workspace, show_progress=False)

    eager, fast = run("eager", False), run("fast", True)
    a, meta_a = lora_and_metadata(eager.lora)
    b, meta_b = lora_and_metadata(fast.lora)
    # Adam moves each weight by about the LR (1e-3) per step; 1e-5 is 1 % of one step's move.
    assert_same_lora(a, b, rtol=1e-4, atol=1e-5)
    assert meta_a == meta_b


@pytest.mark.parametrize("optimizer", ["adamw", "adamw8bit"])
def test_a_fast_step_reads_nothing_back_outside_log_points(optimizer, make_spec, workspace):
    """Over 210 steps the loop logs every 10th; every other step must leave the host free to queue."""
    spec = make_spec(
        name=f"syncs-{optimizer}",
        network={"dim": 4, "alpha": 4},
        datasets=[{"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}, "flip": True}],
        training={"max_steps": 210, "batch_size": 1, "optimizer": optimizer, "fast": True},
        save={"save_state": False},
    )
    per_step: dict[int, Counter[str]] = {}
    with HostReadCounter() as reads:
        train(spec, workspace, lambda p: per_step.__setitem__(p.step, reads.take()), show_progress=False)
    # The callback comes from the first logged step on; step 10's count holds the set-up's reads.
    assert sorted(per_step) == list(range(10, 211))
    steps = range(11, 211)
    unlogged = {step: dict(per_step[step]) for step in steps if step % 10 and per_step[step]}
    assert unlogged == {}, f"host reads between log points: {dict(list(unlogged.items())[:3])}"
    logged = {step: dict(per_step[step]) for step in steps if step % 10 == 0}
    assert all(ops == {"aten._local_scalar_dense": 1} for ops in logged.values()), logged  # the loss


@pytest.mark.parametrize("family", ["sd15", "flux-dev"])
def test_under_bf16_the_fast_path_is_as_close_to_fp32_training_as_the_eager_path(
    family, make_spec, workspace
):
    """bf16 rounds differently on the two paths (the fused product rounds once, peft's thrice), so
    neither matches fp32 training exactly; the fast one must stay as close to it (within 10 %)."""

    def lora(name, fast, precision):
        training = {"max_steps": 10, "fast": fast, "mixed_precision": precision}
        spec = make_spec(family, name, training=training, save={"dtype": "fp32"})
        return load_file(str(train(spec, workspace, show_progress=False).lora))

    fp32, eager, fast = lora("fp32", False, "no"), lora("eager", False, "bf16"), lora("fast", True, "bf16")

    def distance(a, b):
        return float(sum(((a[k] - b[k]) ** 2).sum() for k in a) ** 0.5)

    assert distance(fast, fp32) <= 1.1 * distance(eager, fp32)
    assert distance(fast, eager) > 0  # the two paths really differ: the fast one was taken


RESUMABLE = {
    "datasets": [
        {
            "folder": "demo",
            "resolutions": [64],
            "bucket": {"enabled": False},
            "flip": True,
            "caption_dropout": 0.2,
        }
    ],
    "save": {"every_n_steps": 8, "dtype": "fp32"},
}


@pytest.mark.parametrize(("optimizer", "args"), [("adamw", {}), ("adamw8bit", {"min_8bit_size": 0})])
def test_a_fast_run_killed_after_a_save_resumes_to_the_same_lora(optimizer, args, make_spec, workspace):
    training = {
        "max_steps": 16,
        "optimizer": optimizer,
        "optimizer_args": args,
        "fast": True,
        "noise_offset": 0.1,
    }
    straight = train(
        make_spec(name="straight", training=training, **RESUMABLE), workspace, show_progress=False
    )
    spec = make_spec(name="crashed", training=training, **RESUMABLE)
    with pytest.raises(SimulatedCrashError):
        train(spec, workspace, crash_at(11), show_progress=False)
    resumed = train(spec, workspace, show_progress=False)
    assert resumed.steps == 16
    assert_same_lora(load_file(str(straight.lora)), load_file(str(resumed.lora)), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("first", "then"), [(False, True), (True, False)])
def test_a_state_resumes_on_the_other_path_in_its_own_optimizer_layout(first, then, make_spec, workspace):
    """A run started before an upgrade (or with fast: false) resumes with the fast path switched on,
    and the other way round: the optimizer state fits only its layout, so the run keeps that one."""
    training = {"max_steps": 16, "optimizer": "adamw8bit", "optimizer_args": {"min_8bit_size": 0}}
    straight = train(
        make_spec(name="straight", training={**training, "fast": first}, **RESUMABLE),
        workspace,
        show_progress=False,
    )
    with pytest.raises(SimulatedCrashError):
        spec = make_spec(name="switched", training={**training, "fast": first}, **RESUMABLE)
        train(spec, workspace, crash_at(11), show_progress=False)
    layout = "flat" if first else "per_tensor"
    assert load_state(straight.lora.parent / "state").extra["optimizer_layout"] == layout
    switched = make_spec(name="switched", training={**training, "fast": then}, **RESUMABLE)
    resumed = train(switched, workspace, show_progress=False)
    assert resumed.steps == 16
    assert load_state(resumed.lora.parent / "state").extra["optimizer_layout"] == layout
    assert_same_lora(load_file(str(straight.lora)), load_file(str(resumed.lora)), rtol=1e-4, atol=1e-5)


def test_data_parallel_training_on_the_fast_path_trains_the_eager_paths_lora(make_spec, workspace):
    """Two gloo ranks all-reduce the flat gradient buffers instead of each LoRA tensor."""

    def run(name, fast):
        training = {"max_steps": 4, "fast": fast}
        spec = make_spec(name=name, training=training, save={"dtype": "fp32"})
        return load_file(str(train_distributed(spec, workspace, 2, show_progress=False).lora))

    assert_same_lora(run("pair-eager", False), run("pair-fast", True), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.cuda.is_available() and not os.environ.get("LORAPILOT_RUN_SLOW"),
    reason="compiling the UNet takes minutes on 2 CPU cores; runs on CUDA or with LORAPILOT_RUN_SLOW=1",
)
def test_the_second_compiled_run_of_the_same_shapes_starts_from_the_workspace_cache(make_spec, workspace):
    def seconds_to_first_step(name):
        spec = make_spec(name=name, training={"max_steps": 2, "compile": True, "fast": True})
        start, first = time.perf_counter(), []
        train(spec, workspace, lambda p: first.append(time.perf_counter() - start), show_progress=False)
        return first[0]

    cold = seconds_to_first_step("cold")
    cache = workspace.cache / "torch" / "inductor"
    assert any(cache.rglob("*")), "the compiled graphs are kept in the workspace"
    warm = seconds_to_first_step("warm")
    assert warm < cold / 2, (cold, warm)


def test_an_optimizer_that_is_not_elementwise_keeps_its_per_tensor_step(make_spec, workspace):
    """Adafactor factors each matrix's second moment: over one flat vector it would be another
    optimizer. The fast path keeps it per tensor (its layers are still fused)."""

    def run(name, fast):
        spec = make_spec(name=name, training={"max_steps": 4, "optimizer": "adafactor", "fast": fast})
        return train(spec, workspace, show_progress=False)

    eager, fast = run("adafactor-eager", False), run("adafactor-fast", True)
    assert load_state(fast.lora.parent / "state").extra["optimizer_layout"] == "per_tensor"
    assert_same_lora(load_file(str(eager.lora)), load_file(str(fast.lora)), rtol=1e-3, atol=1e-4)


def test_samples_render_from_the_fused_layers(make_spec, workspace):
    sample = {"every": 2, "prompts": ["lpdemo, a cat"], "steps": 1, "width": 64, "height": 64}
    result = train(
        make_spec(name="sampled", training={"max_steps": 4, "fast": True}, sample=sample),
        workspace,
        show_progress=False,
    )
    assert result.warnings == []
    renders = sorted(p.name for p in (result.lora.parent / "samples").glob("*.png"))
    assert renders == ["step00000002_0.png", "step00000004_0.png"]
