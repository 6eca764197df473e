"""Train tab: pick a recipe, see what it costs, start it, and watch it learn.

Training runs in its own process (training.train.runs.start); this tab only writes config.yaml and
reads status.json, metrics.jsonl and train.log, so a page reload or a restarted UI re-attaches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from training.data.persona import validation_path
from training.errors import UserError
from training.paths import subdir
from training.train import estimate as estimating
from training.train import monitor as monitoring
from training.train import runs, sweep
from training.train.config import RunConfig
from training.train.mixing import parse_entry
from training.train.presets import DEFAULT_PRESET, PRESETS, get_preset

from . import run_watch
from .common import Owner, owner_only, shows_user_errors
from .fields import setting_widget, unplaced

THIS_MACHINE = "This machine"
# Where each RunConfig field sits in the form; labels, tooltips and choices come from the field.
# Fields named nowhere here land in the Advanced section's last row.
MAIN_ROWS = (
    ("model", "train_file", "method"),
    ("mix", "leaks"),
    ("lora_r", "lora_alpha", "lora_dropout", "target_modules"),
    ("learning_rate", "epochs", "max_steps", "batch_size", "grad_accumulation", "max_length"),
)
ADVANCED_ROWS = (
    ("scheduler", "warmup_steps", "warmup_ratio", "weight_decay", "optimizer", "dtype"),
    ("completion_only_loss", "padding_free", "packing", "activation_checkpointing", "neftune_noise_alpha"),
    ("eval_steps", "save_steps", "early_stopping_patience", "logging_steps", "seed"),
    ("quantization_bits", "adalora_init_r", "adalora_target_r", "chat_template", "use_unsloth", "report_to"),
)
# Set elsewhere: the Recipe dropdown, the run folder Start makes, the held-out file beside the data.
NOT_IN_FORM = {"preset", "output_dir", "validation_file"}
WIDGETS = {  # the fields whose widget is not the default one for their type
    "name": dict(scale=1),
    "model": dict(widget=gr.Dropdown, allow_custom_value=True, scale=3),
    "train_file": dict(widget=gr.Dropdown, allow_custom_value=True, scale=3),
    "method": dict(scale=1),
    "mix": dict(widget=gr.Dropdown, multiselect=True, allow_custom_value=True, choices=[], scale=3),
    "leaks": dict(scale=1),
}


@dataclass
class TrainTab:
    current_run: gr.Dropdown  # the run being watched; other tabs list runs the same way
    train_file: gr.Dropdown
    form: dict  # RunConfig field name -> its widget
    compare: gr.Dropdown  # runs whose loss curves are overlaid


def build_train_tab(
    owner: Owner | str | None = None,
) -> TrainTab:  # long: the tab's layout, then events that close over it
    studio = owner_only(owner)
    # In owner mode, run names and data paths arrive with the owner's page load (attach_on_load),
    # never in the page config, which anyone can read.
    listed = (lambda choices: []) if owner else (lambda choices: choices())
    with gr.Row():
        preset = _widget(
            "preset",
            widget=gr.Dropdown,
            choices=[(p.title, name) for name, p in PRESETS.items()],
            value=DEFAULT_PRESET,
            scale=3,
        )
        name = _widget("name")
    preset_source = gr.Markdown(PRESETS[DEFAULT_PRESET].source)
    fields = {"name": name, **_form_rows(MAIN_ROWS[:2], listed)}
    with gr.Row():  # the mix's "Add data set" control, under the mix it adds to
        mix_file = gr.Dropdown(
            listed(_dataset_choices), label="Add data set (e.g. from Knowledge files)", allow_custom_value=True, scale=3
        )
        mix_weight = gr.Number(0.5, label="Weight (training data = 1)", scale=1)
        add_mix = gr.Button("Add data set", scale=1)
    fields.update(_form_rows(MAIN_ROWS[2:], listed))
    with gr.Accordion("Advanced", open=False):
        fields.update(_form_rows(ADVANCED_ROWS, listed))
        placed = {"name", "system_prompt", *fields, *NOT_IN_FORM}
        fields.update(_form_rows([row] if (row := unplaced(RunConfig, placed)) else [], listed))
        fields["system_prompt"] = _widget("system_prompt")
    form = list(fields.values())
    for component, value in zip(form, _preset_values(DEFAULT_PRESET, list(fields))[1:]):
        component.value = value  # the page opens on the recommended recipe, not blank fields

    with gr.Accordion("Estimate before you spend", open=True):
        with gr.Row():
            device = gr.Dropdown(
                [THIS_MACHINE] + [d.name for d in estimating.SPACE_DEVICES], value=THIS_MACHINE, label="Hardware"
            )
            price = gr.Number(label="$ per hour (0 = list price)", value=0)
            estimate_button = gr.Button("Estimate")
        estimate_report = gr.Markdown()

    with gr.Row():
        start = gr.Button("Start training", variant="primary")
        queue = gr.Checkbox(label="Queue if another run is active", value=False)
        stop = gr.Button("Stop (keeps what was learned)", variant="stop")
        resume = gr.Button("Resume")
    current_run = gr.Dropdown(listed(_run_names), label="Watching run", allow_custom_value=True)
    status = gr.Markdown()
    progress = gr.HTML()
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="value", color="series", title="Loss", height=260)
        lr_plot = gr.LinePlot(x="step", y="learning_rate", title="Learning rate", height=260)
        speed_plot = gr.LinePlot(x="step", y="tokens_per_second", title="Tokens/s (without padding)", height=260)
    log = gr.Textbox(label="Log", lines=10, max_lines=10, autoscroll=True)
    with gr.Accordion("All runs", open=False):
        runs_table = gr.Dataframe(label="Runs", wrap=True)
        compare = gr.Dropdown(
            listed(_run_names), multiselect=True, allow_custom_value=True, label="Overlay the loss curves of"
        )
        compare_plot = gr.LinePlot(x="step", y="loss", color="run", title="Training loss by run", height=260)
    with gr.Accordion("Sweep (seed 003's manual search)", open=False):
        with gr.Row():
            sweep_ranks = gr.Textbox(label="Ranks", value="8, 16, 32")
            sweep_alphas = gr.Textbox(label="Alpha as multiple of rank", value="1, 2")
            sweep_lrs = gr.Textbox(label="Learning rates", value="2e-4")
            sweep_batches = gr.Textbox(label="Batch sizes", value="4")
            sweep_name = gr.Textbox(label="Sweep name", value="sweep")
        sweep_button = gr.Button("Queue the sweep")
        sweep_table = gr.Dataframe(label="Ranked by eval loss")
    shown = gr.State(None)  # what this browser was last sent (run_watch.tick)
    timer = gr.Timer(run_watch.IDLE_S)

    def form_config(values: dict) -> RunConfig:
        chosen = {field: values[component] for field, component in fields.items()}
        return _config_from_form(values[preset], chosen)

    def on_preset(chosen: str, data: str, mix: list[str] | None):
        source, *values = _preset_values(chosen, list(fields))
        values[list(fields).index("train_file")] = data  # keep the data the user chose
        values[list(fields).index("mix")] = mix or []  # and the data sets mixed into it
        return source, *values

    preset.change(
        studio(on_preset),
        inputs=[preset, fields["train_file"], fields["mix"]],
        outputs=[preset_source, *form],
        api_name="load_preset",
    )
    add_mix.click(
        studio(shows_user_errors(_add_to_mix)),
        inputs=[fields["mix"], mix_file, mix_weight],
        outputs=fields["mix"],
        api_name="add_data_set",
    )
    estimate_button.click(
        studio(shows_user_errors(lambda values: _estimate(form_config(values), values[device], values[price]))),
        inputs={preset, device, price, *form},
        outputs=estimate_report,
        api_name="estimate",
    )

    def on_start(values: dict):
        config = form_config(values)
        run = runs.create_run(config)
        runs.start(run, queue=values[queue])
        return gr.update(choices=_run_names(), value=run.name), _estimate(config, values[device], values[price])

    start.click(
        studio(shows_user_errors(on_start)),
        inputs={preset, queue, device, price, *form},
        outputs=[current_run, estimate_report],
        api_name="start_run",
    )
    stop.click(studio(shows_user_errors(_stop)), inputs=current_run, outputs=status, api_name="stop_run")
    resume.click(studio(shows_user_errors(_resume)), inputs=[current_run, queue], outputs=status, api_name="resume_run")
    watched = [status, progress, loss_plot, lr_plot, speed_plot, log]
    picked = current_run.change(
        studio(shows_user_errors(run_watch.watching)),
        inputs=[current_run, shown],
        outputs=[shown, timer],
        api_name=False,
    )
    picked.then(
        studio(shows_user_errors(run_watch.run_view)), inputs=current_run, outputs=watched, api_name="watch_run"
    )
    for event in (start.click, resume.click):
        event(run_watch.hurry, inputs=shown, outputs=[timer, shown], api_name=False)  # a run started: look again soon

    def visitor():  # what a signed-out visitor's timer shows on a shared Space: no runs
        return (*run_watch.run_view(None), None, None, gr.skip())

    timer.tick(
        owner_only(owner, denied=visitor)(shows_user_errors(run_watch.tick)),
        inputs=[current_run, shown],
        outputs=[*watched, runs_table, shown, timer],
        api_name=False,
    )
    compare.change(studio(_compare), inputs=compare, outputs=compare_plot, api_name="compare_runs")

    def on_sweep(values: dict):
        base = form_config(values)
        configs = sweep.sweep_configs(
            base,
            sweep.parse_numbers(values[sweep_ranks], "Ranks", int),
            sweep.parse_numbers(values[sweep_alphas], "Alphas"),
            sweep.parse_numbers(values[sweep_lrs], "Learning rates"),
            sweep.parse_numbers(values[sweep_batches], "Batch sizes", int),
            values[sweep_name] or "sweep",
        )
        sweep.queue_sweep(configs)
        return _sweep_table(values[sweep_name] or "sweep")

    sweep_button.click(
        studio(shows_user_errors(on_sweep)),
        inputs={preset, sweep_ranks, sweep_alphas, sweep_lrs, sweep_batches, sweep_name, *form},
        outputs=sweep_table,
        api_name="queue_sweep",
    )
    return TrainTab(current_run=current_run, train_file=fields["train_file"], form=fields, compare=compare)


def attach_on_load(demo: gr.Blocks, tab: TrainTab, owner: Owner | str | None = None) -> None:
    """On every page load, re-attach to the live run and show its settings in the form (a reload
    must not make the form disagree with the run being watched); otherwise keep the defaults."""
    names = list(tab.form)

    def on_load():
        runs_now = monitoring.monitor().runs().summaries
        active = [r["name"] for r in runs_now if r["state"] in runs.ACTIVE_STATES]
        watched = (active or [r["name"] for r in runs_now] or [None])[0]
        form = [gr.update()] * len(names)
        if active:
            config = runs.open_run(runs.runs_root() / active[0]).config()
            form = _form_values(config, names)
            form[names.index("name")] = ""  # a new Start gets a new name
            form[names.index("mix")] = gr.update(choices=config.mix, value=config.mix)
        files = gr.update(choices=_dataset_choices(), **({"value": form[names.index("train_file")]} if active else {}))
        form[names.index("train_file")] = files
        if owner:  # built empty so the page config names no run (see build_train_tab)
            model = names.index("model")
            form[model] = gr.update(choices=_model_choices(), **({"value": form[model]} if active else {}))
        run_names = [r["name"] for r in runs_now]
        return gr.update(choices=run_names, value=watched), gr.update(choices=run_names), *form

    hidden = owner_only(owner, denied=lambda: (gr.update(),) * (len(names) + 2))  # visitors see no run names
    demo.load(hidden(on_load), outputs=[tab.current_run, tab.compare, *tab.form.values()], api_name=False)


# ---- form <-> RunConfig --------------------------------------------------------------------------


def _widget(field: str, **options) -> gr.components.Component:
    return setting_widget(RunConfig, field, **{**WIDGETS.get(field, {}), **options})


def _form_rows(rows, listed) -> dict:
    """The widgets of `rows`, one gr.Row each; in owner mode the file and model lists come on page load."""
    choices = {"model": lambda: listed(_model_choices), "train_file": lambda: listed(_dataset_choices)}
    widgets = {}
    for row in rows:
        with gr.Row():
            for field in row:
                extra = {"choices": choices[field]()} if field in choices else {}
                widgets[field] = _widget(field, **extra)
    return widgets


def _preset_values(name: str, field_names: list[str]):
    return (PRESETS[name].source, *_form_values(get_preset(name), field_names))


def _form_values(config: RunConfig, field_names: list[str]) -> list:
    values = {field: getattr(config, field) for field in field_names}
    if isinstance(values.get("target_modules"), list):
        values["target_modules"] = ", ".join(values["target_modules"])  # a text box
    return list(values.values())


def _add_to_mix(mix: list[str] | None, path: str | None, weight: float | None):
    """The mix with `path` at `weight` added (replacing that file's earlier weight)."""
    if not path:
        raise UserError("Add data set: choose a data set file first")
    entry = parse_entry(f"{path}={weight if weight is not None else 1:g}")
    if not Path(entry.path).is_file():
        raise UserError(f"Add data set: {entry.path} does not exist; build it in the Data tab first")
    kept = [item for item in mix or [] if parse_entry(item).path != entry.path]
    chosen = [*kept, f"{entry.path}={entry.weight:g}"]
    return gr.update(choices=chosen, value=chosen)


def _config_from_form(preset: str, chosen: dict) -> RunConfig:
    """The preset's config with every form value applied, validated with messages per field."""
    config = get_preset(preset or DEFAULT_PRESET).with_overrides(**chosen)
    if config.train_file and not config.validation_file and not config.validation_split:
        held_out = validation_path(config.train_file)
        if held_out.is_file() and held_out.stat().st_size:
            config = dataclasses.replace(config, validation_file=str(held_out))
    return config.validate()


def _estimate(config: RunConfig, device_name: str, price: float | None) -> str:
    device = None if device_name in (None, THIS_MACHINE) else estimating.device_by_name(device_name)
    result = estimating.estimate_for_data(config, device=device, dollars_per_hour=price or None)
    return estimating.format_estimate(result)


# ---- starting, stopping, comparing ---------------------------------------------------------------


def _stop(name: str | None) -> str:
    if not name:
        raise UserError("no run selected to stop")
    runs.stop(runs.open_run(runs.runs_root() / name))
    return f"**{name}**: stopping at the end of the current step; the adapter is saved."


def _resume(name: str | None, queue: bool) -> str:
    if not name:
        raise UserError("no run selected to resume")
    runs.resume(runs.open_run(runs.runs_root() / name), queue=queue)
    return f"**{name}**: resuming from its last checkpoint."


def _compare(names: list[str] | None):
    frames = []
    for name in names or []:
        frame = pd.DataFrame(monitoring.monitor().view(name).records)
        if not frame.empty and "loss" in frame:
            frames.append(frame[["step", "loss"]].dropna().assign(run=name))
    return pd.concat(frames) if frames else None


def _sweep_table(prefix: str) -> pd.DataFrame:
    rows = [
        {"run": r["name"], "state": r["state"], "best eval loss": r["best_eval_loss"]} for r in sweep.ranking(prefix)
    ]
    return pd.DataFrame(rows, columns=["run", "state", "best eval loss"])


def _run_names() -> list[str]:
    return [r["name"] for r in monitoring.monitor().runs().summaries]


def _dataset_choices() -> list[str]:
    folder = subdir("datasets")
    files = sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [str(p) for p in files if not p.name.endswith(".val.jsonl")]


def _model_choices() -> list[str]:
    models = dict.fromkeys(p.config.model for p in PRESETS.values())
    finished = [
        str(Path(r["path"]) / "final")
        for r in monitoring.monitor().runs().summaries
        if r["has_final"] and r["method"] == "full"
    ]
    return list(models) + finished
