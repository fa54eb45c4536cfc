"""Reports: the comparison table and plots of a results directory.

:func:`results.load_results` reads a results directory (see :mod:`.results`) into
:class:`results.Results`: one :class:`results.OptimizerResults` per optimizer of its
config, and the workload's primary metric; for an optimizer with a
grid it keeps the point with the lowest final training loss (the mean over
seeds of :func:`.results.final_train_loss`, the table's train loss; a diverged
run counts as infinite) or, on a
stream, the lowest mean online loss (for an agent, the highest mean online return), every
point having had the same budget.

Every run's training records are its *online* metrics (each batch's loss and
accuracy before the update on it, see :mod:`.runner`): ``online_loss`` and
``online_accuracy`` are their step-weighted means over the whole run, and
:func:`results.online_curve` their means over equal bins of the run. The workload's
``primary_metric`` (recorded by the runner in each run's start record; the
final training loss for results written before it was) ranks the optimizers.
:func:`write_summary` writes

* ``summary.md``: one row per optimizer: its rank by the primary metric, the
  primary metric, the training loss beside it, then the other final metrics
  (online, train and test loss and accuracy), mean ± standard deviation over
  seeds (finished runs only); for a stream, the online loss over the run in
  bins; the steps until
  the logged training loss first reached ``target_loss``; the time per step
  (first, compiling step excluded); notes on grids and diverged runs;
* ``summary.json``: the same, as data;
* ``loss.png``, ``learning_rates.png`` and, when some run learned one,
  ``meta_parameters.png``: the figures of :mod:`.plots`.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metaoptimize_optax.experiments import plots, results, spec
from metaoptimize_optax.experiments.spec import ExperimentConfig, format_value
from metaoptimize_optax.experiments.workloads import base
from metaoptimize_optax.experiments.workloads.base import ONLINE_PREFIX


def final_meta_parameters(runs: Sequence[results.RunRecords]) -> dict[str, dict[str, float]]:
  """Each learned meta-parameter's last logged value, mean and std over the runs."""
  last = [run.train[-1].get("meta_parameters") or {} for run in runs if run.train]
  names = dict.fromkeys(name for values in last for name in values)
  return {name: mean_std([v[name] for v in last if name in v]) for name in names}


# ----------------------------------------------------------------------------
# The table.


def _final_metrics(run: results.RunRecords) -> dict[str, float]:
  """``online_loss``, ``train_loss``, ``test_loss``, ``train_accuracy``, ... of a finished
  run: the online means over the run, and the final values."""
  out: dict[str, float] = {}
  train = run.train
  if train:
    out.update(run.online())
    out.update(
      {
        f"train_{k}": v
        for k, v in train[-1].items()
        if k not in spec.TRAIN_FIELDS and v is not None
      }
    )
  evals = run.evals
  if evals:  # Evaluation on a split overrides the running training metrics.
    out.update({k: v for k, v in evals[-1].items() if k not in ("event", "step") and v is not None})
  return out


def _steps_to_target(run: results.RunRecords, target: float) -> int | None:
  return next((r["step"] for r in run.train if r["loss"] is not None and r["loss"] <= target), None)


def mean_std(values: Sequence[float]) -> dict[str, float] | None:
  """``{"mean", "std", "n"}`` of ``values`` (population std); None when there are none."""
  if not values:
    return None
  return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def final_stats(runs: Sequence[results.RunRecords]) -> dict[str, dict[str, float] | None]:
  """Each final metric (``train_loss``, ``test_loss``, ...) of the finished runs.

  Returns:
    ``{metric: {"mean", "std", "n"}}`` over the runs that finished (``n`` of
    them logged the metric); {} when none finished.
  """
  metrics: dict[str, list[float]] = {}
  for run in runs:
    if run.status == "finished":
      for k, v in _final_metrics(run).items():
        metrics.setdefault(k, []).append(float(v))
  return {k: mean_std(v) for k, v in metrics.items()}


def mean_curve(runs: Sequence[results.RunRecords], steps: int, bins: int = 10) -> dict[str, Any]:
  """:func:`.results.online_curve` of each finished run, averaged (None where none has one)."""
  curves = [results.online_curve(r.train, steps, bins) for r in runs if r.status == "finished"]
  if not curves:
    return {}
  out: dict[str, Any] = {"step": curves[0]["step"]}
  for k in dict.fromkeys(k for c in curves for k in c if k != "step"):
    columns = zip(*(c.get(k, [None] * len(out["step"])) for c in curves), strict=True)
    out[k] = [None if any(v is None for v in col) else float(np.mean(col)) for col in columns]
  return out


def _metric_text(metric: str) -> str:
  return "final training loss" if metric == "train_loss" else metric.replace("_", " ")


def _best(metric: str) -> str:
  return "highest" if base.higher_is_better(metric) else "lowest"


def rank(rows: Sequence[Mapping[str, Any]], metric: str) -> list[int | None]:
  """Each row's rank (1 = best) by the mean of ``metric`` over the seeds, among the rows
  that finished every seed with it; None for the others."""
  better = base.higher_is_better(metric)
  scored = []
  for i, row in enumerate(rows):
    stat = row["metrics"].get(metric)
    if stat is not None and row["finished"] == len(row["seeds"]) and stat["n"] == row["finished"]:
      scored.append((-stat["mean"] if better else stat["mean"], i))
  out: list[int | None] = [None] * len(rows)
  for r, (_, i) in enumerate(sorted(scored)):
    out[i] = r + 1
  return out


def summarize(found: results.Results) -> dict[str, Any]:
  """The comparison as data (what ``summary.json`` holds)."""
  config, primary = found.config, found.primary_metric
  select = results.selection_metric(primary)
  rows = []
  for res in found.optimizers:
    runs = res.chosen.runs
    finished = [r for r in runs if r.status == "finished"]
    step_times = [
      float(np.mean(t))
      for t in ([r["step_time"] for r in run.train if r.get("step_time")] for run in runs)
      if t
    ]
    row: dict[str, Any] = {
      "optimizer": res.optimizer.display_name,
      "name": res.optimizer.name,
      "params": dict(res.chosen.point.params),
      "metaoptimize": res.is_metaoptimize,
      "seeds": [r.seed for r in runs],
      "finished": len(finished),
      "metrics": final_stats(runs),
      "step_time": mean_std(step_times),
      "diverged": [
        {"seed": r.seed, **{k: r.diverged[k] for k in ("step", "reason")}}
        for r in runs
        if r.diverged is not None
      ],
      "incomplete": [r.seed for r in runs if r.status == "incomplete"],
      "online_curve": mean_curve(runs, config.steps),
      "meta_parameters": final_meta_parameters(runs),
    }
    if config.target_loss is not None:
      reached = [
        s for s in (_steps_to_target(r, config.target_loss) for r in runs) if s is not None
      ]
      row["steps_to_target"] = {
        "reached": len(reached),
        "of": len(runs),
        **(mean_std(reached) or {}),
      }
    if res.optimizer.grid:
      row["grid"] = {
        "parameters": {k: list(v) for k, v in res.optimizer.grid.items()},
        "selected_by": f"{_best(select)} {_metric_text(select)}, mean over seeds, same budget",
        "best": res.chosen.point.label,
        "points": [
          {
            "point": p.point.label,
            "final_train_loss": None if math.isinf(p.score()) else p.score(),
            "score": None if math.isinf(p.score(select)) else p.score(select),
            "diverged": sum(r.diverged is not None for r in p.runs),
            "runs": len(p.runs),
          }
          for p in res.points
        ],
      }
    rows.append(row)
  for row, r in zip(rows, rank(rows, primary), strict=True):
    row["rank"] = r
  return {
    "workload": config.workload.name,
    "steps": config.steps,
    "seeds": list(config.seeds),
    "target_loss": config.target_loss,
    "primary_metric": primary,
    "selected_by": select,
    "optimizers": rows,
  }


def format_stat(stat: dict[str, float] | None, scale: float = 1.0, digits: int = 4) -> str:
  """``mean ± std`` (``digits`` and 2 significant digits); the mean alone for one seed."""
  if stat is None:
    return "—"
  mean = f"{scale * stat['mean']:.{digits}g}"
  return mean if stat["n"] == 1 else f"{mean} ± {scale * stat['std']:.2g}"


SPLIT_ORDER = ("online", "train")  # Splits shown first; the others follow by name.


def _columns(summary: dict[str, Any]) -> list[str]:
  """The metric columns: the primary metric, the training loss beside it, then every other
  ``<split>_<metric>`` the runs recorded (the workload's own metrics included): the losses,
  then the accuracies, then the other metrics by name; online and train before the others."""
  keys = {k for row in summary["optimizers"] for k in row["metrics"]}

  def order(key: str) -> tuple:
    split, _, metric = key.partition("_")
    rank = SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)
    return (metric != "loss", metric != "accuracy", metric, rank, split)

  first = [k for k in (summary.get("primary_metric"), "train_loss") if k in keys]
  return list(dict.fromkeys([*first, *sorted(keys, key=order)]))


def _notes(row: dict[str, Any]) -> str:
  notes = []
  if "grid" in row:
    grid = row["grid"]
    tried = "; ".join(
      f"{k} ∈ {{{', '.join(map(format_value, v))}}}" for k, v in grid["parameters"].items()
    )
    by = grid["selected_by"].split(",")[0].removeprefix("lowest ").removeprefix("highest ")
    notes.append(f"tuned: {tried}; best {grid['best']} by {by}")
  if row.get("meta_parameters"):
    learned = ", ".join(f"{k} {format_stat(v)}" for k, v in row["meta_parameters"].items())
    notes.append(f"learned (final): {learned}")
  if row["diverged"]:
    steps = ", ".join(str(d["step"]) for d in row["diverged"])
    notes.append(f"diverged in {len(row['diverged'])}/{len(row['seeds'])} seeds (step {steps})")
  if row["incomplete"]:
    notes.append(f"incomplete seeds {row['incomplete']}")
  return "; ".join(notes)


def _metric_cells(row: dict[str, Any], metrics: Sequence[str]) -> list[str]:
  """A row's ``metrics`` as table cells: mean ± std, or why there is none."""
  if not row["finished"]:
    return ["diverged" if row["diverged"] else "—"] * len(metrics)
  return [format_stat(row["metrics"].get(m)) for m in metrics]


def _place(row: dict[str, Any]) -> str:
  return "—" if row.get("rank") is None else str(row["rank"])


def table(summary: dict[str, Any]) -> str:
  """The comparison as a Markdown table."""
  columns = _columns(summary)
  target = summary.get("target_loss")
  primary = summary.get("primary_metric")
  header = [
    "Optimizer",
    "rank",
    *(c.replace("_", " ") + (" (primary)" if c == primary else "") for c in columns),
  ]
  if target is not None:
    header.append(f"steps to loss ≤ {target:g}")
  header += ["ms / step", "notes"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in summary["optimizers"]:
    cells = _metric_cells(row, columns)
    if target is not None:
      reach = row["steps_to_target"]
      cell = "not reached" if not reach["reached"] else f"{reach['mean']:.0f}"
      if reach["reached"] and reach["reached"] < reach["of"]:
        cell += f" ({reach['reached']}/{reach['of']} seeds)"
      cells.append(cell)
    st = row["step_time"]
    cells.append(format_stat(st, scale=1e3, digits=3))
    cells.append(_notes(row))
    lines.append("| " + " | ".join([row["optimizer"], _place(row), *cells]) + " |")
  return "\n".join(lines)


def curve_table(summary: dict[str, Any], metric: str = "loss") -> str:
  """The online ``metric`` of every optimizer over the run, one column per bin (Markdown)."""
  rows = [r for r in summary["optimizers"] if r.get("online_curve", {}).get(metric)]
  if not rows:
    return ""
  ends = rows[0]["online_curve"]["step"]
  starts = [0, *ends[:-1]]
  header = ["Optimizer", *(f"{a}–{b}" for a, b in zip(starts, ends, strict=True))]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in rows:
    cells = ["—" if v is None else f"{v:.4g}" for v in row["online_curve"][metric]]
    lines.append("| " + " | ".join([row["optimizer"], *cells]) + " |")
  return "\n".join(lines)


def summary_markdown(config: ExperimentConfig, summary: dict[str, Any]) -> str:
  """The whole ``summary.md``."""
  seeds = summary["seeds"]
  parts = [f"# {config.workload.name}: {len(summary['optimizers'])} optimizers", ""]
  if config.description:
    parts += [config.description.strip(), ""]
  primary = summary.get("primary_metric", "train_loss")
  parts += [
    f"{config.steps} steps, seeds {seeds}. Ranked by the primary metric of the workload, "
    f"**{primary.replace('_', ' ')}** (rank 1: the best mean among the optimizers that "
    "finished every seed). Online loss and accuracy: the mean over the whole run of each "
    "training batch's loss (accuracy) at the params before the update on it. Final metrics "
    "are the last evaluation (train loss and accuracy: the evaluation on the training split "
    "when the workload has one, else the mean over the last logged interval), mean ± "
    "standard deviation over the seeds that finished.",
  ]
  if primary.endswith("_return"):
    parts.append(
      "An agent: final return is the mean episodic return over the last 10% of the "
      "iterations; online return, its mean over the whole run (the area under the return "
      "curve per update); train return, over the last logged interval."
    )
  if config.target_loss is not None:
    parts.append(
      f"Steps to target: the first logged step at which the training loss "
      f"(mean over a log interval of {config.log_every} steps) was at most "
      f"{config.target_loss:g}, mean over the seeds that reached it."
    )
  parts.append(
    "Time per step: wall time with `block_until_ready`, first (compiling) step excluded."
  )
  if any("grid" in row for row in summary["optimizers"]):
    select = summary.get("selected_by", "train_loss")
    parts.append(
      "Tuned optimizers ran every grid point on the same budget and seeds; the "
      f"table shows the point with the {_best(select)} {_metric_text(select)}."
    )
  parts += ["", table(summary), ""]
  curve = curve_table(summary) if primary.startswith(ONLINE_PREFIX) else ""
  if curve:
    parts += [
      "Online loss over the run (mean over each bin of steps, mean over the seeds that finished):",
      "",
      curve,
      "",
    ]
  for row in summary["optimizers"]:
    if "grid" in row:
      what = _metric_text(summary.get("selected_by", "train_loss"))
      parts.append(f"Grid of {row['optimizer']} ({what}, mean over seeds):")
      for p in row["grid"]["points"]:
        score = p.get("score", p["final_train_loss"])
        loss = "diverged" if score is None else f"{score:.4g}"
        mark = "  ← best" if p["point"] == row["grid"]["best"] else ""
        parts.append(f"- {p['point']}: {loss}{mark}")
      parts.append("")
  parts += ["![loss](loss.png)", "", "![learning rates](learning_rates.png)", ""]
  return "\n".join(parts)


CONSOLE_WIDTH = 100  # The console table fits a terminal this wide.


def console_table(summary: dict[str, Any], width: int = CONSOLE_WIDTH) -> str:
  """The comparison in a terminal: rank, optimizer, the primary metric, the training loss and
  the time per step, aligned in at most ``width`` columns (names shortened to fit; the
  whole table is :func:`table`, in ``summary.md``)."""
  primary = summary.get("primary_metric") or "train_loss"
  metrics = list(dict.fromkeys([primary, "train_loss"]))
  header = ["rank", "optimizer", *(m.replace("_", " ") for m in metrics), "ms/step"]
  rows = []
  for row in summary["optimizers"]:
    cells = _metric_cells(row, metrics)
    rows.append([_place(row), row["optimizer"], *cells, format_stat(row["step_time"], 1e3, 3)])
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
  spare = width - (sum(widths) + 2 * (len(widths) - 1))
  if spare < 0:  # Shorten the names, the one free-length column.
    widths[1] = max(len(header[1]), widths[1] + spare)
  lines = []
  for r in [header, *rows]:
    name = r[1] if len(r[1]) <= widths[1] else r[1][: widths[1] - 1] + "…"
    cells = [r[0].rjust(widths[0]), name.ljust(widths[1])]
    cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
    lines.append("  ".join(cells).rstrip())
  return "\n".join(lines)


def write_summary(output_dir: str | pathlib.Path) -> dict[str, Any]:
  """Writes ``summary.md``, ``summary.json``, ``loss.png`` and ``learning_rates.png``
  (and ``meta_parameters.png`` when some run learned a meta-parameter).

  Returns:
    The summary (what ``summary.json`` holds).
  """
  out = pathlib.Path(output_dir)
  found = results.load_results(out)
  summary = summarize(found)
  (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  (out / "summary.md").write_text(summary_markdown(found.config, summary))
  figures = [("loss.png", plots.loss_figure), ("learning_rates.png", plots.learning_rate_figure)]
  if any(row["meta_parameters"] for row in summary["optimizers"]):
    figures.append(("meta_parameters.png", plots.meta_parameter_figure))
  for name, make in figures:
    make(found).savefig(out / name, dpi=110)
  return summary
