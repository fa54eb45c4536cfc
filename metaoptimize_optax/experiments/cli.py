"""The ``metaoptimize-optax`` command line.

::

  metaoptimize-optax run CONFIG        train the config's optimizers (metrics, checkpoints)
  metaoptimize-optax compare CONFIG    train every optimizer on the same data and seeds,
                                       then write and print the summary and plots
  metaoptimize-optax summarize RESULTS_DIR  (re)write the summary and plots of a results dir
  metaoptimize-optax report RESULTS_DIR [RESULTS_DIR ...] --output-dir DIR
                                       one quality table, learning-rate figure (and
                                       robustness plot) across several results dirs
  metaoptimize-optax bench [--quick]   speed and memory of MetaOptimize against AdamW
  metaoptimize-optax configs           list the built-in configs (CONFIG: a name or a path)

The whole config is validated (keys, workload and its data, every optimizer and
grid point, the output directory) before anything is written or trained; a bad
config gets one message on stderr and exit status 2.

A config's workload may be a user's ``"package.module:factory"`` (returning a
``Workload``) and an optimizer any ``optax.<alias>`` (see the README). ``--set
KEY=VALUE`` overrides config values; the console's first line, ``config.yaml`` and
the summary describe the config after them. The "final training loss" printed for
each run is :func:`.results.final_train_loss`, the figure the table shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from metaoptimize_optax.experiments.benchmarks import add_bench_subcommand
from metaoptimize_optax.experiments.benchmarks import command as bench_command
from metaoptimize_optax.experiments.config import (
  ConfigError,
  ExperimentConfig,
  builtin_configs,
  load_config,
  parse_yaml,
)
from metaoptimize_optax.experiments.report import command as report_command

if TYPE_CHECKING:
  from metaoptimize_optax.experiments import runner

logger = logging.getLogger("metaoptimize_optax")


def _add_config_args(p: argparse.ArgumentParser) -> None:
  p.add_argument(
    "config",
    help="experiment config: a built-in name (e.g. quickstart; `metaoptimize-optax configs` "
    "lists them) or the path of a YAML file",
  )
  p.add_argument(
    "--set",
    dest="overrides",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="override a config value (dotted key, YAML value), e.g. --set steps=100 "
    "--set optimizers.AdamW.learning_rate=3e-3; repeatable",
  )
  p.add_argument("--output-dir", help="write results here instead of the config's output_dir")
  p.add_argument(
    "--resume",
    action="store_true",
    help="continue the runs in output_dir from their latest checkpoints (finished runs are kept)",
  )
  p.add_argument(
    "--overwrite", action="store_true", help="delete earlier results in output_dir first"
  )
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.add_argument("-v", "--verbose", action="store_true", help="log more")


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of ``metaoptimize-optax``."""
  parser = argparse.ArgumentParser(
    prog="metaoptimize-optax",
    description="Train and compare learning-rate adaptation methods (MetaOptimize and its "
    "peers) on the workloads of metaoptimize-optax.",
  )
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  run = sub.add_parser(
    "run",
    help="train the optimizers of a config",
    description="Train the optimizers of CONFIG (all, or those given with --optimizer) on "
    "every seed, streaming metrics to <output_dir>/<optimizer>/seed<k>/"
    "metrics.jsonl.",
  )
  _add_config_args(run)
  run.add_argument(
    "--optimizer",
    action="append",
    metavar="NAME",
    help="only this optimizer (its display name in the config); repeatable",
  )
  compare = sub.add_parser(
    "compare",
    help="train every optimizer of a config, then summarize",
    description="Train every optimizer of CONFIG on the same data and seeds, then write "
    "summary.md, summary.json, loss.png and learning_rates.png to the output "
    "directory and print the table.",
  )
  _add_config_args(compare)
  summarize = sub.add_parser(
    "summarize",
    help="summary and plots of a results directory",
    description="(Re)write summary.md, summary.json, loss.png and learning_rates.png of "
    "RESULTS_DIR (made by run or compare) and print the table.",
  )
  summarize.add_argument("results_dir", metavar="RESULTS_DIR")
  summarize.add_argument("-v", "--verbose", action="store_true", help="log more")
  report_command.add_report_subcommand(sub)
  add_bench_subcommand(sub)
  sub.add_parser(
    "configs",
    help="list the built-in configs",
    description="List the configs shipped with the package, each with the start of its "
    "description; run one by name, e.g. `metaoptimize-optax compare quickstart`.",
  )
  return parser


FINAL_LOSS_DEFINITION = (
  "final training loss: the loss on the workload's training split at the final params when it "
  "evaluates one, else the mean over the last logged interval; the table's train loss"
)


def headline(config: ExperimentConfig, overrides: Sequence[str] = ()) -> str:
  """One line saying what runs: the effective config, after ``--set`` overrides."""
  options = ", ".join(f"{k}={v!r}" for k, v in config.workload.options.items())
  workload = config.workload.name + (f" ({options})" if options else "")
  n = sum(len(o.points()) for o in config.optimizers)
  line = (
    f"{workload}: {config.steps} steps, seeds {list(config.seeds)}, "
    f"{len(config.optimizers)} optimizers ({n} settings), results in {config.output_dir}/"
  )
  sets = " ".join(f"--set {item}" for item in overrides)
  return f"{line}; {sets}" if sets else line


def _train(args: argparse.Namespace, *, compare: bool) -> int:
  from metaoptimize_optax.experiments import plan, runner
  from metaoptimize_optax.experiments import summary as summary_lib

  if args.resume and args.overwrite:
    raise ConfigError(
      "--resume and --overwrite exclude each other: continue the results in "
      "output_dir, or delete them and start again."
    )
  names = getattr(args, "optimizer", None)
  config = load_config(args.config, args.overrides)
  if args.output_dir:
    config = dataclasses.replace(config, output_dir=args.output_dir)
  if names:
    valid = [o.display_name for o in config.optimizers]
    unknown = [n for n in names if n not in valid]
    if unknown:
      raise ConfigError(
        f"--optimizer {', '.join(unknown)}: not in the config; its optimizers: {', '.join(valid)}."
      )
  # The workload and each selected optimizer, built once (with --optimizer, only those).
  resolved = plan.resolve(config, names=names)
  out = runner.prepare_output_dir(config, resume=args.resume, overwrite=args.overwrite)

  print(headline(config, args.overrides))
  start = time.perf_counter()
  outcomes = runner.run_experiment(
    config,
    resolved,
    resume=args.resume,
    overwrite=args.overwrite,
    progress=not args.no_progress,
    out=out,
    on_result=lambda o: print(run_line(o), flush=True),
  )
  if any(o.final_loss is not None for o in outcomes):
    print(f"({FINAL_LOSS_DEFINITION})")
  if compare:
    summary = summary_lib.write_summary(config.output_dir)
    print()
    print(summary_lib.console_table(summary))
    print(
      f"\nresults in {config.output_dir}/ (the full table in summary.md; loss.png, "
      f"learning_rates.png); {time.perf_counter() - start:.0f} s"
    )
  else:
    print(
      f"\nmetrics in {config.output_dir}/; `metaoptimize-optax summarize {config.output_dir}` "
      "summarizes them."
    )
  return 0


def run_line(o: runner.RunResult) -> str:
  """The console line of a run that ended: its status, step and final training loss."""
  point = f" [{o.grid_point}]" if o.grid_point else ""
  tail = (
    f"final training loss {o.final_loss:.4g}"
    if o.status == "finished" and o.final_loss is not None
    else o.reason or o.status
  )
  return f"{o.optimizer}{point} seed {o.seed}: {o.status} at step {o.step}; {tail}"


def _summarize(args: argparse.Namespace) -> int:
  from metaoptimize_optax.experiments import summary as summary_lib

  print(summary_lib.console_table(summary_lib.write_summary(args.results_dir)))
  print(f"\nwrote {args.results_dir}/summary.md, summary.json, loss.png, learning_rates.png")
  return 0


def _list_configs() -> int:
  names = builtin_configs()
  width = max(map(len, names))
  for name, path in names.items():
    about = " ".join(str((parse_yaml(path.read_text()) or {}).get("description", "")).split())
    line = f"{name.ljust(width)}  {about}"
    print(line if len(line) <= 100 else line[:99] + "…")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status."""
  args = build_parser().parse_args(argv)
  logging.basicConfig(
    level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
    format="%(levelname)s %(name)s: %(message)s",
  )
  try:
    if args.command == "bench":
      return bench_command.run(args)
    if args.command == "summarize":
      return _summarize(args)
    if args.command == "report":
      return report_command.run(args)
    if args.command == "configs":
      return _list_configs()
    return _train(args, compare=args.command == "compare")
  except ConfigError as e:
    print(f"metaoptimize-optax: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
