"""Training commands: train, runs, estimate."""

from __future__ import annotations

import json
import sys

from training.errors import UserError


def register(commands) -> None:
    train = commands.add_parser("train", help="train a model on a persona JSONL (see RunConfig for every field)")
    _train_arguments(train)
    train.set_defaults(handler=run_train_command)

    runs = commands.add_parser("runs", help="list training runs with their state and best eval loss")
    _runs_arguments(runs)
    runs.set_defaults(handler=run_runs_command)

    estimate = commands.add_parser("estimate", help="parameters, peak memory, time and cost of a run before it starts")
    _estimate_arguments(estimate)
    estimate.set_defaults(handler=run_estimate_command)


def _train_arguments(parser) -> None:
    from training.cli.flags import add_setting_flags
    from training.train.config import RunConfig

    parser.add_argument("config", nargs="?", help="config.yaml (a run folder's, or your own); default: a preset")
    parser.add_argument("--preset", help="start from a preset instead of a config file (default persona-small)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--wait", action="store_true", help="queue: wait until no other run is active")
    # Every RunConfig field is a flag (README: training settings); `preset` is the flag above.
    add_setting_flags(
        parser.add_argument_group("settings (override the config file or preset)"), RunConfig, skip=("preset",)
    )


def config_from_arguments(args):
    from training.cli.flags import setting_flags
    from training.train.config import RunConfig
    from training.train.presets import DEFAULT_PRESET, get_preset

    if args.config and args.preset:
        raise UserError("train: give a config file or --preset, not both")
    config = RunConfig.from_yaml(args.config) if args.config else get_preset(args.preset or DEFAULT_PRESET)
    config = config.with_overrides(**setting_flags(args, RunConfig))
    if args.resume and not config.output_dir:
        raise UserError("--resume: needs the run folder; pass <run>/config.yaml or --output <run>")
    return config


def run_train_command(args) -> None:
    from training.train.trainer import train

    status = train(config_from_arguments(args), resume=args.resume, wait=args.wait)
    summary = {key: status.get(key) for key in ("state", "reason", "step", "train_loss", "best_eval_loss", "final_dir")}
    print(json.dumps(summary))
    if status.get("state") == "failed":
        hint = f" ({status['hint']})" if status.get("hint") else ""
        print(f"error: {status.get('reason')}{hint}", file=sys.stderr)
        raise SystemExit(2 if status.get("kind") in ("user", "oom") else 1)


def _runs_arguments(parser) -> None:
    parser.add_argument("--root", help="runs folder (default <data dir>/runs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_runs_command(args) -> None:
    from training.train.runs import list_runs

    runs = list_runs(args.root)
    if args.json:
        print(json.dumps(runs, indent=2))
        return
    for run in runs:
        progress = f"{run['step'] or 0}/{run['total_steps'] or '?'}"
        best = f"{run['best_eval_loss']:.4f}" if run["best_eval_loss"] is not None else "-"
        duration = f"{run['duration_s']:.0f}s" if run["duration_s"] is not None else "-"
        print(f"{run['name']:<40} {run['state']:<10} {progress:>9} eval {best:>8} {duration:>7}  {run['model']}")


def _estimate_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", help="a run's config.yaml (or use --preset)")
    parser.add_argument("--preset", help="estimate a preset instead of a config file")
    parser.add_argument("--device", help="a Space GPU by name, e.g. 'Nvidia T4 small' (default: this machine)")
    parser.add_argument("--dollars-per-hour", type=float, help="price to cost the run at")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_estimate_command(args) -> None:
    from training.train.config import RunConfig
    from training.train.estimate import (
        device_by_name,
        estimate_for_data,
        format_estimate,
    )
    from training.train.presets import get_preset

    if bool(args.config) == bool(args.preset):
        raise UserError("estimate: give either a config.yaml or --preset NAME")
    config = get_preset(args.preset) if args.preset else RunConfig.from_yaml(args.config)
    device = device_by_name(args.device) if args.device else None
    result = estimate_for_data(config, device=device, dollars_per_hour=args.dollars_per_hour)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_estimate(result).replace("**", ""))
