"""sd-scripts' files are read the way sd-scripts runs them: its defaults, and its rules where two
options meet (epochs over steps, per-dataset batch sizes, reg balancing, prompt-file options)."""

from __future__ import annotations

import json
from pathlib import Path

from lorapilot.spec.draft import Draft
from lorapilot.spec.readers import kohya

SD15 = 'pretrained_model_name_or_path = "/workspace/models/stable-diffusion-v1-5"\n'
SDXL = 'pretrained_model_name_or_path = "/workspace/models/stable-diffusion-xl-base-1.0"\nsdxl = true\n'
DATA = 'train_data_dir = "/workspace/datasets/images/1_my_dataset"\n'


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_text_encoders_are_trained_unless_network_train_unet_only(validate, guide_workspace, tmp_path):
    for model in (SD15, SDXL):
        result = validate(write(tmp_path, model + DATA), workspace=guide_workspace)
        assert result.spec["network"]["train_text_encoder"] is True, model
    unet_only = validate(
        write(tmp_path, SD15 + DATA + "network_train_unet_only = true\n"), workspace=guide_workspace
    )
    assert unet_only.spec["network"]["train_text_encoder"] is False


def test_flux_keeps_its_text_encoders_frozen_and_says_what_sd_scripts_would_do(
    validate, guide_workspace, tmp_path
):
    flux = 'pretrained_model_name_or_path = "/workspace/models/diffusers/FLUX.1-schnell"\n'
    result = validate(write(tmp_path, flux + DATA), workspace=guide_workspace)
    assert result.spec["network"]["train_text_encoder"] is False
    assert "network_train_unet_only: FLUX.1 schnell LoRAs train the transformer only" in result.err


def test_cached_text_encoder_outputs_leave_the_encoders_frozen_with_a_notice(
    validate, guide_workspace, tmp_path
):
    result = validate(
        write(tmp_path, SDXL + DATA + "cache_text_encoder_outputs = true\n"), workspace=guide_workspace
    )
    assert result.spec["network"]["train_text_encoder"] is False
    assert result.spec["training"]["cache_text_encoder_outputs"] is True
    assert "the U-Net alone is trained" in result.err


def test_the_guides_yaml_keeps_lora_pilots_defaults(validate, guide_workspace, tmp_path):
    guide = "model:\n  pretrained_model_name_or_path: /workspace/models/stable-diffusion-v1-5\n"
    guide += "dataset:\n  train_data_dir: /workspace/datasets/images/1_my_dataset\n"
    spec = validate(write(tmp_path, guide, "guide.yaml"), workspace=guide_workspace).spec
    assert spec["network"]["train_text_encoder"] is False
    assert spec["datasets"][0]["bucket"]["enabled"] is True
    assert spec["training"]["learning_rate"] == 1e-4


def test_a_flat_guide_block_keeps_lora_pilots_defaults(validate, guide_workspace, tmp_path):
    # The guide's "quick test" block is flat but uses the guide's own names (steps), not sd-scripts'.
    block = write(tmp_path, "steps: 100\nlearning_rate: 1e-4\nnetwork_dim: 16\n", "first_pass.yaml")
    result = validate(block, "--profile", "quick_test", "--dataset", "my_dataset", workspace=guide_workspace)
    assert result.spec["training"]["mixed_precision"] != "no"
    assert "sd-scripts' default" not in result.err


def test_bucketing_is_off_unless_enable_bucket(validate, guide_workspace, tmp_path):
    off = validate(write(tmp_path, SD15 + DATA), workspace=guide_workspace).spec
    assert off["datasets"][0]["bucket"]["enabled"] is False
    on = validate(write(tmp_path, SD15 + DATA + "enable_bucket = true\n"), workspace=guide_workspace).spec
    assert on["datasets"][0]["bucket"]["enabled"] is True


def test_a_dataset_config_falls_back_on_the_arguments_then_on_sd_scripts_defaults(
    validate, guide_workspace, tmp_path
):
    write(
        tmp_path,
        '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "/workspace/datasets/images/1_my_dataset"\n',
        "ds.toml",
    )
    alone = validate(tmp_path / "ds.toml", "--profile", "quick_test", workspace=guide_workspace).spec
    assert (alone["datasets"][0]["bucket"]["enabled"], alone["datasets"][0]["caption_extension"]) == (
        False,
        ".caption",
    )
    args = SD15 + 'dataset_config = "ds.toml"\nenable_bucket = true\ncaption_extension = ".txt"\n'
    spec = validate(write(tmp_path, args), workspace=guide_workspace).spec
    assert (spec["datasets"][0]["bucket"]["enabled"], spec["datasets"][0]["caption_extension"]) == (
        True,
        ".txt",
    )


def test_sd_scripts_defaults_fill_what_its_file_leaves_out(validate, guide_workspace, tmp_path):
    result = validate(write(tmp_path, SD15 + DATA), workspace=guide_workspace)
    spec = result.spec
    assert (spec["training"]["max_steps"], spec["training"]["learning_rate"]) == (1600, 2e-6)
    assert (spec["training"]["optimizer"], spec["training"]["mixed_precision"]) == ("adamw", "no")
    assert (spec["network"]["dim"], spec["network"]["alpha"], spec["save"]["dtype"]) == (4, 1.0, "fp32")
    assert spec["datasets"][0]["caption_extension"] == ".caption"
    assert spec["model"]["weight_dtype"] == "fp32"  # sd-scripts' weight dtype follows mixed_precision
    assert "learning_rate: not set: sd-scripts' default 2e-06 is used" in result.err
    assert "seed: not set: sd-scripts would draw a random seed" in result.err  # where we differ, we say so


def test_epochs_override_steps_as_in_sd_scripts(validate, guide_workspace, tmp_path):
    result = validate(
        write(tmp_path, SD15 + DATA + "max_train_steps = 500\nmax_train_epochs = 3\n"),
        workspace=guide_workspace,
    )
    assert (result.spec["training"]["epochs"], result.spec["training"]["max_steps"]) == (3, None)
    assert "max_train_steps: ignored: max_train_epochs is set" in result.err


def test_two_datasets_keep_their_own_batch_sizes(validate, guide_workspace, tmp_path):
    write(
        tmp_path,
        "[general]\ncolor_aug = false\ncaption_tag_dropout_rate = 0\n"
        + "".join(
            f'[[datasets]]\n{size}[[datasets.subsets]]\nimage_dir = "/workspace/datasets/images/{folder}"\n'
            for size, folder in (
                ("batch_size = 2\n", "2_concept_b"),
                ("batch_size = 3\n", "3_concept_c"),
                ("", "1_concept_a"),
            )
        ),
        "ds.toml",
    )
    config = write(tmp_path, SD15 + 'dataset_config = "ds.toml"\ntrain_batch_size = 4\n')
    result = validate(config, workspace=guide_workspace)
    spec = result.spec
    assert [d["batch_size"] for d in spec["datasets"]] == [2, 3, None]  # None: train_batch_size (4)
    assert spec["training"]["batch_size"] == 4
    assert "color_aug: ignored: False leaves it off" in result.err


def test_reg_images_are_balanced_against_the_training_images(validate, guide_workspace, tmp_path):
    reg = 'reg_data_dir = "/workspace/datasets/reg"\n'
    spec = validate(write(tmp_path, SD15 + DATA + reg), workspace=guide_workspace).spec
    assert spec["training"]["balance_reg"] is True and [d["is_reg"] for d in spec["datasets"]] == [
        False,
        True,
    ]
    plain = validate(write(tmp_path, SD15 + DATA), workspace=guide_workspace).spec
    assert plain["training"]["balance_reg"] is False


def test_prompt_file_options_become_per_prompt_settings(validate, guide_workspace, tmp_path):
    (tmp_path / "prompts.txt").write_text(
        "# comment\na cat --n blurry, lowres --w 512 --h 768 --s 28 --l 6.5 --d 7 --ss euler_a\n\na dog\n"
    )
    text = SD15 + DATA + 'sample_prompts = "prompts.txt"\nsample_every_n_epochs = 1\nsample_at_first = true\n'
    result = validate(write(tmp_path, text), workspace=guide_workspace)
    sample = result.spec["sample"]
    assert sample["prompts"] == [
        {
            "text": "a cat",
            "negative_prompt": "blurry, lowres",
            "width": 512,
            "height": 768,
            "steps": 28,
            "guidance_scale": 6.5,
            "seed": 7,
        },
        "a dog",
    ]
    assert (sample["every_n_epochs"], sample["at_start"], sample["every"]) == (1, True, 0)
    assert "--ss: ignored (samples use the model's own scheduler)" in result.err


def test_flux_guidance_option_wins_over_cfg_in_prompt_files(validate, guide_workspace, tmp_path):
    (tmp_path / "prompts.txt").write_text("a cat --g 3.5 --l 1.0\n")
    text = SD15 + DATA + 'sample_prompts = "prompts.txt"\n'
    spec = validate(write(tmp_path, text), workspace=guide_workspace).spec
    assert spec["sample"]["prompts"] == [{"text": "a cat", "guidance_scale": 3.5}]


def test_toml_and_json_prompt_files_are_read(validate, guide_workspace, tmp_path):
    (tmp_path / "prompts.toml").write_text(
        '[prompt]\nnegative_prompt = "ugly"\nwidth = 512\n\n'
        '[[prompt.subset]]\nprompt = "a cat"\n\n[[prompt.subset]]\nprompt = "a dog"\nwidth = 768\n'
    )
    (tmp_path / "prompts.json").write_text(
        json.dumps(["a cat --n ugly", {"prompt": "a dog", "sample_steps": 9}])
    )
    by_toml = validate(
        write(tmp_path, SD15 + DATA + 'sample_prompts = "prompts.toml"\n'), workspace=guide_workspace
    )
    assert by_toml.spec["sample"]["prompts"] == [
        {"text": "a cat", "negative_prompt": "ugly", "width": 512},
        {"text": "a dog", "negative_prompt": "ugly", "width": 768},
    ]
    by_json = validate(
        write(tmp_path, SD15 + DATA + 'sample_prompts = "prompts.json"\n'), workspace=guide_workspace
    )
    assert by_json.spec["sample"]["prompts"] == [
        {"text": "a cat", "negative_prompt": "ugly"},
        {"text": "a dog", "steps": 9},
    ]


def test_sampling_by_epochs_overrides_sampling_by_steps(validate, guide_workspace, tmp_path):
    (tmp_path / "prompts.txt").write_text("a cat\n")
    text = 'sample_prompts = "prompts.txt"\nsample_every_n_steps = 50\nsample_every_n_epochs = 2\n'
    result = validate(write(tmp_path, SD15 + DATA + text), workspace=guide_workspace)
    assert (result.spec["sample"]["every"], result.spec["sample"]["every_n_epochs"]) == (0, 2)
    assert "save_every_n_epochs" not in result.err


def test_documented_options_map_onto_the_spec(validate, guide_workspace, tmp_path):
    text = (
        "fp8_base = true\nmin_timestep = 100\nmax_timestep = 900\nloraplus_lr_ratio = 16\n"
        'caption_prefix = "sks, "\ntorch_compile = true\n'
    )
    spec = validate(write(tmp_path, SD15 + DATA + text), workspace=guide_workspace).spec
    assert spec["model"]["quantize"] == "float8"
    training = spec["training"]
    assert (training["min_timestep"], training["max_timestep"], training["loraplus_lr_ratio"]) == (
        100,
        900,
        16,
    )
    assert training["compile"] is True
    assert spec["datasets"][0]["trigger_word"] == "sks"


def test_loraplus_in_network_args_and_a_separate_text_encoder_ratio(validate, guide_workspace, tmp_path):
    same = 'network_args = ["loraplus_lr_ratio=8", "loraplus_text_encoder_lr_ratio=8"]\n'
    assert (
        validate(write(tmp_path, SD15 + DATA + same), workspace=guide_workspace).spec["training"][
            "loraplus_lr_ratio"
        ]
        == 8
    )
    split = 'network_args = ["loraplus_unet_lr_ratio=16", "loraplus_text_encoder_lr_ratio=4"]\n'
    result = validate(write(tmp_path, SD15 + DATA + split), workspace=guide_workspace)
    assert result.rc == 2 and "a separate LoRA+ ratio for the text encoder" in result.err


def test_split_file_components_map_onto_the_model():
    draft = Draft(file="flux.toml")
    kohya.read({"clip_l": "clip_l.safetensors", "t5xxl": "t5.safetensors", "ae": "ae.safetensors"}, draft)
    kohya.read({"clip_g": "clip_g.safetensors"}, draft)
    assert draft.issues == []
    assert {k: v for k, v in draft.data["model"].items() if k in ("clip_l", "t5xxl", "vae", "clip_g")} == {
        "clip_l": "clip_l.safetensors",
        "t5xxl": "t5.safetensors",
        "vae": "ae.safetensors",
        "clip_g": "clip_g.safetensors",
    }


def test_flux_network_args_at_their_defaults_pass_and_others_are_refused():
    draft = Draft(file="flux.toml")
    kohya.read(
        {"network_args": ["train_t5xxl=False", "split_qkv=True", "rank_dropout=0", "verbose=True"]}, draft
    )
    assert draft.issues == []
    refused = Draft(file="flux.toml")
    kohya.read({"network_args": ["train_blocks=single"]}, refused)
    assert [i.message for i in refused.issues] == [
        "not supported by LoRA Pilot: training only FLUX's single or double blocks"
    ]


def test_a_flux_script_config_gets_flux_train_network_defaults_and_names_what_differs():
    draft = Draft(file="flux.toml")
    kohya.read({"network_module": "networks.lora_flux"}, draft)
    assert draft.data["training"]["guidance_scale"] == 3.5
    said = {n.field: n.message for n in draft.notices}
    assert "sd-scripts would use sigma_scaled" in said["model_prediction_type"]
    assert "sd-scripts would draw σ by weighting_scheme" in said["timestep_sampling"]


def test_a_dataset_config_replaces_the_folder_arguments_as_in_sd_scripts(validate, guide_workspace, tmp_path):
    write(
        tmp_path,
        '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "/workspace/datasets/images/2_concept_b"\n',
        "ds.toml",
    )
    config = SD15 + DATA + 'reg_data_dir = "/workspace/datasets/reg"\ndataset_config = "ds.toml"\n'
    result = validate(write(tmp_path, config), workspace=guide_workspace)
    assert [Path(d["folder"]).name for d in result.spec["datasets"]] == ["2_concept_b"]
    assert result.spec["training"]["balance_reg"] is False
    assert "reg_data_dir: ignored: dataset_config is given" in result.err


def test_prompts_without_options_render_at_sd_scripts_sample_defaults(validate, guide_workspace, tmp_path):
    (tmp_path / "prompts.txt").write_text("a cat\na dog --w 768 --s 12\n")
    text = (
        SD15 + DATA + 'resolution = "1024,1024"\nsample_prompts = "prompts.txt"\nsample_every_n_steps = 50\n'
    )
    sample = validate(write(tmp_path, text), workspace=guide_workspace).spec["sample"]
    assert (sample["width"], sample["height"], sample["steps"], sample["guidance_scale"]) == (
        512,
        512,
        30,
        7.5,
    )
    assert sample["prompts"][1] == {"text": "a dog", "width": 768, "steps": 12}  # a line's own options win
    flux = text.replace(
        SD15, 'pretrained_model_name_or_path = "/workspace/models/diffusers/FLUX.1-schnell"\n'
    )
    flux += 'network_module = "networks.lora_flux"\n'
    flux_sample = validate(write(tmp_path, flux), workspace=guide_workspace).spec["sample"]
    assert (flux_sample["steps"], flux_sample["guidance_scale"]) == (20, 3.5)
