"""An Ollama `Modelfile` beside every GGUF: FROM, a TEMPLATE that renders chats exactly as the model's
own chat template did in training, every stop string it needs, the persona's SYSTEM prompt, and
PARAMETERs from the chosen decoding settings.

A Jinja chat template cannot be translated to Ollama's Go template in general, so talklike knows a
few template families (ChatML, Llama 3 and the seeds' fallback formats in training/templates.py),
each as a Go template plus the same format written in Python. A family is used only when its
Python rendering equals `apply_chat_template` on probe conversations; otherwise the Modelfile has
no TEMPLATE (Ollama then guesses from the GGUF's own template) and says so. Lost templates and
stop tokens are why exported models loop or never stop in Ollama (Ollama #8363, #6823).

The Go templates read Ollama's template values: `.Messages` (each `.Role`, `.Content`, system
messages included) and `.System` (the system messages joined). No beginning-of-sequence text is
written in them: llama.cpp adds BOS itself when the GGUF says so (gguf.py decides from the template).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import UserError

PROBES = (  # conversations that tell the families apart and check every role and turn boundary
    [{"role": "user", "content": "hey, you up?"}],
    [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": "hey"},
        {"role": "assistant", "content": "yo what's up"},
        {"role": "user", "content": "movie tonight?"},
    ],
)
ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)


@dataclass(frozen=True)
class TemplateFamily:
    name: str
    go: str  # Ollama TEMPLATE; "{eos}" stands for the tokenizer's EOS text
    render: Callable[[list[dict[str, str]], str], str]  # the same format in Python: (messages, eos) -> prompt
    stops: tuple[str, ...]  # text that ends the bot's turn (the EOS token is added to these)


def _system_folded(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    if messages and messages[0]["role"] == "system":
        first = messages[1]
        return [{"role": first["role"], "content": messages[0]["content"] + "\n\n" + first["content"]}, *messages[2:]]
    return messages


def _chatml(messages, eos):
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def _llama3(messages, eos):
    turns = "".join(
        f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>" for m in messages
    )
    return turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _alpaca(messages, eos):
    head = messages[0]["content"] + "\n\n" if messages[0]["role"] == "system" else ALPACA_PREAMBLE + "\n\n"
    body = {"user": "### Instruction:\n{}\n\n", "assistant": "### Response:\n{}" + eos + "\n\n"}
    return (
        head + "".join(body[m["role"]].format(m["content"]) for m in messages if m["role"] in body) + "### Response:\n"
    )


def _openchatkit(messages, eos):
    body = {"system": "{}\n", "user": "<human>: {}\n", "assistant": "<bot>: {}" + eos + "\n"}
    return "".join(body[m["role"]].format(m["content"]) for m in messages) + "<bot>:"


def _question_answer(messages, eos):
    parts = []
    for index, message in enumerate(_system_folded(messages)):
        if message["role"] == "user":
            parts.append(("\n" if index else "") + f"Question: {message['content']}. Answer:")
        else:
            parts.append(f" {message['content']}{eos}")
    return "".join(parts)


def _mistral_inst(messages, eos):
    body = {"user": "[INST] {} [/INST]", "assistant": " {}" + eos}
    return "".join(body[m["role"]].format(m["content"]) for m in _system_folded(messages))


# Go's text/template: {{- and -}} trim the whitespace (newlines too) on that side of an action.
_FIRST_USER = "{{ if not $started }}{{ if $.System }}{{ $.System }}\n\n{{ end }}{{ end }}"
FAMILIES: tuple[TemplateFamily, ...] = (
    TemplateFamily(
        "chatml",
        ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"),
        _chatml,
        ("<|im_end|>", "<|im_start|>"),
    ),
    TemplateFamily(
        "llama3",
        (
            "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
            "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
        _llama3,
        ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
    ),
    TemplateFamily(
        "alpaca",
        (
            "{{- if .System }}{{ .System }}\n\n{{ else }}" + ALPACA_PREAMBLE + "\n\n{{ end }}"
            '{{- range .Messages }}{{ if eq .Role "user" }}### Instruction:\n{{ .Content }}\n\n'
            '{{ else if eq .Role "assistant" }}### Response:\n{{ .Content }}{eos}\n\n{{ end }}{{ end }}### Response:\n'
        ),
        _alpaca,
        ("### Instruction:",),
    ),
    TemplateFamily(
        "openchatkit",
        (
            '{{- range .Messages }}{{ if eq .Role "system" }}{{ .Content }}\n'
            '{{ else if eq .Role "user" }}<human>: {{ .Content }}\n{{ else }}<bot>: {{ .Content }}{eos}\n{{ end }}{{ end }}<bot>:'
        ),
        _openchatkit,
        ("<human>:",),
    ),
    TemplateFamily(
        "question_answer",
        (  # the system prompt is folded into the first question
            '{{- $started := false }}{{ range .Messages }}{{ if eq .Role "user" }}{{ if $started }}\n{{ end }}'
            "Question: " + _FIRST_USER + "{{ .Content }}. Answer:{{ $started = true }}"
            '{{ else if eq .Role "assistant" }} {{ .Content }}{eos}{{ $started = true }}{{ end }}{{ end }}'
        ),
        _question_answer,
        ("Question:",),
    ),
    TemplateFamily(
        "mistral_inst",
        (
            '{{- $started := false }}{{ range .Messages }}{{ if eq .Role "user" }}[INST] '
            + _FIRST_USER
            + "{{ .Content }} [/INST]{{ $started = true }}"
            '{{ else if eq .Role "assistant" }} {{ .Content }}{eos}{{ $started = true }}{{ end }}{{ end }}'
        ),
        _mistral_inst,
        ("[INST]",),
    ),
)


@dataclass
class OllamaTemplate:
    """What the Modelfile needs from the model's chat template."""

    family: TemplateFamily | None  # None: no known family renders like this template
    go: str | None
    stops: list[str]
    default_system: str  # a system prompt the template inserts when none is given (Qwen, SmolLM2)
    bos: str  # BOS text the template starts with ("" if none); llama.cpp adds it as a token


def match_template(tokenizer: Any) -> OllamaTemplate:
    """The family whose rendering equals this tokenizer's chat template on every probe, if any."""
    eos = tokenizer.eos_token or ""
    bos = tokenizer.bos_token or ""

    def jinja(messages) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    try:
        rendered = [jinja(probe) for probe in PROBES]
    except Exception:  # noqa: BLE001 - a template that cannot render the probes matches no family
        return OllamaTemplate(None, None, _eos_stops(eos), "", "")
    # A template may write BOS first (Llama 3, Mistral); some tokenizers call the template's own first
    # marker BOS (SmolLM2's <|im_start|>). Reading it as template text is tried first.
    prefixes = [""] + ([bos] if bos and all(text.startswith(bos) for text in rendered) else [])
    for prefix in prefixes:
        for family in FAMILIES:
            stops, go = [*family.stops, *_eos_stops(eos)], family.go.replace("{eos}", eos)
            if all(text == prefix + family.render(probe, eos) for text, probe in zip(rendered, PROBES)):
                return OllamaTemplate(family, go, stops, "", prefix)
            default = _default_system(family, rendered[0], prefix, eos)
            if default is not None and rendered[1] == prefix + family.render(PROBES[1], eos):
                return OllamaTemplate(family, go, stops, default, prefix)
    return OllamaTemplate(None, None, _eos_stops(eos), "", prefixes[-1])


def _default_system(family: TemplateFamily, rendered: str, prefix: str, eos: str) -> str | None:
    """The system prompt a ChatML template adds by itself to a chat without one, if it does."""
    if family.name != "chatml" or not rendered.startswith(prefix + "<|im_start|>system\n"):
        return None
    head = len(prefix + "<|im_start|>system\n")
    end = rendered.find("<|im_end|>\n", head)
    system = rendered[head:end] if end >= 0 else None
    with_system = [{"role": "system", "content": system}, *PROBES[0]] if system is not None else None
    return system if with_system and rendered == prefix + family.render(with_system, eos) else None


def _eos_stops(eos: str) -> list[str]:
    return [eos] if eos else []


def modelfile_text(gguf_name: str, template: OllamaTemplate, system_prompt: str, decoding) -> str:
    """The Modelfile: FROM the GGUF beside it, TEMPLATE, SYSTEM, stop strings and decoding PARAMETERs."""
    lines = [
        "# Written by talklike. Run: ollama create NAME -f Modelfile && ollama run NAME",
        f"FROM ./{gguf_name}",
    ]
    if template.go is not None:
        lines.append(f'TEMPLATE """{template.go}"""')
    else:
        lines.append(
            "# No TEMPLATE: this chat template is not one talklike can translate; Ollama reads the GGUF's own."
        )
    system = system_prompt or template.default_system
    if system:
        if '"""' in system:
            raise UserError('system prompt: contains """, which a Modelfile cannot hold; remove it and export again')
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in dict.fromkeys(template.stops)]
    lines += _parameters(decoding)
    return "\n".join(lines) + "\n"


def _parameters(decoding) -> list[str]:
    """Ollama's names for the decoding settings; greedy is temperature 0."""
    lines = [f"PARAMETER num_predict {decoding.max_new_tokens}"]
    if not decoding.do_sample:
        lines.append("PARAMETER temperature 0")
    else:
        lines += [
            f"PARAMETER temperature {decoding.temperature:g}",
            f"PARAMETER top_p {decoding.top_p:g}",
            f"PARAMETER top_k {decoding.top_k}",
        ]
    if decoding.repetition_penalty != 1:
        lines.append(f"PARAMETER repeat_penalty {decoding.repetition_penalty:g}")
    if decoding.seed is not None and decoding.do_sample:
        lines.append(f"PARAMETER seed {decoding.seed}")
    if decoding.no_repeat_ngram_size:
        lines.append(f"# no_repeat_ngram_size {decoding.no_repeat_ngram_size} has no Ollama equivalent")
    return lines


def write_modelfile(
    model_folder: str | os.PathLike, gguf_file: str | os.PathLike, decoding
) -> tuple[Path, OllamaTemplate]:
    """Write `Modelfile` beside `gguf_file` for the model in `model_folder` (its tokenizer and talklike.json)."""
    from transformers import AutoTokenizer

    folder, gguf_path = Path(model_folder), Path(gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{folder}: the tokenizer has no chat template, so no Modelfile TEMPLATE can match it")
    info_path = folder / "talklike.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    template = match_template(tokenizer)
    text = modelfile_text(gguf_path.name, template, info.get("system_prompt") or "", decoding)
    out = gguf_path.parent / "Modelfile"
    temp = out.with_name(".Modelfile.partial")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, out)
    return out, template


def export_for_ollama(
    model_folder: str | os.PathLike, gguf_file: str | os.PathLike, quant: str, decoding
) -> dict[str, Any]:
    """A GGUF of type `quant` (when talklike can write it) and its Modelfile beside it.

    Returns {"gguf": path or None, "modelfile": path, "template": family or None, "commands": [...]}:
    what to run, in order, where talklike cannot finish the job itself (llama.cpp's converter for
    other architectures, llama-quantize for k-quants); the Modelfile names the file they end with.
    """
    from training.export import gguf

    quant = quant.lower()
    if quant not in gguf.QUANTS + gguf.K_QUANTS:
        raise UserError(f"quant: {quant!r}; expected one of {', '.join(gguf.QUANTS + gguf.K_QUANTS)}")
    folder, target = Path(model_folder), Path(gguf_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    if gguf.gguf_status(folder)["supported"]:
        first_type = quant if quant in gguf.QUANTS else "f16"  # k-quants start from f16
        gguf_path = gguf.write_gguf(folder, target, first_type)
    else:
        first_type = quant if quant in gguf.CONVERTER_TYPES else "f16"
        gguf_path = None
        commands.append(gguf.converter_command(folder, target, first_type))
    final = target
    if quant != first_type:
        commands.append(gguf.llama_quantize_command(target, quant))
        final = gguf.quantized_path(target, quant)
    modelfile, template = write_modelfile(folder, final, decoding)
    return {
        "gguf": gguf_path,
        "modelfile": modelfile,
        "template": template.family.name if template.family else None,
        "commands": commands,
    }
