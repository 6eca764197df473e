"""Exporting a finished run: adapter or merged folders that load and answer exactly like the run,
their model card and loss plot, GGUF for Llama models, and no half-written folder on failure."""

from __future__ import annotations

import errno
import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GenerationConfig,
)

from tests.export_runs import SECRET_LINE, adapter_run, full_run
from training.cli import build_parser
from training.errors import UserError
from training.export import save as export_module
from training.export.modelcard import card_data
from training.export.save import export_run, export_sizes, read_run

SAMPLES = [{"prompt": "are you coming tonight?", "reply": "yes!! be there at 7"}]


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    return adapter_run(tmp_path_factory)


@pytest.fixture(scope="module")
def adapter_folder(lora, tmp_path_factory):
    return export_run(lora.path, tmp_path_factory.mktemp("exports") / "adapter", merge=False, samples=SAMPLES)


@pytest.fixture(scope="module")
def merged_folder(lora, tmp_path_factory):
    # A small shard size makes the 20 MB tiny model split, as a multi-GB model would at 5GB.
    return export_run(lora.path, tmp_path_factory.mktemp("exports") / "merged", merge=True, max_shard_size="8MB")


def _logits(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


def test_adapter_export_is_small_and_answers_exactly_like_the_run(lora, adapter_folder):
    from peft import AutoPeftModelForCausalLM

    names = {path.name for path in adapter_folder.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "README.md",
        "talklike.json",
        "loss_curve.png",
    } <= names
    assert not names & {"model.safetensors", "config.json", "train.jsonl", "optimizer.pt", "status.json"}
    assert not [name for name in names if name.startswith(".")]

    model = AutoPeftModelForCausalLM.from_pretrained(adapter_folder)
    assert torch.allclose(_logits(model, lora.inputs), lora.logits, atol=1e-6, rtol=0)

    tokenizer = AutoTokenizer.from_pretrained(adapter_folder)
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    info = json.loads((adapter_folder / "talklike.json").read_text())
    assert info["export"] == "adapter" and info["system_prompt"] == "You are Sam. Reply the way Sam texts."


def test_merged_export_is_a_plain_sharded_model_with_the_same_outputs(lora, merged_folder):
    names = {path.name for path in merged_folder.iterdir()}
    assert "adapter_config.json" not in names
    shards = sorted(name for name in names if name.endswith(".safetensors"))
    assert len(shards) >= 2 and "model.safetensors.index.json" in names

    model = AutoModelForCausalLM.from_pretrained(merged_folder)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert torch.allclose(_logits(model, lora.inputs), lora.logits, atol=1e-5, rtol=0)
    assert not torch.allclose(
        _logits(AutoModelForCausalLM.from_pretrained(lora.base), lora.inputs), lora.logits, atol=1e-3
    )

    tokenizer = AutoTokenizer.from_pretrained(merged_folder)
    generation = GenerationConfig.from_pretrained(merged_folder)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in generation.eos_token_id  # chats stop at the end of a turn
    assert model.config.use_cache is True


def test_export_sizes_match_what_export_writes(lora, adapter_folder, merged_folder):
    def folder_mb(folder):
        return sum(path.stat().st_size for path in folder.iterdir()) / 1e6

    sizes = export_sizes(lora.path)
    assert sizes["adapter_mb"] == pytest.approx(folder_mb(adapter_folder), rel=0.2)
    assert sizes["merged_mb"] == pytest.approx(folder_mb(merged_folder), rel=0.2)
    assert sizes["merged_mb"] > 10 * sizes["adapter_mb"]


@pytest.mark.parametrize("method, arch", [("adalora", "llama"), ("dora", "llama"), ("lora", "blenderbot")])
def test_adalora_dora_and_seq2seq_runs_merge_to_the_same_outputs(tmp_path_factory, tmp_path, method, arch):
    run = adapter_run(tmp_path_factory, method=method, arch=arch)
    merged = export_run(run.path, tmp_path / "merged", merge=True)
    loader = AutoModelForSeq2SeqLM if run.seq2seq else AutoModelForCausalLM
    assert torch.allclose(_logits(loader.from_pretrained(merged), run.inputs), run.logits, atol=1e-5, rtol=0)
    card = ModelCard.load(merged / "README.md")
    assert card.data.pipeline_tag == ("text2text-generation" if run.seq2seq else "text-generation")
    assert f"| method | {method} |" in card.text


def test_full_fine_tune_exports_the_model_itself(tmp_path_factory, tmp_path):
    run = full_run(tmp_path_factory)
    folder = export_run(run.path, tmp_path / "full", merge=False)
    assert torch.allclose(
        _logits(AutoModelForCausalLM.from_pretrained(folder), run.inputs), run.logits, atol=1e-6, rtol=0
    )
    assert ModelCard.load(folder / "README.md").data.library_name == "transformers"
    assert export_sizes(run.path)["adapter_mb"] is None


def test_model_card_has_metadata_recipe_results_samples_and_warning(lora, adapter_folder, merged_folder):
    card = ModelCard.load(adapter_folder / "README.md")
    assert card.data.library_name == "peft"
    assert {"talklike", "persona", "lora", "peft"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "text-generation"
    assert card.data.eval_results[0].metric_type == "loss"
    metrics = [json.loads(line) for line in (lora.path / "metrics.jsonl").read_text().splitlines()]
    best = min(m["eval_loss"] for m in metrics if m["eval_loss"] is not None)
    assert card.data.eval_results[0].metric_value == pytest.approx(best, abs=1e-4)
    for row in ("| lora_r | 4 |", "| lora_alpha | 8 |", "| learning_rate | 0.005 |", "| max_steps | 6 |"):
        assert row in card.text
    assert "training examples: 12" in card.text and "validation examples: 3" in card.text
    assert "yes!! be there at 7" in card.text  # the sample the user picked
    assert "Privacy warning" in card.text and "memorise" in card.text
    assert "AutoPeftModelForCausalLM.from_pretrained(model_id)" in card.text
    with Image.open(adapter_folder / "loss_curve.png") as plot:
        assert plot.format == "PNG" and plot.size == (800, 450)

    merged = ModelCard.load(merged_folder / "README.md")
    assert merged.data.library_name == "transformers" and "merged" in merged.data.tags
    assert "AutoModelForCausalLM.from_pretrained(model_id)" in merged.text


def test_nothing_from_the_training_data_or_local_paths_reaches_the_export(lora, adapter_folder, merged_folder):
    for folder in (adapter_folder, merged_folder):
        card_text = (folder / "README.md").read_text()
        assert str(lora.path) not in card_text and str(lora.path.parent) not in card_text
        assert str(lora.base) not in card_text + (folder / "talklike.json").read_text()
        for path in folder.iterdir():
            assert SECRET_LINE.encode() not in path.read_bytes(), path.name


def test_an_export_chats_with_the_runs_persona_but_carries_only_its_prompt_settings(lora, tmp_path):
    from training.chat.generate import build_prompt, clear_model_cache, load_chat_model

    run = tmp_path / "my-run"
    shutil.copytree(lora.path, run)
    prompt = {"separator": "|", "system_prompt": "You are Sam.", "context_turns": 2, "name_prefix_in_groups": True}
    manifest = {"format_version": 1, "prompt": prompt, "shaping": {"me": "Sam Rivera", "exclude_threads": ["Mum"]}}
    (run / "persona.json").write_text(json.dumps(manifest))  # the data set's manifest, as training copies it
    folder = export_run(run, tmp_path / "export", merge=False)

    info = json.loads((folder / "talklike.json").read_text())
    assert info["prompt"] == prompt and info["system_prompt"] == "You are Sam."
    assert not {"shaping", "me", "format_version"} & set(info) and "Mum" not in (folder / "talklike.json").read_text()
    history = [
        {"role": "user", "content": "hey"},
        {"role": "assistant", "content": "yo"},
        {"role": "assistant", "content": "sup"},
        {"role": "user", "content": "dinner?"},
    ]
    from_run, from_export = (
        build_prompt(load_chat_model(path, device="cpu"), history, "at 7") for path in (run, folder)
    )
    assert from_export.input_ids == from_run.input_ids
    assert from_run.messages == [
        {"role": "system", "content": "You are Sam."},  # 2 turns of context, as trained
        {"role": "user", "content": "dinner?|at 7"},
    ]
    clear_model_cache()


def test_card_names_a_hub_base_model(lora):
    source = read_run(lora.path)
    source.config.model = "Qwen/Qwen2.5-0.5B-Instruct"
    data = card_data(source, merged=False, model_id="alice/sam-bot", best_eval=1.5)
    assert data.base_model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert data.model_name == "sam-bot"


def test_failed_export_leaves_no_folder_and_disk_full_says_how_much(lora, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module, "_write_generation_config", disk_full)
    out = tmp_path / "exports" / "sam"
    with pytest.raises(UserError) as caught:
        export_run(lora.path, out, merge=False)
    message = str(caught.value)
    assert str(out) in message and "MB" in message and "free" in message
    assert not out.exists() and list((tmp_path / "exports").iterdir()) == []


def test_export_checks_free_space_before_writing(lora, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(UserError, match="needs about .* MB"):
        export_run(lora.path, tmp_path / "out", merge=True)
    assert not (tmp_path / "out").exists()


def test_export_refuses_unfinished_runs_and_occupied_folders(lora, tmp_path):
    unfinished = tmp_path / "unfinished"
    (unfinished / "final").mkdir(parents=True)
    (unfinished / "config.yaml").write_text((lora.path / "config.yaml").read_text())
    with pytest.raises(UserError, match="no trained model in final/"):
        export_run(unfinished, tmp_path / "out", merge=False)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        export_run(lora.path, occupied, merge=False)
    assert (occupied / "notes.txt").read_text() == "mine"
    export_run(lora.path, occupied, merge=False, overwrite=True)
    assert not (occupied / "notes.txt").exists() and (occupied / "adapter_model.safetensors").exists()


def test_a_run_saved_without_tokenizer_gets_the_base_tokenizer_and_template(lora, tmp_path):
    import shutil

    run = tmp_path / "old-run"
    shutil.copytree(lora.path, run)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (run / "final" / name).unlink(missing_ok=True)
    folder = export_run(run, tmp_path / "out", merge=False)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (
        tokenizer.chat_template
        and tokenizer("hey Sam").input_ids == AutoTokenizer.from_pretrained(lora.base)("hey Sam").input_ids
    )


def test_bad_samples_are_refused(lora, tmp_path):
    with pytest.raises(UserError, match="samples: item 1"):
        export_run(lora.path, tmp_path / "out", merge=False, samples=[{"prompt": "hi"}])


def _cli(argv):
    args = build_parser().parse_args(["export", *argv])
    return args.handler(args)


def test_cli_exports_and_reads_samples(lora, tmp_path, capsys):
    samples = tmp_path / "picked.jsonl"
    samples.write_text(json.dumps({"prompt": "u up?", "reply": "always lol"}) + "\n")
    result = _cli([str(lora.path), "--adapter", "--out", str(tmp_path / "cli"), "--samples", str(samples)])
    assert json.loads(capsys.readouterr().out) == result
    assert "always lol" in (tmp_path / "cli" / "README.md").read_text()
    with pytest.raises(UserError, match="--gguf: needs --merge"):
        _cli([str(lora.path), "--adapter", "--out", str(tmp_path / "x"), "--gguf", str(tmp_path / "m.gguf")])
    with pytest.raises(SystemExit):  # --merge and --adapter exclude each other
        _cli([str(lora.path), "--adapter", "--merge", "--out", str(tmp_path / "y")])


# ---- GGUF ---------------------------------------------------------------------------------------


def test_gguf_of_a_merged_llama_reads_back_with_the_same_weights_and_tokenizer(lora, merged_folder, tmp_path):
    gguf = pytest.importorskip("gguf")
    from safetensors.torch import load_file

    from training.export.gguf import chat_template_for_gguf, gguf_status, permute_for_rope, write_gguf

    assert gguf_status(merged_folder)["supported"]
    path = write_gguf(merged_folder, tmp_path / "sam.gguf", outtype="f32")
    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    config = json.loads((merged_folder / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(merged_folder)
    assert fields["general.architecture"] == "llama"
    assert fields["llama.block_count"] == config["num_hidden_layers"]
    assert fields["llama.attention.head_count_kv"] == config["num_key_value_heads"]
    assert fields["tokenizer.ggml.tokens"] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.add_bos_token"] is False  # this tokenizer adds no BOS; llama.cpp must not either
    # The template as rendered, without TRL's training-only {% generation %} markers.
    assert (
        fields["tokenizer.chat_template"] == chat_template_for_gguf(tokenizer.chat_template) != tokenizer.chat_template
    )
    assert "generation %}" not in fields["tokenizer.chat_template"]
    assert len(fields["tokenizer.ggml.merges"]) == len(
        json.loads((merged_folder / "tokenizer.json").read_text())["model"]["merges"]
    )

    weights = {}
    for shard in merged_folder.glob("*.safetensors"):
        weights.update(load_file(shard))
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    assert len(tensors) == len(weights)
    embed = torch.from_numpy(tensors["token_embd.weight"].data.copy())
    assert torch.equal(embed, weights["model.embed_tokens.weight"])
    query = torch.from_numpy(tensors["blk.0.attn_q.weight"].data.copy())
    hf_query = weights["model.layers.0.self_attn.q_proj.weight"]
    assert torch.equal(query, permute_for_rope(hf_query, config["num_attention_heads"], config["num_attention_heads"]))
    assert not torch.equal(query, hf_query)  # llama.cpp's RoPE layout differs from transformers'
    assert not (tmp_path / ".sam.gguf.partial").exists()


def test_gguf_status_explains_what_to_run_when_talklike_cannot_convert(adapter_folder, tmp_path_factory, tmp_path):
    pytest.importorskip("gguf")
    from training.export.gguf import gguf_status, write_gguf

    status = gguf_status(adapter_folder)
    assert not status["supported"] and "merged" in status["reason"]
    assert "convert_hf_to_gguf.py" in status["command"] and str(adapter_folder) in status["command"]
    seq2seq = export_run(adapter_run(tmp_path_factory, arch="blenderbot").path, tmp_path / "bb", merge=True)
    assert "not Llama" in gguf_status(seq2seq)["reason"]
    with pytest.raises(UserError, match="convert_hf_to_gguf.py"):
        write_gguf(seq2seq, tmp_path / "bb.gguf")
    assert not (tmp_path / "bb.gguf").exists()


def test_model_card_recipe_leaves_out_settings_that_are_off():
    from training.export.modelcard import _recipe_table
    from training.train.config import RunConfig

    by_epochs = _recipe_table(RunConfig(method="lora", warmup_ratio=0.1))
    assert "| epochs | 3.0 |" in by_epochs and "| warmup_ratio | 0.1 |" in by_epochs
    assert not any(f"| {name} |" in by_epochs for name in ("max_steps", "neftune_noise_alpha", "warmup_steps"))
    by_steps = _recipe_table(RunConfig(method="qlora", max_steps=60, neftune_noise_alpha=5.0))
    assert (
        "| max_steps | 60 |" in by_steps
        and "| neftune_noise_alpha | 5.0 |" in by_steps
        and "| epochs |" not in by_steps
    )
