"""Robustness to the learning rate: final loss against the (initial) learning rate.

The paper's Fig. 2 claim: MetaOptimize reaches about the same final loss from
starting rates orders of magnitude apart, where a fixed-rate AdamW does not.

A sweep is read from an ordinary compare config. Every run of a results
directory is a point ``(registry name, parameters)``; its rate is
``initial_learning_rate`` for a MetaOptimize optimizer (``metaoptimize``,
``recommended``, ``hypergradient``) and ``learning_rate`` for the others, when
given explicitly (as a parameter or in a grid). The points with the same
registry name and the same other parameters form one family (one curve), and a
family with at least two rates is a sweep. So a grid over the rate::

  AdamW: {name: adamw, grid: {learning_rate: [1.0e-5, 1.0e-4, 1.0e-3]}}
  MetaOptimize: {name: metaoptimize, grid: {initial_learning_rate: [1.0e-5, 1.0e-4]}}

or separate entries that differ only in the rate (``MetaOptimize 1e-5:
{name: metaoptimize, initial_learning_rate: 1.0e-5}``, ...) both make one.
Every grid point counts here, not only the best one. A results directory gets
the robustness plot when it holds a MetaOptimize sweep; every sweep of it is
drawn then (the fixed-rate peers' too), each point the final loss of the
quality table (test loss, else train loss) or, on a stream (primary metric
``online_loss``), the mean online loss, mean ± std over seeds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from metaoptimize_optax.experiments import plots
from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.report import quality
from metaoptimize_optax.experiments.report.loading import WorkloadResults
from metaoptimize_optax.experiments.results import OptimizerResults, PointResults
from metaoptimize_optax.experiments.spec import format_value


@dataclasses.dataclass(frozen=True)
class SweepPoint:
  """One rate of a sweep: the run it comes from and its final loss (a quality cell)."""

  rate: float
  display_name: str  # The optimizer's.
  point: str  # The grid point's label ("" without a grid).
  cell: quality.Cell


@dataclasses.dataclass(frozen=True)
class Sweep:
  """One family: one optimizer and setting, several rates."""

  label: str
  name: str  # The registry name.
  parameter: str  # "initial_learning_rate" or "learning_rate".
  settings: Mapping[str, Any]  # The other parameters, the same at every point.
  metaoptimize: bool
  points: tuple[SweepPoint, ...]  # By rate.

  def to_dict(self) -> dict[str, Any]:
    """The sweep as data, with its best rate and spread (see :func:`spread`)."""
    best = best_point(self)
    return {
      "label": self.label,
      "name": self.name,
      "parameter": self.parameter,
      "settings": dict(self.settings),
      "metaoptimize": self.metaoptimize,
      "best_rate": None if best is None else best.rate,
      "median": median(self),
      "spread": spread(self),
      "points": [
        {"rate": p.rate, "optimizer": p.display_name, "point": p.point, **p.cell}
        for p in self.points
      ],
    }


def rate_parameter(res: OptimizerResults) -> str:
  """The parameter a sweep of this optimizer varies."""
  return "initial_learning_rate" if res.is_metaoptimize else "learning_rate"


def _rate(params: Mapping[str, Any], parameter: str) -> float | None:
  value = params.get(parameter)
  if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
    return None
  return float(value)


def point_cell(point: PointResults, metric: str, of: int) -> quality.Cell:
  """The final ``metric`` of one grid point over its seeds, as a quality cell."""
  return quality.stat_cell(
    summary_lib.final_stats(point.runs).get(metric),
    of,
    sum(r.status == "finished" for r in point.runs),
    sum(r.diverged is not None for r in point.runs),
  )


def _common_words(names: Sequence[str]) -> str:
  words = []
  for group in zip(*(n.split() for n in names), strict=False):
    if len(set(group)) > 1:
      break
    words.append(group[0])
  return " ".join(words)


def _settings_text(settings: Mapping[str, Any]) -> str:
  return ", ".join(f"{k}={format_value(v)}" for k, v in sorted(settings.items()))


def find_sweeps(workload: WorkloadResults) -> list[Sweep]:
  """Every family of ``workload`` with at least two rates, in order of first appearance."""
  metric, of = workload.sweep_metric, len(workload.results.config.seeds)
  families: dict[tuple[str, ...], dict[str, Any]] = {}
  for res in workload.results.optimizers:
    parameter = rate_parameter(res)
    for point in res.points:
      rate = _rate(point.point.params, parameter)
      if rate is None or not point.runs:
        continue
      settings = {k: v for k, v in point.point.params.items() if k != parameter}
      key = (res.optimizer.name, parameter, json.dumps(settings, sort_keys=True, default=str))
      family = families.setdefault(
        key, {"settings": settings, "mo": res.is_metaoptimize, "optimizers": [], "points": {}}
      )
      family["optimizers"] = list(
        dict.fromkeys([*family["optimizers"], res.optimizer.display_name])
      )
      family["points"].setdefault(
        rate,
        SweepPoint(
          rate, res.optimizer.display_name, point.point.label, point_cell(point, metric, of)
        ),
      )
  sweeps = []
  for (name, parameter, _), f in families.items():
    if len(f["points"]) < 2:
      continue
    names = f["optimizers"]
    label = names[0] if len(names) == 1 else (_common_words(names) or name)
    sweeps.append(
      Sweep(
        label,
        name,
        parameter,
        f["settings"],
        f["mo"],
        tuple(f["points"][r] for r in sorted(f["points"])),
      )
    )
  labels = [s.label for s in sweeps]
  return [
    s
    if labels.count(s.label) == 1
    else dataclasses.replace(s, label=f"{s.label} [{s.name}: {_settings_text(s.settings)}]")
    for s in sweeps
  ]


def has_robustness_sweep(sweeps: Sequence[Sweep]) -> bool:
  """Whether a workload's sweeps include a MetaOptimize one (and so get the plot)."""
  return any(s.metaoptimize for s in sweeps)


def best_point(sweep: Sweep) -> SweepPoint | None:
  """The rate with the lowest final loss among those that finished every seed."""
  done = [p for p in sweep.points if p.cell["status"] == "finished"]
  return min(done, key=lambda p: p.cell["mean"]) if done else None


def median(sweep: Sweep) -> float | None:
  """The median over the rates of the mean loss; None if a rate did not finish every seed."""
  if any(p.cell["status"] != "finished" for p in sweep.points):
    return None
  return float(np.median([p.cell["mean"] for p in sweep.points]))


def spread(sweep: Sweep) -> float | None:
  """Worst minus best mean loss over the rates; None (infinite) if a rate diverged."""
  if any(p.cell["status"] == "diverged" for p in sweep.points):
    return None
  means = [p.cell["mean"] for p in sweep.points if p.cell["mean"] is not None]
  return float(max(means) - min(means)) if means else None


def robustness(workloads: Sequence[WorkloadResults]) -> dict[str, Any]:
  """The sweeps of every workload that has a MetaOptimize one (``robustness.json``)."""
  out = []
  for w in workloads:
    sweeps = find_sweeps(w)
    if has_robustness_sweep(sweeps):
      out.append(
        {
          "workload": w.label,
          "results_dir": w.results_dir,
          "metric": w.sweep_metric,
          "sweeps": [s.to_dict() for s in sweeps],
        }
      )
  return {"workloads": out}


def metric_title(metric: str) -> str:
  """``"mean online loss"`` for ``online_loss``, else ``"final <metric>"``."""
  return "mean online loss" if metric == "online_loss" else f"final {metric.replace('_', ' ')}"


def _column(sweep: Mapping[str, Any]) -> str:
  return f"{sweep['label']}: {sweep['parameter'].replace('_', ' ')}"


def table(entry: Mapping[str, Any]) -> str:
  """One workload's sweeps as a Markdown table: one row per rate, one column per sweep."""
  sweeps = entry["sweeps"]
  rates = sorted({p["rate"] for s in sweeps for p in s["points"]})
  header = ["learning rate", *(_column(s) for s in sweeps)]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for rate in rates:
    cells = []
    for s in sweeps:
      p = next((p for p in s["points"] if p["rate"] == rate), None)
      text = quality.MISSING if p is None else p["text"]
      cells.append(f"**{text}**" if p is not None and p["rate"] == s["best_rate"] else text)
    lines.append(f"| {rate:g} | " + " | ".join(cells) + " |")
  best = [quality.MISSING if s["best_rate"] is None else f"{s['best_rate']:g}" for s in sweeps]
  lines.append("| best rate | " + " | ".join(best) + " |")
  medians = [quality.MISSING if s["median"] is None else f"{s['median']:.4g}" for s in sweeps]
  lines.append("| median | " + " | ".join(medians) + " |")
  spreads = ["∞ (a rate diverged)" if s["spread"] is None else f"{s['spread']:.4g}" for s in sweeps]
  lines.append("| worst − best | " + " | ".join(spreads) + " |")
  return "\n".join(lines)


def markdown(data: Mapping[str, Any]) -> str:
  """The whole ``robustness.md``."""
  parts = [
    "# Robustness to the learning rate",
    "",
    "The final loss (mean ± standard deviation over seeds; on a stream, the mean online "
    "loss) against the learning rate: MetaOptimize's initial learning rate, the others' "
    "fixed (or peak) learning rate. MetaOptimize learns its rate from the starting one, so "
    "its loss should vary little with it, where a fixed rate's does (the paper's Fig. 2). "
    "**bold**: the best rate of each optimizer (among those that finished every seed); "
    "median and worst − best: the median and the range of the loss over the rates.",
    "",
  ]
  for entry in data["workloads"]:
    parts += [
      f"## {entry['workload']}: {metric_title(entry['metric'])}",
      "",
      f"From `{entry['results_dir']}`.",
      "",
      table(entry),
      "",
    ]
  parts += ["![robustness](robustness.png)", ""]
  return "\n".join(parts)


def _draw(ax: Any, sweep: Mapping[str, Any], color: Any) -> list[float]:
  """Draws one sweep; returns the finite means drawn."""
  pts = [p for p in sweep["points"] if p["mean"] is not None]
  style = (
    {"linestyle": "-", "marker": "o", "linewidth": 2.0}
    if sweep["metaoptimize"]
    else {"linestyle": "--", "marker": "s", "linewidth": 1.3}
  )
  if pts:
    ax.errorbar(
      [p["rate"] for p in pts],
      [p["mean"] for p in pts],
      yerr=[p["std"] for p in pts],
      color=color,
      capsize=3,
      label=_column(sweep),
      **style,
    )
    partial = [p for p in pts if p["status"] == "partial"]
    if partial:
      ax.plot(
        [p["rate"] for p in partial],
        [p["mean"] for p in partial],
        linestyle="none",
        marker=style["marker"],
        markerfacecolor="white",
        color=color,
        zorder=5,
      )
  failed = [p["rate"] for p in sweep["points"] if p["mean"] is None]
  if failed:  # At the top of the panel: x in data, y in axes coordinates.
    ax.plot(
      failed,
      [0.97] * len(failed),
      linestyle="none",
      marker="x",
      markersize=9,
      color=color,
      transform=ax.get_xaxis_transform(),
      clip_on=False,
      label=None if pts else _column(sweep),
    )
  return [p["mean"] for p in pts]


def figure(data: Mapping[str, Any]) -> Figure:
  """One panel per workload: final loss against the (initial) learning rate, log x."""
  entries = data["workloads"]
  fig, axes = plots.panel_axes(len(entries), 6.5, 4.5, ncols=2)
  for ax, entry in zip(axes, entries, strict=False):
    means = []
    for i, sweep in enumerate(entry["sweeps"]):
      means += _draw(ax, sweep, plots.line_color(i, len(entry["sweeps"])))
    ax.set_xscale("log")
    if means and min(means) > 0 and max(means) / min(means) > 5:
      ax.set_yscale("log")
    ax.set_xlabel("learning rate (MetaOptimize: initial; others: fixed)")
    ax.set_ylabel(metric_title(entry["metric"]))
    ax.set_title(entry["workload"], fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
  if not entries:
    axes[0].text(0.5, 0.5, "no sweeps", ha="center", va="center")
  fig.suptitle(
    "Loss (final; on a stream, mean online) against the learning rate, mean ± std over seeds\n"
    "open marker: some seeds did not finish; x: none did",
    fontsize=10,
  )
  fig.tight_layout()
  return fig
