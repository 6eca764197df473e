"""The Train tab's live view of runs: renders what training.train.monitor reads, polled by a timer.

The monitor does the reading (only what changed on disk since the last look); this module turns a
RunView into the status line, progress bar, plots and log, and decides per browser session what to
send: a tick whose view has the same version as the one the session shows sends nothing. The
timer ticks every WATCH_S while a run is active and every IDLE_S otherwise, only to notice a run
started elsewhere (a terminal, another tab).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from training.train import monitor as monitoring

WATCH_S = 1.0  # a new metrics line reaches the page within about this (plus drawing)
IDLE_S = 10.0
RUN_OUTPUTS = 6  # status, progress, loss plot, learning-rate plot, speed plot, log
RUNS_COLUMNS = ["run", "state", "model", "method", "best eval loss", "minutes"]


def run_view(name: str | None):
    """Everything shown about one run (the values of the RUN_OUTPUTS components)."""
    if not name:
        return "No run yet: press Start training.", "", None, None, None, ""
    return render_run(monitoring.monitor().view(name))


def watching(name: str | None, shown: tuple | None):
    """The person picked a run (or a page load did), just before run_view() shows all of it:
    record that view as shown, so the next tick does not send it all again, and look again soon.

    Recorded before the view is rendered, never after: if the run moves in between, the record is
    older than the page and the next tick sends the difference, where the other order would skip it.
    """
    _, listing, _ = shown or (None, None, None)
    version = monitoring.monitor().view(name).version if name else "no run"
    return (version, listing, WATCH_S), gr.Timer(WATCH_S)


def render_run(view: monitoring.RunView):
    plots = _plots(view.records, evaluates=view.evaluates)
    return (_status_text(view), _progress_bar(view.records, view.summary), *plots, view.log_tail)


def runs_table() -> pd.DataFrame:
    return render_runs(monitoring.monitor().runs())


def render_runs(listing: monitoring.RunsList) -> pd.DataFrame:
    rows = [
        {
            "run": r["name"],
            "state": r["state"],
            "model": Path(r["model"]).name,
            "method": r["method"],
            "best eval loss": r["best_eval_loss"],
            "minutes": round(r["duration_s"] / 60, 1) if r["duration_s"] else None,
        }
        for r in listing.summaries
    ]
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def tick(name: str | None, shown: tuple | None):
    """One look for one browser session: (RUN_OUTPUTS values, runs table, what it now shows, timer).

    `shown` is what this session was last sent: (run view version, runs list version, interval).
    Parts whose version did not move are skipped, so an unchanged page costs no drawing at all.
    """
    shown = shown or (None, None, None)
    monitor = monitoring.monitor()
    listing = monitor.runs()
    view = monitor.view(name) if name else None
    interval = WATCH_S if listing.any_active else IDLE_S
    now = (view.version if view else "no run", listing.version, interval)
    if now[0] == shown[0]:
        watched = _skips(RUN_OUTPUTS)
    else:
        watched = render_run(view) if view else run_view(None)
    table = render_runs(listing) if now[1] != shown[1] else gr.skip()
    timer = gr.Timer(interval) if interval != shown[2] else gr.skip()
    return (*watched, table, now, timer)


def hurry(shown: tuple | None):
    """After Start or Resume: look again soon (the next tick() settles the pace).

    Returns (timer, what the session now shows): the session's record of its interval must follow,
    or a tick that finds nothing active would not know to slow the timer down again.
    """
    view, listing, _ = shown or (None, None, None)
    return gr.Timer(WATCH_S), (view, listing, WATCH_S)


def _skips(count: int) -> tuple:
    return tuple(gr.skip() for _ in range(count))


def _status_text(view: monitoring.RunView) -> str:
    summary = view.summary
    parts = [f"**{view.name}**: {summary['state']}"]
    if view.status.get("backend"):
        parts.append(f"backend: {view.status['backend']}")
    if summary["best_eval_loss"] is not None:
        parts.append(f"best eval loss {summary['best_eval_loss']:.4f}")
    text = " · ".join(parts)
    if summary["reason"]:
        text += f"\n\n{'⚠️ ' if summary['state'] == 'failed' else ''}{summary['reason']}"
    if summary["has_final"]:
        text += f"\n\nSaved model: `{Path(summary['path']) / 'final'}`"
    return text


def _progress_bar(records: list[dict], summary: dict) -> str:
    last = next((r for r in reversed(records) if r.get("step") is not None), {})
    step, total = (
        last.get("step") or summary.get("step") or 0,
        last.get("total_steps") or summary.get("total_steps") or 0,
    )
    if not total:
        return ""
    share = min(step / total, 1.0)
    eta = last.get("eta")
    eta_text = f" · ETA {_seconds(eta)}" if eta and summary["state"] == "running" else ""
    memory = f" · memory {last['memory_mb'] / 1024:.2f} GB" if last.get("memory_mb") else ""
    return (
        f"<div style='border:1px solid #ccc;border-radius:6px;height:14px;overflow:hidden'>"
        f"<div style='width:{share:.1%};height:100%;background:#22a06b'></div></div>"
        f"<p>step {step:g} / {total:g} ({share:.0%}){eta_text}{memory}</p>"
    )


def _seconds(value: float) -> str:
    value = int(value)
    return f"{value // 3600}h{value % 3600 // 60:02d}m" if value >= 3600 else f"{value // 60}m{value % 60:02d}s"


def _points(records: list[dict], column: str) -> list[tuple]:
    """(step, value) of each record that has both, values as floats: an all-empty column would
    otherwise be dtype object, which Gradio plots as categories, one tick per value."""
    return [
        (r["step"], float(r[column]))
        for r in records
        if r.get("step") is not None and r.get(column) is not None and r[column] == r[column]
    ]


def _curve(records: list[dict], column: str) -> pd.DataFrame | None:
    if not any(column in r for r in records):
        return None
    return pd.DataFrame(_points(records, column), columns=["step", column])


def _plots(records: list[dict], evaluates: bool = False):
    """(loss, learning rate, speed) plots' data. Built from plain lists: a tick while a run trains
    builds these every second, and going through one DataFrame of all records cost 5x as much."""
    if not any("step" in r for r in records):
        return None, None, None
    train, held_out = _points(records, "loss"), _points(records, "eval_loss")
    if not held_out and evaluates and train:
        # Gradio fixes a plot's colour series at its first draw and never draws one that appears
        # later, so a run that will evaluate carries an empty (undrawn) eval point from the start.
        held_out = [(train[0][0], float("nan"))]
    rows = [(step, value, "train") for step, value in train] + [(step, value, "eval") for step, value in held_out]
    rows += _preference_rows(records, evaluates)
    loss = pd.DataFrame(rows, columns=["step", "value", "series"]) if rows else None
    return loss, _curve(records, "learning_rate"), _curve(records, "tokens_per_second")


def _preference_rows(records: list[dict], evaluates: bool) -> list[tuple]:
    """A DPO/KTO round's reward margin (chosen minus rejected, in training) and preference accuracy on
    the held-out pairs: on the loss plot, whose scale they share (DPO's loss starts at ln 2 = 0.69)."""
    margin = _points(records, "rewards/margins")
    if not margin:  # not a preference round
        return []
    accuracy = _points(records, "eval_rewards/accuracies")
    if not accuracy and evaluates:  # its colour reserved from the first draw, as the eval loss's
        accuracy = [(margin[0][0], float("nan"))]
    return [(step, value, "reward margin") for step, value in margin] + [
        (step, value, "preference accuracy (eval)") for step, value in accuracy
    ]
