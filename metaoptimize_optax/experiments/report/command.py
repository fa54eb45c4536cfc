"""``metaoptimize-optax report``: one report across several results directories.

::

  metaoptimize-optax report results/mnist1d_mlp results/charlm results/robustness \\
      --output-dir results/report [--optimizers A,B,...] [--lr-optimizers A,...]

Writes ``quality.md``, ``quality.json``, ``quality_by_optimizer.md`` and
``learning_rates.png`` to the output directory (and ``robustness.md``,
``robustness.json``, ``robustness.png`` when a directory holds a MetaOptimize
learning-rate sweep, see :mod:`.robustness`); prints the quality table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Sequence
from typing import Any

from metaoptimize_optax.experiments.spec import ConfigError

ROBUSTNESS_FILES = ("robustness.md", "robustness.json", "robustness.png")


def add_report_subcommand(sub: Any) -> None:
  """Adds ``report`` to the subparsers ``sub`` of ``metaoptimize-optax``."""
  p = sub.add_parser(
    "report",
    help="one report across several results directories (workloads)",
    description="Gather the results directories of several compare runs (one per workload) "
    "into quality.md / quality.json (the final loss, and accuracy, of every "
    "optimizer on every workload: mean ± std over seeds, the best of each row in "
    "bold), quality_by_optimizer.md (the same, one row per optimizer), "
    "learning_rates.png (the learned rates, one panel per workload) and, for a "
    "directory with a MetaOptimize learning-rate sweep (e.g. "
    "the built-in config robustness), robustness.md / .json / .png (final loss against "
    "the initial learning rate, next to AdamW's against its fixed rate).",
  )
  p.add_argument(
    "results_dirs",
    nargs="+",
    metavar="RESULTS_DIR",
    help="results directories made by compare (or run), one per workload",
  )
  p.add_argument(
    "--output-dir",
    default="results/report",
    help="where to write the report (default results/report)",
  )
  p.add_argument(
    "--optimizers",
    action="append",
    metavar="NAME,NAME,...",
    help="the optimizers (display names) of the tables, in this order; default: "
    "all, in order of first appearance; repeatable",
  )
  p.add_argument(
    "--lr-optimizers",
    action="append",
    metavar="NAME,NAME,...",
    help="the MetaOptimize optimizers (display names) of learning_rates.png; default: "
    "those of the tables; repeatable",
  )
  p.add_argument(
    "--loss",
    choices=("held-out", "train"),
    default="held-out",
    help="the final loss of the tables and the robustness plot: the held-out "
    "(test) loss when the workload has one (default), or the training loss",
  )
  p.add_argument("-v", "--verbose", action="store_true", help="log more")


def write_cross_report(
  results_dirs: Sequence[str | pathlib.Path],
  output_dir: str | pathlib.Path,
  names: Sequence[str] | None = None,
  lr_optimizers: Sequence[str] | None = None,
  loss: str = "held-out",
) -> tuple[str, list[str]]:
  """Writes the report of ``results_dirs`` to ``output_dir``.

  Args:
    results_dirs: results directories, one row each, in this order.
    output_dir: created if needed; must not be one of ``results_dirs``.
    names: the table's columns (display names), in order; None: every optimizer.
    lr_optimizers: the MetaOptimize optimizers to draw; None: those among ``names``.
    loss: the final loss reported: "held-out" (test, when there is one) or "train".

  Returns:
    The Markdown to print (the quality tables, and the robustness tables when
    there are sweeps) and the names of the files written.

  Raises:
    ConfigError: for a directory that is not a results directory, an output
      directory among them, or an unknown display name.
  """
  from metaoptimize_optax.experiments.report import (
    learning_rates,
    loading,
    meta_parameters,
    quality,
    robustness,
    streams,
  )

  out = pathlib.Path(output_dir)
  if out.resolve() in {pathlib.Path(d).resolve() for d in results_dirs}:
    raise ConfigError(
      f"--output-dir {str(out)!r} is one of the results directories; "
      "write the report elsewhere (it would replace learning_rates.png)."
    )
  workloads = loading.load_workloads(results_dirs, loss)
  columns = loading.select(names, loading.all_display_names(workloads), "--optimizers")
  mo_names = loading.metaoptimize_display_names(workloads)
  drawn = (
    loading.select(lr_optimizers, mo_names, "--lr-optimizers", "MetaOptimize optimizers")
    if lr_optimizers is not None
    else [m for m in columns if m in mo_names]
  )

  out.mkdir(parents=True, exist_ok=True)
  data = quality.quality(workloads, columns)
  text = quality.markdown(data)
  (out / "quality.json").write_text(json.dumps(data, indent=2) + "\n")
  (out / "quality.md").write_text(text)
  (out / "quality_by_optimizer.md").write_text(quality.markdown(data, by_optimizer=True))
  learning_rates.figure(workloads, drawn).savefig(out / "learning_rates.png", dpi=110)
  written = ["quality.md", "quality.json", "quality_by_optimizer.md", "learning_rates.png"]
  for name in ("meta_parameters.png", "streams.png"):  # No stale plots from an earlier report.
    (out / name).unlink(missing_ok=True)
  on_streams = [w for w in workloads if w.results.primary_metric == "online_loss"]
  if on_streams:
    streams.figure(on_streams, columns).savefig(out / "streams.png", dpi=90)
    written.append("streams.png")
  if meta_parameters.learned_names(workloads, columns):
    figure = meta_parameters.figure(workloads, columns)
    figure.savefig(out / "meta_parameters.png", dpi=100)
    written.append("meta_parameters.png")

  sweeps = robustness.robustness(workloads)
  for name in ROBUSTNESS_FILES:  # No stale plot from an earlier report.
    (out / name).unlink(missing_ok=True)
  if sweeps["workloads"]:
    robust = robustness.markdown(sweeps)
    (out / "robustness.json").write_text(json.dumps(sweeps, indent=2) + "\n")
    (out / "robustness.md").write_text(robust)
    robustness.figure(sweeps).savefig(out / "robustness.png", dpi=110)
    text += "\n" + robust
    written += list(ROBUSTNESS_FILES)
  return text, written


def run(args: argparse.Namespace) -> int:
  """Runs ``report`` with parsed arguments; returns the exit status."""
  from metaoptimize_optax.experiments.report import loading

  text, written = write_cross_report(
    args.results_dirs,
    args.output_dir,
    loading.parse_names(args.optimizers),
    loading.parse_names(args.lr_optimizers),
    args.loss,
  )
  print(text)
  print(f"wrote {args.output_dir}/{{{', '.join(written)}}}")
  return 0
