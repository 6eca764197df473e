"""Watching run folders at the cost of what changed: what the Train tab shows, read incrementally.

The UI looks at the runs every second or two while one is active. Reading every run's config,
status and whole metrics file on each look cost 7% of a core with one browser tab open (issue 15).
A `RunMonitor` instead keeps, per run folder:

- metrics.jsonl followed by byte offset: a look reads only the lines appended since the last one
  (a file rewritten in place, as a resume does to drop metrics past its checkpoint, is read anew);
- status.json, config.yaml and the tail of train.log re-read only when their size or mtime moved;
- the list of runs rebuilt only when the runs folder or one of its runs changed on disk.

Every view carries a `version` that changes exactly when what it shows changes, so a UI can skip
sending a browser what it already shows, and `any_active()` says whether polling is needed at all.
One monitor per runs folder (`monitor()`), shared by all browser sessions, safe across threads.
No torch here: the UI imports this module.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.train import runs
from training.train.config import RunConfig

LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 64 * 1024  # enough for 40 lines of a training log


@dataclass(frozen=True)
class RunView:
    """Everything shown about one run."""

    name: str
    summary: dict[str, Any]  # runs.summarize()'s fields
    status: dict[str, Any]  # status.json, corrected if the process behind an active state died
    records: list[dict[str, Any]]  # metrics.jsonl so far (do not modify: shared with later views)
    log_tail: str
    evaluates: bool  # the config holds out validation data: an eval curve will come
    version: tuple  # equal versions show the same thing

    @property
    def active(self) -> bool:
        return self.summary["state"] in runs.ACTIVE_STATES


@dataclass(frozen=True)
class RunsList:
    summaries: list[dict[str, Any]]  # newest first, as runs.list_runs()
    version: tuple

    @property
    def any_active(self) -> bool:
        return any(summary["state"] in runs.ACTIVE_STATES for summary in self.summaries)


def _signature(path: Path) -> tuple | None:
    """What tells a changed file or folder apart without reading it; None when it is missing."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class _Cached:
    """A value read from disk again only when the signature of what it depends on moves."""

    def __init__(self, read: Callable[[], Any], *paths: Path) -> None:
        self._read, self._paths = read, paths
        self._key: object = object()
        self.value: Any = None
        self.changes = 0  # how many times the value was read anew

    def get(self) -> Any:
        key = tuple(_signature(path) for path in self._paths)
        if key != self._key:
            self.value, self._key = self._read(), key
            self.changes += 1
        return self.value


class MetricsFollower:
    """The records of one metrics.jsonl, reading only what was appended since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self.generation = 0  # bumped whenever `records` changes
        self._inode: int | None = None
        self._offset = 0

    def poll(self) -> list[dict[str, Any]]:
        """Read the complete lines appended since the last poll; returns the records so far."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            if self._offset or self.records:
                self._restart(None)
            return self.records
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._restart(stat.st_ino)  # a new or rewritten file (a resume): read it from the start
        if stat.st_size > self._offset:
            self._read_new()
        return self.records

    def _read_new(self) -> None:
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        end = chunk.rfind(b"\n") + 1  # a last line without its newline is still being written
        for line in chunk[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a damaged line (a crash mid-write): skipped, as runs.read_metrics does
                continue
            if isinstance(record, dict):
                self.records.append(record)
        if end:
            self._offset += end
            self.generation += 1

    def _restart(self, inode: int | None) -> None:
        # A new list, not one cleared in place: views handed out earlier keep what they showed.
        self.records, self._inode, self._offset = [], inode, 0
        self.generation += 1


class _RunState:
    """What the monitor remembers about one run folder, each part re-read only when it changed."""

    def __init__(self, run: runs.Run) -> None:
        self.run = run
        self.metrics = MetricsFollower(run.metrics_path)
        self.config = _Cached(lambda: _config_or_none(run), run.config_path)
        self.created = _Cached(lambda: _mtime(run.config_path), run.config_path)
        self.status = _Cached(lambda: runs.read_status(run), run.status_path)
        # checkpoint-N/ appears before its trainer_state.json (which makes it complete); the trainer
        # writes status.json at each logged step and at the end, so that moving re-checks it too.
        self.resumable = _Cached(lambda: runs.last_checkpoint(run) is not None, run.checkpoints_dir, run.status_path)
        self.final = _Cached(lambda: runs.final_saved(run), run.path, run.final_dir)  # final/ appears, then fills
        self.log = _Cached(lambda: _log_tail(run.log_path), run.log_path)

    def summary(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(runs.summary()'s fields, status.json) as they are now."""
        status = self.status.get()
        if status.get("state") in runs.ACTIVE_STATES:
            # Its process may have died without a word (kill -9): refresh checks, and marks the run failed.
            status = runs.refresh(self.run)
        summary = runs.summary(
            self.run,
            status,
            self.config.get(),
            resumable=self.resumable.get(),
            has_final=self.final.get(),
            created=self.created.get(),
        )
        return summary, status


class RunMonitor:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else runs.runs_root()
        self._lock = threading.Lock()
        self._states: dict[str, _RunState] = {}
        self._names_key: object = object()
        self._names: list[str] = []
        self._list = RunsList([], ())

    def view(self, name: str) -> RunView:
        """The run called `name` as it is on disk now."""
        with self._lock:
            state = self._state(name)
            if state is None:
                raise UserError(f"{self.root / name}: not a run folder (no config.yaml)")
            summary, status = state.summary()
            records = state.metrics.poll()
            log_tail = state.log.get()
            config = state.config.get()
            version = (name, state.metrics.generation, state.log.changes, _shown(summary), status.get("backend"))
            return RunView(
                name, summary, status, records, log_tail, config is not None and config.has_validation, version
            )

    def runs(self) -> RunsList:
        """Every run, newest first, with what a table of runs shows (runs.list_runs()'s fields)."""
        with self._lock:
            summaries = [state.summary()[0] for name in self._run_names() if (state := self._state(name))]
            summaries.sort(key=lambda summary: summary["created"], reverse=True)
            version = tuple(_shown(summary) for summary in summaries)
            if version != self._list.version:
                self._list = RunsList(summaries, version)
            return self._list

    def any_active(self) -> bool:
        return self.runs().any_active

    def _run_names(self) -> list[str]:
        key = _signature(self.root)  # a run folder added or removed changes the folder's mtime
        if key != self._names_key:
            self._names_key = key
            self._names = sorted(path.name for path in _subfolders(self.root) if (path / "config.yaml").is_file())
            for gone in set(self._states) - set(self._names):
                del self._states[gone]
        return self._names

    def _state(self, name: str) -> _RunState | None:
        state = self._states.get(name)
        if state is None:
            run = runs.Run(self.root / name)
            if not run.config_path.is_file():
                return None
            state = self._states[name] = _RunState(run)
        return state


def _shown(summary: dict[str, Any]) -> tuple:
    """The parts of a summary a person sees; the duration counts in tenths of a minute, as shown."""
    minutes = round(summary["duration_s"] / 60, 1) if summary.get("duration_s") else None
    return (
        summary["name"],
        summary["state"],
        summary["reason"],
        summary["step"],
        summary["total_steps"],
        summary["best_eval_loss"],
        summary["has_final"],
        summary["resumable"],
        minutes,
    )


def _subfolders(root: Path) -> list[Path]:
    try:
        return [path for path in root.iterdir() if path.is_dir()]
    except FileNotFoundError:
        return []


def _config_or_none(run: runs.Run) -> RunConfig | None:
    try:
        return run.config()
    except (UserError, OSError):  # a damaged or deleted config.yaml: the status line says what went wrong
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read()
    except FileNotFoundError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if len(data) < size:
        lines = lines[1:]  # the first line was cut by the seek
    return "\n".join(lines[-LOG_TAIL_LINES:])


_monitors: dict[Path, RunMonitor] = {}
_monitors_lock = threading.Lock()


def monitor(root: str | os.PathLike | None = None) -> RunMonitor:
    """The process's monitor of `root` (the data folder's runs/ by default)."""
    path = Path(root) if root is not None else runs.runs_root()
    with _monitors_lock:
        if path not in _monitors:
            _monitors[path] = RunMonitor(path)
        return _monitors[path]
