"""RunConfig: YAML round trip, forgiving types, messages that name the field, presets with the seeds' numbers."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from training.cli import build_parser
from training.cli.train import config_from_arguments
from training.errors import UserError
from training.train.config import RunConfig, retired_values
from training.train.presets import PRESETS, get_preset


def test_yaml_round_trip_keeps_every_field(tmp_path):
    config = RunConfig(
        name="sam-v1",
        model="offline-tiny",
        method="adalora",
        target_modules=["q_proj", "v_proj"],
        max_steps=0,
        neftune_noise_alpha=5.0,
        learning_rate=2e-5,
        system_prompt="You are Sam.\nBe brief.",
        validation_split=0.1,
        early_stopping_patience=3,
    )
    path = config.save(tmp_path / "config.yaml")

    assert RunConfig.from_yaml(path) == config


def test_an_older_config_with_the_retired_separator_still_reads_and_keeps_it(tmp_path):
    # The separator moved to the data set's manifest; an old run's value stays readable for that run.
    path = tmp_path / "config.yaml"
    path.write_text("model: offline-tiny\nmethod: adalora\nseparator: ' / '\n")
    config = RunConfig.from_yaml(path)
    assert (config.model, config.method) == ("offline-tiny", "adalora") and not hasattr(config, "separator")
    config.save(path, keep_retired=True)  # the trainer re-saves a run's config this way
    assert retired_values(path) == {"separator": " / "} and RunConfig.from_yaml(path) == config
    config.save(path)
    assert retired_values(path) == {} and "separator" not in path.read_text()
    with pytest.raises(UserError, match="override: unknown field 'separator'"):
        config.with_overrides(separator="|")


def test_an_older_config_with_null_for_off_reads_as_zero(tmp_path):
    # Before 0 meant "off", these fields wrote null; such runs must still load, resume and export.
    path = tmp_path / "config.yaml"
    path.write_text("max_steps: null\nneftune_noise_alpha: null\nearly_stopping_patience: ~\n")

    config = RunConfig.from_yaml(path)

    assert (config.max_steps, config.neftune_noise_alpha, config.early_stopping_patience) == (0, 0.0, 0)
    assert config.validate(require_data=False) is config
    with pytest.raises(UserError, match="config.yaml: lora_r: None is not a whole number"):
        path.write_text("lora_r: null\n")  # a setting without an "off" still needs a value
        RunConfig.from_yaml(path)


def test_yaml_written_by_hand_is_read_with_forgiving_types(tmp_path):
    path = tmp_path / "config.yaml"
    # YAML 1.1 reads 2e-4 as a string; a UI text box gives "8"; "q_proj, v_proj" is how people type lists.
    path.write_text("learning_rate: 2e-4\nlora_r: '8'\nepochs: 2\ntarget_modules: q_proj, v_proj\npacking: yes\n")

    config = RunConfig.from_yaml(path)

    assert config.learning_rate == 2e-4 and config.lora_r == 8 and config.epochs == 2.0
    assert config.target_modules == ["q_proj", "v_proj"] and config.packing is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lora_rank: 8\n", "config.yaml: unknown field 'lora_rank' (did you mean 'lora_r'?)"),
        ("lora_r: eight\n", "config.yaml: lora_r: 'eight' is not a whole number"),
        ("lora_r: 2.5\n", "config.yaml: lora_r: 2.5 is not a whole number"),
        ("- a list\n", "config.yaml: expected a mapping of field: value, got list"),
        ("model: [unclosed\n", "config.yaml: not valid YAML"),
    ],
)
def test_bad_yaml_names_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)

    with pytest.raises(UserError) as error:
        RunConfig.from_yaml(path)

    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "lorra"}, "method: 'lorra' is not one of lora, dora, rslora, adalora, qlora, full"),
        ({"lora_r": 0}, "lora_r: 0; expected a whole number >= 1"),
        ({"lora_dropout": 1.5}, "lora_dropout: 1.5; expected a fraction in [0, 1)"),
        ({"max_steps": -1}, "max_steps: -1; expected a whole number >= 0"),
        ({"weight_decay": -0.1}, "weight_decay: -0.1; expected a number >= 0"),
        ({"learning_rate": float("nan")}, "learning_rate: nan; expected a small positive number like 2e-4"),
        ({"epochs": 0}, "epochs: 0; expected a number > 0 (or set max_steps)"),
        ({"scheduler": "cosine_annealing"}, "scheduler: 'cosine_annealing' is not one of linear, cosine"),
        ({"learning_rate": 3.0}, "learning_rate: 3.0; expected a small positive number like 2e-4"),
        ({"quantization_bits": 3}, "quantization_bits: 3 is not one of 4, 8"),
        ({"chat_template": "vicuna"}, "chat_template: 'vicuna' is not one of chatml, alpaca, openchatkit"),
        ({"target_modules": []}, "target_modules: []; expected auto, all-linear or a list of module names"),
        ({"warmup_steps": 10, "warmup_ratio": 0.1}, "warmup_steps and warmup_ratio: both set"),
        ({"early_stopping_patience": 2}, "early_stopping_patience: needs validation_file or validation_split"),
        (
            {"early_stopping_patience": 2, "validation_split": 0.1, "eval_steps": 20, "save_steps": 50},
            "save_steps: 50 must be a multiple of eval_steps (20)",
        ),
        ({"packing": True, "padding_free": True}, "packing and padding_free: choose one"),
        ({"method": "adalora", "adalora_init_r": 4, "adalora_target_r": 8}, "adalora_target_r: 8 is above"),
        ({"name": "../elsewhere"}, "name: '../elsewhere'; expected a plain folder name"),
        ({"train_file": ""}, "train_file: empty; choose the JSONL written by the data step"),
    ],
)
def test_validate_says_which_field_and_what_is_allowed(fields, message):
    config = RunConfig(**{"train_file": "me.jsonl", **fields})

    with pytest.raises(UserError) as error:
        config.validate()

    assert message in str(error.value) and "\n" not in str(error.value)


def test_validate_reports_every_problem_at_once():
    with pytest.raises(UserError) as error:
        RunConfig(lora_r=0, batch_size=0, train_file="x.jsonl").validate()

    assert "lora_r: 0" in str(error.value) and "batch_size: 0" in str(error.value)


def test_with_overrides_replaces_given_fields_and_ignores_missing_flags():
    base = RunConfig(model="a", max_steps=100)

    changed = base.with_overrides(model="b", max_steps=None, learning_rate="1e-3")

    assert (changed.model, changed.max_steps, changed.learning_rate) == ("b", 100, 1e-3)
    assert base.model == "a"
    with pytest.raises(UserError, match="override: unknown field 'modle'"):
        base.with_overrides(modle="c")


def test_every_preset_is_valid_and_names_its_source():
    assert {
        "blenderbot-adalora",
        "mistral-qlora-alpaca",
        "redpajama-lora-r2",
        "mistral-unsloth-r768",
        "gpt2-full",
        "persona-small",
        "offline-tiny",
        "offline-small",
    } <= set(PRESETS)
    for name, preset in PRESETS.items():
        config = get_preset(name).validate(require_data=False)
        assert config.preset == name and len(preset.source) > 40


def test_presets_carry_the_seed_articles_numbers():
    blender = get_preset("blenderbot-adalora")
    assert (blender.model, blender.method, blender.lora_alpha, blender.lora_dropout) == (
        "facebook/blenderbot-400M-distill",
        "adalora",
        32,
        0.1,
    )
    assert blender.target_modules == ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    red = get_preset("redpajama-lora-r2")
    assert (red.lora_r, red.lora_alpha, red.lora_dropout, red.target_modules) == (2, 32, 0.05, ["query_key_value"])
    assert (red.learning_rate, red.max_steps, red.batch_size, red.grad_accumulation, red.warmup_steps) == (
        2e-4,
        200,
        4,
        4,
        100,
    )
    assert red.dtype == "fp32" and red.activation_checkpointing and red.chat_template == "openchatkit"
    unsloth = get_preset("mistral-unsloth-r768")
    assert (unsloth.lora_r, unsloth.lora_alpha, unsloth.learning_rate, unsloth.scheduler, unsloth.warmup_steps) == (
        768,
        768,
        2e-5,
        "cosine",
        0,
    )
    assert (unsloth.batch_size, unsloth.validation_split, unsloth.use_unsloth) == (2, 0.1, "on")
    qlora = get_preset("mistral-qlora-alpaca")
    assert qlora.method == "qlora" and qlora.quantization_bits == 4 and qlora.neftune_noise_alpha
    gpt2 = get_preset("gpt2-full")
    assert (gpt2.method, gpt2.epochs, gpt2.batch_size, gpt2.chat_template) == ("full", 3.0, 4, "question_answer")


def test_get_preset_returns_an_independent_copy():
    first = get_preset("blenderbot-adalora")
    first.target_modules.append("lm_head")

    assert get_preset("blenderbot-adalora").target_modules[-1] == "fc2"
    with pytest.raises(UserError, match="preset: unknown 'nope'; choose one of persona-small"):
        get_preset("nope")


def test_a_recipe_file_with_a_mistyped_field_names_the_file_recipe_and_field(tmp_path):
    # The recipes are data (presets.yaml); one edited by hand must fail as a config.yaml would.
    from training.train.presets import load_presets

    recipes = tmp_path / "presets.yaml"
    recipes.write_text("mine:\n  title: t\n  source: s\n  config:\n    lora_rank: 8\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"presets.yaml: mine: unknown field 'lora_rank' \(did you mean 'lora_r'\?\)"):
        load_presets(recipes)
    recipes.write_text("mine:\n  title: t\n  source: s\n  config:\n    learning_rate: 2e-4\n", encoding="utf-8")
    assert load_presets(recipes)["mine"].config.learning_rate == 2e-4  # YAML 1.1 reads 2e-4 as text


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["train", *argv])


def test_cli_flags_override_the_config_file(tmp_path):
    path = RunConfig(model="a", train_file="old.jsonl", max_steps=5).save(tmp_path / "config.yaml")

    config = config_from_arguments(parse([str(path), "--model", "b", "--data", "new.jsonl", "--method", "dora"]))

    assert (config.model, config.train_file, config.method, config.max_steps) == ("b", "new.jsonl", "dora", 5)


def test_cli_preset_and_resume_rules(tmp_path):
    config = config_from_arguments(parse(["--preset", "gpt2-full", "--max-steps", "7"]))
    assert (config.model, config.max_steps) == ("gpt2", 7)
    with pytest.raises(UserError, match="--resume: needs the run folder"):
        config_from_arguments(parse(["--preset", "gpt2-full", "--resume"]))
    with pytest.raises(UserError, match="give a config file or --preset, not both"):
        config_from_arguments(parse([str(tmp_path / "c.yaml"), "--preset", "gpt2-full"]))


def test_every_setting_is_a_train_flag_coerced_like_config_yaml(capsys):
    config = config_from_arguments(
        parse(
            [
                "--preset",
                "offline-tiny",
                "--lora-dropout",
                "0.1",
                "--no-completion-only-loss",
                "--packing",
                "--target-modules",
                "q_proj, v_proj",
                "--neftune-noise-alpha",
                "5",
                "--scheduler",
                "linear",
                "--data",
                "d.jsonl",
                "--validation-split",
                "0.2",
                "--system-prompt",
                "You are Sam.",
            ]
        )
    )

    assert (config.lora_dropout, config.completion_only_loss, config.packing) == (0.1, False, True)
    assert (config.target_modules, config.neftune_noise_alpha, config.scheduler) == (
        ["q_proj", "v_proj"],
        5.0,
        "linear",
    )
    assert (config.train_file, config.validation_split, config.system_prompt) == ("d.jsonl", 0.2, "You are Sam.")
    assert config.preset == "offline-tiny" and config.padding_free == get_preset("offline-tiny").padding_free
    with pytest.raises(SystemExit):
        parse(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(RunConfig):
        if field.name != "preset":  # --preset picks the recipe the config starts from
            assert f"--{field.name.replace('_', '-')}" in shown and field.metadata["help"] in shown, field.name


def test_a_bad_train_flag_is_one_message_naming_the_field():
    with pytest.raises(UserError, match="^override: lora_r: 'eight' is not a whole number$"):
        config_from_arguments(parse(["--lora-r", "eight"]))
    with pytest.raises(UserError, match="^method: 'lorra' is not one of lora, dora"):
        config_from_arguments(parse(["--method", "lorra"])).validate()
