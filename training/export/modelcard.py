"""The model card (README.md) and loss-curve plot that go with every export.

The card says what a person needs before using or sharing the model: what it was trained from and
how (hyperparameters from config.yaml), how much data (counts only: no training text ever lands
here, only replies the user picked as samples), how well (best eval loss), how to load it, and
that weights trained on private chats can repeat them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.settings import is_off

LOSS_PLOT = "loss_curve.png"
PRIVACY_WARNING = (
    "> **Privacy warning.** This model was fine-tuned on private chat messages. Language models can "
    "memorise parts of their training data and repeat them when prompted the right way: names, phone "
    "numbers, addresses, whole private conversations, including what *other people* wrote in those chats. "
    "Keep the repository private unless everyone in those chats agreed to it being shared, and treat "
    "the weights as being as sensitive as the chats themselves."
)
# Settings shown in the card, in this order; method-specific ones only when the method uses them.
# Paths (train_file, output_dir) and the run's name are left out: they can hold names and home folders.
RECIPE_FIELDS = (
    "method",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "quantization_bits",
    "adalora_init_r",
    "adalora_target_r",
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accumulation",
    "learning_rate",
    "scheduler",
    "warmup_steps",
    "warmup_ratio",
    "weight_decay",
    "optimizer",
    "max_length",
    "completion_only_loss",
    "packing",
    "padding_free",
    "neftune_noise_alpha",
    "dtype",
    "seed",
    "chat_template",
    "preset",
)
_ONLY_FOR = {
    "lora_r": ("lora", "dora", "rslora", "qlora"),
    "lora_alpha": ("lora", "dora", "rslora", "qlora", "adalora"),
    "lora_dropout": ("lora", "dora", "rslora", "qlora", "adalora"),
    "target_modules": ("lora", "dora", "rslora", "qlora", "adalora"),
    "quantization_bits": ("qlora",),
    "adalora_init_r": ("adalora",),
    "adalora_target_r": ("adalora",),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check_samples(samples: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """The sample replies to show, each {"prompt": ..., "reply": ...} with text in both."""
    checked = []
    for number, sample in enumerate(samples or [], start=1):
        if not (
            isinstance(sample, dict)
            and all(isinstance(sample.get(k), str) and sample[k].strip() for k in ("prompt", "reply"))
        ):
            raise UserError(f'samples: item {number}: expected {{"prompt": text, "reply": text}}, got {sample!r:.80}')
        checked.append({"prompt": sample["prompt"].strip(), "reply": sample["reply"].strip()})
    return checked


def is_hub_id(name: str) -> bool:
    """A Hub model id (org/name or a legacy bare name), as opposed to a local folder or offline-small/-tiny."""
    from training.models import BUILT_ON_FIRST_USE

    return bool(_HUB_ID.match(name)) and name not in BUILT_ON_FIRST_USE and not Path(name).expanduser().exists()


def write_model_card(
    source, folder: Path, merged: bool, model_id: str, samples: list[dict[str, str]], report_examples: bool = False
) -> Path:
    """README.md (+ loss_curve.png when the run logged losses) in `folder`; returns the README path.

    The run's persona report, if it has one, adds its numbers; its side-by-side examples quote held-out
    chats, so they go in only with `report_examples` (and only if the report was made with them).
    """
    from huggingface_hub import ModelCard

    metrics = source.metrics()
    has_plot = write_loss_plot(metrics, folder / LOSS_PLOT)
    best_eval = _best(metrics, "eval_loss", source.status.get("best_eval_loss"))
    data = card_data(source, merged, model_id, best_eval)
    body = "\n\n".join(
        part
        for part in (
            f"# {model_id.split('/')[-1]}",
            _summary(source, merged),
            PRIVACY_WARNING,
            "## How to use\n\n" + usage_snippet(source, merged, model_id),
            "## Training recipe\n\n" + _recipe_table(source.config),
            "## Training data\n\n" + _data_summary(source),
            "## Results\n\n" + _results(source, metrics, best_eval, has_plot),
            _report_section(source, report_examples),
            _samples_section(samples),
            _versions(),
        )
        if part
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")
    path = folder / "README.md"
    card.save(path)
    return path


def card_data(source, merged: bool, model_id: str, best_eval: float | None):
    from huggingface_hub import EvalResult, ModelCardData

    config = source.config
    pipeline = "text2text-generation" if source.seq2seq else "text-generation"
    adapter = source.adapter and not merged
    tags = ["talklike", "persona", "chat", config.method]
    tags += ["lora"] if config.method != "full" and "lora" not in tags else []
    tags += ["peft"] if adapter else ["merged"] if source.adapter else []
    results = None
    if best_eval is not None:
        results = [
            EvalResult(
                task_type=pipeline,
                dataset_type="private",
                dataset_name="private chat history",
                dataset_split="validation",
                metric_type="loss",
                metric_name="eval loss",
                metric_value=round(best_eval, 4),
            )
        ]
    return ModelCardData(
        base_model=config.model if is_hub_id(config.model) else None,
        library_name="peft" if adapter else "transformers",
        pipeline_tag=pipeline,
        tags=tags,
        model_name=model_id.split("/")[-1],
        eval_results=results,
    )


def _summary(source, merged: bool) -> str:
    base = source.config.model if is_hub_id(source.config.model) else f"a local model ({Path(source.base_model).name})"
    kind = (
        "the full fine-tuned model"
        if not source.adapter
        else f"the base model with the {source.config.method} adapter merged into its weights"
        if merged
        else f"a {source.config.method} adapter; loading it also downloads the base model"
    )
    text = f"A chat persona fine-tuned with talklike from **{base}**. This repository holds {kind}."
    if not is_hub_id(source.config.model) and source.adapter and not merged:
        text += " The base is not on the Hub, so this adapter loads only where that folder exists; export merged to share it."
    return text


def usage_snippet(source, merged: bool, model_id: str) -> str:
    system = source.prompt.system_prompt
    if source.seq2seq:
        loader = "AutoModelForSeq2SeqLM" if merged or not source.adapter else "AutoPeftModelForSeq2SeqLM"
        separator = source.prompt.separator
        prompt = f"inputs = tokenizer({separator!r}.join(['hey!', 'how was your day?']), return_tensors='pt')"
        generate = "reply = model.generate(**inputs, max_new_tokens=60)\nprint(tokenizer.decode(reply[0], skip_special_tokens=True))"
    else:
        loader = "AutoModelForCausalLM" if merged or not source.adapter else "AutoPeftModelForCausalLM"
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": "hey, how was your day?"}
        ]
        prompt = (
            f"messages = {json.dumps(messages, ensure_ascii=False)}\n"
            "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt', return_dict=True)"
        )
        generate = (
            "reply = model.generate(**inputs, max_new_tokens=60, do_sample=True, temperature=0.8)\n"
            "print(tokenizer.decode(reply[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True))"
        )
    package = "peft" if loader.startswith("AutoPeft") else "transformers"
    code = (
        f"from {package} import {loader}\nfrom transformers import AutoTokenizer\n\n"
        f"model_id = {json.dumps(model_id)}\nmodel = {loader}.from_pretrained(model_id)\n"
        f"tokenizer = AutoTokenizer.from_pretrained(model_id)\n{prompt}\n{generate}"
    )
    install = "pip install transformers peft" if package == "peft" else "pip install transformers"
    return f"```bash\n{install}\n```\n\n```python\n{code}\n```"


def _recipe_table(config) -> str:
    values = config.to_dict()
    rows = []
    for name in RECIPE_FIELDS:
        if name in _ONLY_FOR and config.method not in _ONLY_FOR[name]:
            continue
        value = values.get(name)
        skipped = name == "epochs" and config.max_steps  # max_steps overrides epochs
        if skipped or value in (None, "") or is_off(config, name):
            continue
        rows.append(f"| {name} | {_cell(value)} |")
    return "| setting | value |\n|---|---|\n" + "\n".join(rows)


def _cell(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text.replace("|", "\\|")


def dataset_counts(source) -> dict[str, int | float | None]:
    """How many examples trained and validated: counts only, read from line counts and status.json."""
    config = source.config
    train = source.status.get("examples")
    validation = _count_rows(config.validation_file) if config.validation_file else None
    if train is None and config.train_file:
        train = _count_rows(config.train_file)
    return {
        "train_examples": train,
        "validation_examples": validation,
        "validation_split": config.validation_split or None,
    }


def _count_rows(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def _data_summary(source) -> str:
    counts = dataset_counts(source)
    lines = [
        "Private chat history, prepared with talklike into prompt/reply pairs (the replies are the persona's own messages).\n"
    ]
    if counts["train_examples"] is not None:
        lines.append(f"- training examples: {counts['train_examples']:,}")
    if counts["validation_examples"] is not None:
        lines.append(f"- validation examples: {counts['validation_examples']:,}")
    elif counts["validation_split"]:
        lines.append(f"- validation: {counts['validation_split']:.0%} of the examples held out")
    lines.append("\nThe conversations themselves are not published here.")
    return "\n".join(lines)


def _best(metrics: list[dict[str, Any]], key: str, fallback: float | None) -> float | None:
    values = [r[key] for r in metrics if isinstance(r.get(key), (int, float))]
    return min(values) if values else fallback


def _results(source, metrics: list[dict[str, Any]], best_eval: float | None, has_plot: bool) -> str:
    lines = []
    if best_eval is not None:
        lines.append(f"- best validation loss: **{best_eval:.4f}**")
    losses = [r for r in metrics if isinstance(r.get("loss"), (int, float))]
    if losses:
        lines.append(
            f"- training loss: {losses[0]['loss']:.4f} at step {losses[0].get('step')} → {losses[-1]['loss']:.4f} at step {losses[-1].get('step')}"
        )
    if source.status.get("step") is not None:
        lines.append(f"- optimizer steps: {source.status['step']}")
    if has_plot:
        lines.append(f"\n![training and validation loss]({LOSS_PLOT})")
    return "\n".join(lines) or "No metrics were logged for this run."


def _report_section(source, report_examples: bool) -> str:
    from training.report.build import load_report
    from training.report.render import card_section

    report = load_report(source.path)
    return card_section(report, include_examples=report_examples) if report else ""


def _samples_section(samples: list[dict[str, str]]) -> str:
    if not samples:
        return ""
    parts = ["## Sample replies\n\nPicked by the person who trained this model."]
    for sample in samples:
        prompt = sample["prompt"].replace("\n", "\n> ")
        reply = sample["reply"].replace("\n", "\n> ")
        parts.append(f"> **them:** {prompt}\n>\n> **model:** {reply}")
    return "\n\n".join(parts)


def _versions() -> str:
    import importlib.metadata as metadata

    names = ("transformers", "peft", "torch", "trl", "huggingface_hub")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "## Framework versions\n\n" + ", ".join(found)


def write_loss_plot(metrics: list[dict[str, Any]], path: Path, size: tuple[int, int] = (800, 450)) -> bool:
    """A PNG of training loss (and validation loss) against step; False when nothing was logged.

    Drawn with Pillow, which transformers already needs, rather than adding matplotlib for one chart.
    """
    from PIL import Image, ImageDraw, ImageFont

    series = {
        key: [
            (r["step"], r[key])
            for r in metrics
            if isinstance(r.get(key), (int, float)) and isinstance(r.get("step"), (int, float))
        ]
        for key in ("loss", "eval_loss")
    }
    points = series["loss"] + series["eval_loss"]
    if not points:
        return False
    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    low_step, high_step = min(p[0] for p in points), max(p[0] for p in points)
    low_loss, high_loss = min(p[1] for p in points), max(p[1] for p in points)
    step_span, loss_span = (high_step - low_step) or 1, (high_loss - low_loss) or 1

    def at(step: float, loss: float) -> tuple[float, float]:
        x = left + (step - low_step) / step_span * (width - left - right)
        return x, top + (high_loss - loss) / loss_span * (height - top - bottom)

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.rectangle([left, top, width - right, height - bottom], outline="#888888")
    for fraction in (0, 0.5, 1):  # three labelled ticks per axis keep it readable at any scale
        loss = low_loss + fraction * loss_span
        step = low_step + fraction * step_span
        draw.text((5, at(low_step, loss)[1] - 7), f"{loss:.3f}", fill="black", font=font)
        draw.text((at(step, low_loss)[0] - 10, height - bottom + 8), f"{step:g}", fill="black", font=font)
    draw.text((width // 2 - 20, height - 22), "step", fill="black", font=font)
    colors = {"loss": "#1f77b4", "eval_loss": "#ff7f0e"}
    for number, (key, label) in enumerate((("loss", "training loss"), ("eval_loss", "validation loss"))):
        line = [at(*point) for point in sorted(series[key])]
        if len(line) > 1:
            draw.line(line, fill=colors[key], width=2)
        for x, y in line if key == "eval_loss" or len(line) == 1 else []:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colors[key])
        if line:
            draw.text((left + 10 + number * 160, 12), label, fill=colors[key], font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return True
