"""GGUF types and metadata, and the Ollama Modelfile beside every GGUF: its TEMPLATE, rendered as Go's
text/template renders it (tests/gotemplate.py), gives exactly what `apply_chat_template` gives for the
same conversation, for ChatML (also with a built-in default system prompt), Llama 3 and every fallback
template of the seeds."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.export_runs import adapter_run
from tests.gotemplate import GoTemplateError, render
from training.chat.serving import parse_decoding
from training.errors import UserError
from training.export.modelfile import export_for_ollama, match_template, modelfile_text
from training.export.save import export_run
from training.templates import FALLBACK_TEMPLATES

gguf = pytest.importorskip("gguf")

# Meta-Llama-3-8B-Instruct's template, and SmolLM2/Qwen-style ChatML that adds a default system prompt.
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_DEFAULT_SYSTEM = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TEMPLATES = {
    **{name: (text, None) for name, text in FALLBACK_TEMPLATES.items()},
    "llama3": (LLAMA3, "<|begin_of_text|>"),
    "chatml-default-system": (CHATML_DEFAULT_SYSTEM, None),
}
FAMILY = {"chatml-default-system": "chatml"}
CONVERSATIONS = [
    [{"role": "user", "content": "hey u up?"}],
    [
        {"role": "system", "content": "You are Sam Rivera. Text like Sam."},
        {"role": "user", "content": "movie tonight?"},
    ],
    [
        {"role": "user", "content": "did you see the game"},
        {"role": "assistant", "content": "omg yes\nthat ending"},
        {"role": "user", "content": "right?? 😅 {{ not a template }}"},
        {"role": "assistant", "content": "lol"},
        {"role": "user", "content": "ok see you at 7"},
    ],
    [
        {"role": "system", "content": "Persona."},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ],
]


@pytest.fixture(scope="module")
def tokenizer():
    from training.tiny import builtin_corpus, train_tokenizer

    return train_tokenizer(builtin_corpus(), 512)


def ollama_prompt(go_template: str, messages: list[dict], default_system: str) -> str:
    """What Ollama renders: SYSTEM from the Modelfile goes first when the chat has no system message."""
    if default_system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": default_system}, *messages]
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return render(
        go_template, {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages], "System": system}
    )


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_the_modelfile_template_renders_like_the_chat_template(tokenizer, name):
    template, bos = TEMPLATES[name]
    tokenizer.chat_template, tokenizer.bos_token = template, bos or ("<s>" if name == "mistral_inst" else None)
    try:
        matched = match_template(tokenizer)
        assert matched.family is not None and matched.family.name == FAMILY.get(name, name)
        for messages in CONVERSATIONS:
            expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            # llama.cpp adds the BOS token itself (the GGUF says so), so the TEMPLATE leaves it out.
            assert matched.bos + ollama_prompt(matched.go, messages, matched.default_system) == expected
        assert tokenizer.eos_token in matched.stops
    finally:
        tokenizer.bos_token = None


def test_an_unknown_template_gets_no_template_and_says_so(tokenizer):
    tokenizer.chat_template = "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}{% endfor %}<<assistant>>"
    matched = match_template(tokenizer)
    assert matched.family is None and matched.go is None and matched.stops == [tokenizer.eos_token]
    text = modelfile_text("m.gguf", matched, "", parse_decoding("Greedy"))
    assert "TEMPLATE" not in text.replace("# No TEMPLATE", "") and "Ollama reads the GGUF's own" in text


def test_parameters_come_from_the_decoding_settings(tokenizer):
    tokenizer.chat_template = FALLBACK_TEMPLATES["chatml"]
    matched = match_template(tokenizer)
    creative = modelfile_text("sam.gguf", matched, "You are Sam.", parse_decoding("Creative"))
    assert creative.splitlines()[1] == "FROM ./sam.gguf" and 'SYSTEM """You are Sam."""' in creative
    for line in (
        "PARAMETER temperature 1",
        "PARAMETER top_p 0.95",
        "PARAMETER top_k 0",
        "PARAMETER repeat_penalty 1.15",
        "PARAMETER num_predict 128",
        "PARAMETER seed 0",
        'PARAMETER stop "<|im_end|>"',
        'PARAMETER stop "<|endoftext|>"',
        "# no_repeat_ngram_size 3 has no Ollama equivalent",
    ):
        assert line in creative.splitlines()
    greedy = modelfile_text("sam.gguf", matched, "", parse_decoding('{"max_new_tokens": 40}'))
    assert "PARAMETER temperature 0" in greedy and "top_p" not in greedy and "PARAMETER num_predict 40" in greedy
    with pytest.raises(UserError, match='system prompt: contains """'):
        modelfile_text("sam.gguf", matched, 'say """hi"""', parse_decoding("Greedy"))


def test_the_go_renderer_refuses_what_it_does_not_know():
    assert render("{{- range $i, $m := .M }}{{ if $i }}, {{ end }}{{ $m }}{{ end -}}  !", {"M": ["a", "b"]}) == "a, b!"
    assert (
        render("{{ $x := 1 }}{{ range .M }}{{ $x = . }}{{ end }}{{ $x }}", {"M": [2, 3]}) == "3"
    )  # assignment reaches out
    for unknown in ("{{ .M | printf }}", '{{ template "x" }}', "{{ trim .M }}", "{{ if .M }}open"):
        with pytest.raises(GoTemplateError):
            render(unknown, {"M": "x"})


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed (apt-get install golang-go)")
def test_the_go_renderer_agrees_with_go_itself(tmp_path):
    from training.export.modelfile import FAMILIES

    program = tmp_path / "main.go"
    program.write_text(GO_PROGRAM)
    cases = [
        {
            "Template": family.go.replace("{eos}", "</s>"),
            "Messages": [{"Role": m["role"], "Content": m["content"]} for m in conversation],
            "System": "\n\n".join(m["content"] for m in conversation if m["role"] == "system"),
        }
        for family in FAMILIES
        for conversation in CONVERSATIONS
    ]
    done = subprocess.run(
        ["go", "run", str(program)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"GOCACHE": str(tmp_path / "cache"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    ours = [render(case["Template"], case) for case in cases]
    assert json.loads(done.stdout) == ours


GO_PROGRAM = """package main

import (
\t"encoding/json"
\t"os"
\t"strings"
\t"text/template"
)

type Message struct{ Role, Content string }
type Case struct {
\tTemplate string
\tMessages []Message
\tSystem   string
}

func main() {
\tvar cases []Case
\tif err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
\t\tpanic(err)
\t}
\touts := []string{}
\tfor _, c := range cases {
\t\tvar out strings.Builder
\t\tdata := map[string]any{"Messages": c.Messages, "System": c.System}
\t\tif err := template.Must(template.New("").Parse(c.Template)).Execute(&out, data); err != nil {
\t\t\tpanic(err)
\t\t}
\t\touts = append(outs, out.String())
\t}
\tjson.NewEncoder(os.Stdout).Encode(outs)
}
"""


# ---- GGUF + Modelfile from a real export ---------------------------------------------------------


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    run = adapter_run(tmp_path_factory)
    return export_run(run.path, tmp_path_factory.mktemp("gguf-export") / "merged", merge=True)


@pytest.mark.parametrize(
    "quant, matrix_type", [("f16", "F16"), ("bf16", "BF16"), ("q8_0", "Q8_0"), ("q5_1", "Q5_1"), ("q4_0", "Q4_0")]
)
def test_each_quant_writes_its_types_the_template_and_the_end_of_turn(merged, tmp_path, quant, matrix_type):
    made = export_for_ollama(merged, tmp_path / f"sam-{quant}.gguf", quant, parse_decoding("Balanced"))
    assert made["commands"] == [] and made["template"] == "chatml"
    reader = gguf.GGUFReader(str(made["gguf"]))
    types = {tensor.name: tensor.tensor_type.name for tensor in reader.tensors}
    assert types["blk.0.attn_q.weight"] == matrix_type and types["blk.0.attn_norm.weight"] == "F32"
    assert types["output.weight"] == (
        "Q8_0" if quant in ("q5_1", "q4_0") else matrix_type
    )  # the output layer keeps 8 bits
    fields = reader.fields
    template = bytes(fields["tokenizer.chat_template"].parts[-1]).decode()
    assert "<|im_start|>" in template and "generation %}" not in template
    tokens = [bytes(fields["tokenizer.ggml.tokens"].parts[i]).decode() for i in fields["tokenizer.ggml.tokens"].data]
    assert tokens[int(fields["tokenizer.ggml.eot_token_id"].parts[-1][0])] == "<|im_end|>"
    assert not fields["tokenizer.ggml.add_bos_token"].parts[-1][0]  # ChatML starts without BOS, as in training
    modelfile = (tmp_path / "Modelfile").read_text()
    assert f"FROM ./sam-{quant}.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert not (tmp_path / f".sam-{quant}.gguf.partial").exists()


def test_k_quants_write_f16_and_the_exact_llama_quantize_command(merged, tmp_path):
    made = export_for_ollama(merged, tmp_path / "sam.gguf", "q4_k_m", parse_decoding("Greedy"))
    assert made["commands"] == [f"llama-quantize {tmp_path / 'sam.gguf'} {tmp_path / 'sam-Q4_K_M.gguf'} Q4_K_M"]
    assert gguf.GGUFReader(str(made["gguf"])).tensors[1].tensor_type.name in ("F16", "F32")
    assert "FROM ./sam-Q4_K_M.gguf" in (tmp_path / "Modelfile").read_text()
    with pytest.raises(UserError, match="quant: 'q3_x'; expected one of"):
        export_for_ollama(merged, tmp_path / "x.gguf", "q3_x", parse_decoding("Greedy"))


def test_other_architectures_get_the_converter_command_and_still_a_modelfile(tmp_path, tmp_path_factory):
    run = adapter_run(tmp_path_factory, arch="gpt2")
    folder = export_run(run.path, tmp_path / "gpt2-merged", merge=True)
    made = export_for_ollama(folder, tmp_path / "out" / "bot.gguf", "q4_0", parse_decoding("Greedy"))
    assert made["gguf"] is None and not (tmp_path / "out" / "bot.gguf").exists()
    assert (
        f"convert_hf_to_gguf.py {folder} --outfile {tmp_path / 'out' / 'bot.gguf'} --outtype f16" in made["commands"][0]
    )
    assert (
        made["commands"][1]
        == f"llama-quantize {tmp_path / 'out' / 'bot.gguf'} {tmp_path / 'out' / 'bot-Q4_0.gguf'} Q4_0"
    )
    assert "FROM ./bot-Q4_0.gguf" in (tmp_path / "out" / "Modelfile").read_text()
