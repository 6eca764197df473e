"""Export tab: a finished run becomes an adapter or a merged model in a folder, and optionally a
private Hub repository with a model card. The token is a password field: it is passed to the push
and nowhere else (never written, logged or shown)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from training.chat import generate
from training.chat.decoding import PRESETS, preset
from training.export import save as exporting
from training.export.gguf import K_QUANTS, QUANTS
from training.export.hub import push
from training.export.modelcard import LOSS_PLOT, check_samples, write_model_card
from training.export.modelfile import export_for_ollama
from training.export.space import HARDWARE, deploy_bot_space
from training.paths import subdir
from training.train.runs import list_runs

from .common import Owner, owner_only, shows_user_errors

ADAPTER, MERGED = "Adapter only (small; needs the base model)", "Merged full model (loads on its own)"
QUOTE_REPORT = "Quote the persona report's side-by-side examples in the card (private chats)"


def build_export_tab(
    owner: Owner | str | None = None,
) -> gr.Dropdown:  # long: the tab's layout, then events that close over it
    studio = owner_only(owner)
    with gr.Row():
        # In owner mode the list arrives with the owner's page load, not in the page config anyone can read.
        # value=None: Gradio would preselect the first run, and choosing that run would then change nothing (no sizes, no card).
        run = gr.Dropdown(
            [] if owner else _finished_runs(), value=None, allow_custom_value=True, label="Run to export", scale=3
        )
        kind = gr.Radio([ADAPTER, MERGED], value=ADAPTER, label="What to export", scale=3)
    sizes = gr.Markdown()
    with gr.Row():
        out = gr.Textbox(label="Folder (blank = the data folder's exports/)", scale=3)
        gguf = gr.Checkbox(label="Also write GGUF + Ollama Modelfile", value=False, scale=1)
        quant = gr.Dropdown(
            list(QUANTS[1:] + K_QUANTS),
            value="q8_0",
            scale=1,
            label="GGUF type (k-quants: f16 + the llama-quantize command)",
        )
        decoding = gr.Radio(
            list(PRESETS), value="Greedy", scale=2, label="Decoding defaults (Modelfile PARAMETERs, the Space's chat)"
        )
        quote = gr.Checkbox(label=QUOTE_REPORT, value=False, scale=2)
    samples = gr.Dataframe(
        headers=["prompt", "reply"],
        value=[["hey! what are you up to this weekend?", ""]],
        interactive=True,
        label="Sample replies for the model card (optional): type prompts, generate, edit or delete rows",
        column_count=(2, "fixed"),
    )
    generate_samples = gr.Button("Generate the replies with this run")
    export_button = gr.Button("Export", variant="primary")
    export_result = gr.Markdown()
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        gr.Markdown(
            "Private by default. The token is used for this push only; it is never saved or shown. "
            "Leave it blank to use `HF_TOKEN` or a prior `hf auth login`."
        )
        with gr.Row():
            repo = gr.Textbox(label="Repository (you/name)", placeholder="your-name/my-persona")
            private = gr.Checkbox(label="Private", value=True)
            token = gr.Textbox(label="Token (write access)", type="password")
        push_button = gr.Button("Export and push")
        push_result = gr.Markdown()
        gr.Markdown(
            "**A permanent link for friends**: push the model (private unless unticked above) and deploy a "
            "Gradio Space that runs the chat-only page for it. A private model is read with the read token "
            "below (best: a read-only token), else with the token above, kept as a Space secret."
        )
        with gr.Row():
            space_id = gr.Textbox(label="Space (you/name)", placeholder="your-name/sam-bot")
            hardware = gr.Dropdown(list(HARDWARE), value="cpu-basic", label="Space hardware")
            read_token = gr.Textbox(label="Read token for the Space (optional)", type="password")
        space_button = gr.Button("Export and deploy the Space")
        space_result = gr.Markdown()
    card = gr.Markdown(label="Model card preview")

    run.change(
        studio(shows_user_errors(_describe)),
        inputs=[run, kind, quote],
        outputs=[sizes, card],
        api_name="describe_export",
    )
    for choice in (kind, quote):
        choice.change(
            studio(shows_user_errors(_describe)), inputs=[run, kind, quote], outputs=[sizes, card], api_name=False
        )
    generate_samples.click(
        studio(shows_user_errors(_fill_replies)), inputs=[run, samples], outputs=samples, api_name="sample_replies"
    )

    def do_export(
        run_name, chosen_kind, folder, with_gguf, quant_type, preset_name, rows, quoted, progress=gr.Progress()
    ):
        progress(0.1, desc="Exporting")
        path = _export(run_name, chosen_kind, folder, rows, quoted, repo_id=None)
        lines = [f"Exported to `{path}` ({_megabytes(path):.1f} MB)."]
        if with_gguf:
            progress(0.7, desc="Writing GGUF")
            lines.append(_gguf(path, chosen_kind, quant_type, preset(preset_name)))
        return "\n\n".join(lines)

    def do_push(run_name, chosen_kind, folder, rows, quoted, repo_id, is_private, secret, progress=gr.Progress()):
        if not (repo_id or "").strip():
            raise gr.Error("Repository: give a name like your-name/my-persona.")
        progress(0.1, desc="Exporting")
        path = _export(run_name, chosen_kind, folder, rows, quoted, repo_id=repo_id.strip())
        progress(0.5, desc="Uploading")
        url = push(path, repo_id.strip(), token=secret or None, private=is_private)
        return f"Pushed {'privately ' if is_private else ''}to [{url}]({url})"

    def do_deploy(
        run_name,
        chosen_kind,
        folder,
        rows,
        quoted,
        repo_id,
        is_private,
        secret,
        space,
        flavor,
        reader,
        preset_name,
        progress=gr.Progress(),
    ):
        if not (space or "").strip():
            raise gr.Error("Space: give a name like your-name/sam-bot.")
        progress(0.1, desc="Exporting")
        path = _export(run_name, chosen_kind, folder, rows, quoted, repo_id=(repo_id or "").strip() or space.strip())
        progress(0.4, desc="Pushing the model and deploying the Space")
        done = deploy_bot_space(
            path,
            space.strip(),
            model_repo=(repo_id or "").strip() or None,
            token=secret or None,
            read_token=reader or None,
            public_model=not is_private,
            hardware=flavor,
            decoding=preset(preset_name),
        )
        notes = "".join(f"\n\n{note}" for note in done["notes"])
        return f"Space: [{done['space_url']}]({done['space_url']}) (model: {done['model_url']}). It builds for a few minutes.{notes}"

    export_button.click(
        studio(shows_user_errors(do_export)),
        inputs=[run, kind, out, gguf, quant, decoding, samples, quote],
        outputs=export_result,
        api_name="export_run",
    )
    # Not "public": Gradio's browser run history records the inputs of public events (the tokens
    # among them) in localStorage and shows them on /gradio_api/runs. Still callable by API clients.
    push_button.click(
        studio(shows_user_errors(do_push)),
        inputs=[run, kind, out, samples, quote, repo, private, token],
        outputs=push_result,
        api_name="push_run",
        api_visibility="undocumented",
    )
    space_button.click(
        studio(shows_user_errors(do_deploy)),
        outputs=space_result,
        api_name="deploy_space",
        api_visibility="undocumented",
        inputs=[run, kind, out, samples, quote, repo, private, token, space_id, hardware, read_token, decoding],
    )
    return run


def refresh_runs():
    return gr.update(choices=_finished_runs())


def _finished_runs() -> list[tuple[str, str]]:
    return [(f"{r['name']} ({r['method']})", r["path"]) for r in list_runs() if r["has_final"]]


def _describe(run_name: str | None, chosen_kind: str, quoted: bool = False):
    if not run_name:
        return "", ""
    sizes = exporting.export_sizes(run_name)
    parts = []
    if sizes["adapter_mb"] is not None:
        parts.append(f"adapter **{sizes['adapter_mb']:.1f} MB**")
    merged = (
        f"**{sizes['merged_mb']:.1f} MB**"
        if sizes["merged_mb"] is not None
        else "the base model's size (not known offline)"
    )
    parts.append(f"merged {merged}")
    source = exporting.read_run(run_name)
    with tempfile.TemporaryDirectory() as folder:  # the card exactly as the export will write it
        readme = write_model_card(source, Path(folder), chosen_kind == MERGED, f"your-name/{source.name}", [], quoted)
        text = readme.read_text(encoding="utf-8")
    body = text.split("---", 2)[-1]  # the YAML front matter is for the Hub, not for reading
    # The loss-curve PNG lives next to the README in the export; this page cannot show it.
    body = body.replace(
        f"![training and validation loss]({LOSS_PLOT})", "*(the loss curve image is included in the export)*"
    )
    return f"Sizes: {', '.join(parts)} ({sizes['method']} run).", body


def _sample_rows(rows) -> list[dict[str, str]]:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows or [], columns=["prompt", "reply"])
    kept = [
        {"prompt": str(p), "reply": str(r)}
        for p, r in zip(frame["prompt"], frame["reply"])
        if str(p or "").strip() and str(r or "").strip()
    ]
    return check_samples(kept)


def _fill_replies(run_name: str | None, rows):
    if not run_name:
        raise gr.Error("Choose a run first.")
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows or [], columns=["prompt", "reply"])
    model = generate.load_chat_model(run_name)
    settings = preset("Greedy", max_new_tokens=64)
    replies = [generate.reply(model, [], str(p), settings) if str(p or "").strip() else "" for p in frame["prompt"]]
    return pd.DataFrame({"prompt": frame["prompt"], "reply": replies})


def _export(run_name, chosen_kind, folder, rows, quoted, repo_id):
    if not run_name:
        raise gr.Error("Choose a run to export.")
    source = exporting.read_run(run_name)
    merged = chosen_kind == MERGED
    chosen = (folder or "").strip()
    target = Path(chosen) if chosen else subdir("exports") / f"{source.name}-{'merged' if merged else 'adapter'}"
    # Re-exporting into talklike's own exports/ replaces the last export; a folder the user
    # named is never overwritten (export_run refuses a non-empty one).
    return exporting.export_run(
        source.path,
        target,
        merge=merged,
        samples=_sample_rows(rows),
        report_examples=quoted,
        repo_id=repo_id,
        overwrite=not chosen,
    )


def _gguf(path: Path, chosen_kind: str, quant: str, decoding) -> str:
    if chosen_kind != MERGED:
        return "GGUF: choose the merged export (a GGUF holds a whole model, not an adapter)."
    made = export_for_ollama(path, path / f"model-{quant}.gguf", quant, decoding)
    lines = [f"GGUF written to `{made['gguf']}`." if made["gguf"] else "GGUF not written by talklike for this model."]
    template = f"a TEMPLATE for {made['template']}" if made["template"] else "no TEMPLATE (Ollama reads the GGUF's)"
    lines.append(f"Ollama `Modelfile` beside it, with {template}: `ollama create NAME -f {made['modelfile']}`")
    if made["commands"]:
        lines.append("Run to finish it:\n\n```\n" + "\n".join(made["commands"]) + "\n```")
    return "\n\n".join(lines)


def _megabytes(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024**2
