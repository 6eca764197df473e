"""Run folders: the only thing the UI and a training process share.

    runs/<name>/config.yaml     what to train (RunConfig)
                status.json     state, pid, reason, best eval loss (written atomically)
                metrics.jsonl   one JSON object per log event, appended and flushed
                train.log       the process's stdout/stderr and any traceback
                STOP            present = please stop at the next step
                checkpoints/    Trainer checkpoints (the newest few), for resume
                final/          the trained adapter or model + tokenizer
                published       present = visitors of a shared app may chat with it (owner mode)

Because everything lives on disk, a page reload or a UI restart finds running jobs again, and a
run started by hand (`python -m training train`) shows up like any other. No torch imports here:
the UI imports this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from training.errors import UserError
from training.paths import data_dir, slug
from training.train.config import RunConfig

STATES = ("created", "queued", "running", "stopping", "stopped", "completed", "failed")
ACTIVE_STATES = ("queued", "running", "stopping")
STARTUP_GRACE_S = 60.0  # a queued run may have no pid yet while its process starts
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
PUBLISHED_MARKER = "published"  # present = visitors of a shared app may chat with this run


def runs_root(data: str | os.PathLike | None = None) -> Path:
    root = Path(data) / "runs" if data is not None else data_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


class _InRun:
    """One file or folder of the run folder, by name: `run.status_path` is run.path / "status.json"."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, run: Run | None, owner: type | None = None) -> Path:
        return run.path / self.name if run is not None else self


@dataclass(frozen=True)
class Run:
    path: Path

    # The run folder's layout: the contract between whoever starts a run and the training process.
    config_path = _InRun("config.yaml")
    status_path = _InRun("status.json")
    metrics_path = _InRun("metrics.jsonl")
    log_path = _InRun("train.log")
    stop_path = _InRun("STOP")
    checkpoints_dir = _InRun("checkpoints")
    final_dir = _InRun("final")

    @property
    def name(self) -> str:
        return self.path.name

    def config(self) -> RunConfig:
        return RunConfig.from_yaml(self.config_path)

    def status(self) -> dict[str, Any]:
        return read_status(self)


def open_run(path: str | os.PathLike) -> Run:
    run = Run(Path(path))
    if not run.config_path.is_file():
        raise UserError(f"{run.path}: not a run folder (no config.yaml)")
    return run


def create_run(config: RunConfig, root: str | os.PathLike | None = None) -> Run:
    """A new folder runs/<name>/ holding the validated config; the name gets -2, -3... if taken."""
    root = Path(root) if root is not None else runs_root()
    base = config.name or f"{slug(Path(config.model).name, 'run')}-{time.strftime('%Y%m%d-%H%M%S')}"
    dataclasses.replace(config, name=base).validate()  # a name no folder can take, before it is looked up
    name, number = base, 1
    while (root / name).exists():
        number += 1
        name = f"{base}-{number}"
    path = root / name
    config = dataclasses.replace(config, name=name, output_dir=str(path)).with_absolute_paths().validate()
    make_run_folder(path, exist_ok=False)
    config.save(path / "config.yaml")
    return Run(path)


def make_run_folder(path: Path, exist_ok: bool = True) -> None:
    """mkdir, with the reason a person can act on when the place cannot hold a run folder."""
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
        probe = path / ".writable"
        probe.touch()
        probe.unlink()
    except OSError as error:
        why = "a file is in the way" if path.exists() and not path.is_dir() else error.strerror or type(error).__name__
        raise UserError(f"output folder {path}: cannot hold a run ({why}); choose a folder you can write to") from None


# ---- status.json ---------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    # The UI, the training process and a queued process all update status.json; a lock makes each
    # read-merge-write whole, so one writer never undoes another's field.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_status(run: Run) -> dict[str, Any]:
    try:
        status = json.loads(run.status_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"state": "created"}
    return status if isinstance(status, dict) else {"state": "created"}


def write_status(run: Run, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json atomically (temp file + rename) and return the result."""
    with locked(run.path / ".status.lock"):
        status = {**read_status(run), **fields, "updated": time.time()}
        temp = run.status_path.with_suffix(".json.tmp")
        temp.write_text(json.dumps(status, indent=2), encoding="utf-8")
        os.replace(temp, run.status_path)
    return status


def process_identity(pid: int) -> float | None:
    """The process's start time: with the pid it names a process even after the pid is reused."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(run: Run) -> bool:
    """Whether the process recorded in status.json still runs (not a zombie, not a reused pid)."""
    status = read_status(run)
    pid = status.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        recorded = status.get("pid_started")
        return recorded is None or abs(process.create_time() - recorded) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def refresh(run: Run) -> dict[str, Any]:
    """status.json, corrected when the process behind an active state has died (kill -9, reboot)."""
    status = read_status(run)
    if status.get("state") not in ACTIVE_STATES or is_alive(run):
        return status
    just_queued = status.get("pid") is None and time.time() - status.get("queued_at", 0) < STARTUP_GRACE_S
    if just_queued:
        return status
    checkpoint = last_checkpoint(run)
    reason = "process died" + (f"; resume continues from {checkpoint.name}" if checkpoint else "")
    return write_status(run, state="failed", reason=reason, resumable=checkpoint is not None, ended=time.time())


def last_checkpoint(run: Run) -> Path | None:
    """The newest complete checkpoint (its trainer_state.json is written last)."""
    if not run.checkpoints_dir.is_dir():
        return None
    found = [
        (int(match.group(1)), path)
        for path in run.checkpoints_dir.iterdir()
        if (match := _CHECKPOINT.match(path.name)) and (path / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


# ---- starting and stopping -------------------------------------------------------------------------


def active_runs(root: Path | None = None, exclude: Run | None = None) -> list[Run]:
    root = root or runs_root()
    runs = [Run(path) for path in sorted(root.iterdir()) if (path / "config.yaml").is_file()]
    return [run for run in runs if run != exclude and refresh(run).get("state") in ACTIVE_STATES]


def start(run: Run, queue: bool = False, resume: bool = False) -> subprocess.Popen:
    """Start `python -m training train <run>/config.yaml` in its own session, logging to train.log.

    Its own session: closing the UI (or Ctrl-C in its terminal) does not kill the training.
    With `queue`, the process waits until no other run is active; without, an active run is an error.
    """
    if refresh(run).get("state") in ACTIVE_STATES:
        raise UserError(f"run {run.name}: already {read_status(run)['state']}")
    others = active_runs(run.path.parent, exclude=run)
    if others and not queue:
        raise UserError(f"a run is already active: {others[0].name}; stop it first or queue this one")
    run.stop_path.unlink(missing_ok=True)  # a STOP left from last time would end this run at step 1
    write_status(run, state="queued", pid=None, pid_started=None, reason="", queued_at=time.time(), ended=None)
    command = [sys.executable, "-m", "training", "train", str(run.config_path)]
    command += ["--resume"] * resume + ["--wait"] * queue
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(run.log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    write_status(run, pid=process.pid, pid_started=process_identity(process.pid))
    # Someone must wait() on the child, or every finished run stays a zombie in the process table
    # for as long as the UI lives. status.json, not this thread, is how anyone learns how it ended.
    threading.Thread(target=process.wait, name=f"talklike-reap-{process.pid}", daemon=True).start()
    return process


def resume(run: Run, queue: bool = False) -> subprocess.Popen:
    if last_checkpoint(run) is None:
        raise UserError(f"run {run.name}: no checkpoint to resume from yet; start it again instead")
    return start(run, queue=queue, resume=True)


def stop(run: Run) -> None:
    """Ask the run to stop: it saves a checkpoint and the adapter at the end of its current step."""
    run.stop_path.touch()
    if refresh(run).get("state") in ("queued", "running"):
        write_status(run, state="stopping")


def claim_turn(run: Run) -> None:
    """For a run started without queueing (`train` without --wait): mark it running, or refuse while
    another run in its folder or the data folder's runs/ is active. One lock with wait_for_turn,
    so two runs started at the same moment cannot both see the other as not yet running."""
    roots = dict.fromkeys([run.path.parent, runs_root()])
    with locked(run.path.parent / ".queue.lock"):
        others = [other for root in roots for other in active_runs(root, exclude=run)]
        if others:
            raise UserError(
                f"a run is already active: {others[0].name}; stop it first, or pass --wait to queue this one"
            )
        write_status(run, state="running")


def wait_for_turn(run: Run, poll_s: float = 2.0) -> bool:
    """Called by a queued training process: block until it is the oldest queued run and none runs.

    Returns False if the run was stopped while it waited.
    """
    root = run.path.parent
    while True:
        if run.stop_path.exists():
            return False
        with locked(root / ".queue.lock"):
            others = active_runs(root, exclude=run)
            running = [other for other in others if read_status(other).get("state") != "queued"]
            mine = read_status(run).get("queued_at", 0)
            earlier = [other for other in others if read_status(other).get("queued_at", 0) < mine]
            if not running and not earlier:
                write_status(run, state="running")
                return True
        time.sleep(poll_s)


# ---- reading ------------------------------------------------------------------------------------


def read_metrics(run: Run, since_line: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Metrics logged after line `since_line`, and the line to ask from next time.

    A last line without its newline is still being written: it is left for the next call.
    """
    try:
        text = run.metrics_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], since_line
    lines = text.split("\n")[:-1]  # drop the unterminated tail (or the empty string after the last \n)
    records = []
    for line in lines[since_line:]:
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records, len(lines)


def list_runs(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every run under `root`, newest first, with what a table of runs shows."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    summaries = []
    for path in root.iterdir():
        if (path / "config.yaml").is_file():
            summaries.append(summarize(Run(path)))
    return sorted(summaries, key=lambda summary: summary["created"], reverse=True)


# ---- publishing (owner mode) ----------------------------------------------------------------------


def set_published(run: Run, published: bool) -> None:
    """Let visitors of a shared app chat with this run (a marker file in its folder), or stop it."""
    marker = run.path / PUBLISHED_MARKER
    if published:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def published_runs(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Run name -> folder of every finished run its owner published, newest first."""
    return {
        summary["name"]: Path(summary["path"])
        for summary in list_runs(root)
        if summary["has_final"] and (Path(summary["path"]) / PUBLISHED_MARKER).is_file()
    }


def summarize(run: Run) -> dict[str, Any]:
    try:
        config: RunConfig | None = run.config()
    except UserError:
        config = None
    return summary(
        run,
        refresh(run),
        config,
        resumable=last_checkpoint(run) is not None,
        has_final=final_saved(run),
        created=run.config_path.stat().st_mtime,
    )


def final_saved(run: Run) -> bool:
    return (run.final_dir / "config.json").is_file() or (run.final_dir / "adapter_config.json").is_file()


def summary(
    run: Run, status: dict[str, Any], config: RunConfig | None, resumable: bool, has_final: bool, created: float
) -> dict[str, Any]:
    """What a table of runs shows, from what was read about the run (training.train.monitor reads it incrementally)."""
    model, method, preset = (config.model, config.method, config.preset) if config else ("?", "?", "?")
    started, ended = status.get("started"), status.get("ended")
    end = ended or (time.time() if status.get("state") in ACTIVE_STATES else None)
    return {
        "name": run.name,
        "path": str(run.path),
        "state": status.get("state", "created"),
        "reason": status.get("reason", ""),
        "model": model,
        "method": method,
        "preset": preset,
        "step": status.get("step"),
        "total_steps": status.get("total_steps"),
        "best_eval_loss": status.get("best_eval_loss"),
        "duration_s": round(end - started, 1) if started and end else None,
        "resumable": resumable,
        "has_final": has_final,
        "created": created,
    }
