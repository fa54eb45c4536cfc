"""The learned learning rates of every workload in one figure (``learning_rates.png``).

One panel per workload; in each, one line per MetaOptimize method: its learned
rate over the steps, the geometric mean over seeds (the rates span orders of
magnitude, and the axis is logarithmic). A method with several blocks (label or
per-layer rates) gets a thick line for the geometric mean over its blocks and a
thin, faint line per block, in the same color; a method keeps its color in
every panel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.report.loading import WorkloadResults
from metaoptimize_optax.experiments.results import RunRecords

Curve = tuple[np.ndarray, np.ndarray]  # Steps and rates.


def block_curves(runs: Sequence[RunRecords]) -> dict[str, Curve]:
  """Each block's logged rate over the steps, the geometric mean over runs (positive rates)."""
  logs: dict[str, dict[int, list[float]]] = {}
  for run in runs:
    for r in run.train:
      for block, rate in (r.get("learning_rate") or {}).items():
        if rate is not None and rate > 0:
          logs.setdefault(block, {}).setdefault(r["step"], []).append(math.log(rate))
  return {
    block: (np.asarray(sorted(by_step)), np.exp([np.mean(by_step[s]) for s in sorted(by_step)]))
    for block, by_step in logs.items()
  }


def mean_over_blocks(curves: Mapping[str, Curve]) -> Curve:
  """The geometric mean over blocks, at the steps every block logged."""
  common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves.values())))
  logs = [np.log(v[np.searchsorted(s, common)]) for s, v in curves.values()]
  return np.asarray(common), np.exp(np.mean(logs, axis=0))


def plot_learning_rates(workloads: Sequence[WorkloadResults], methods: Sequence[str]) -> Figure:
  """One panel per workload with the learned rates of ``methods`` (MetaOptimize display names)."""
  fig, axes = summary_lib.panel_axes(len(workloads), 6.5, 4.5)
  for ax, workload in zip(axes, workloads, strict=False):
    drawn = 0
    for i, method in enumerate(methods):
      res = workload.result(method)
      curves = block_curves(res.chosen.runs) if res is not None and res.is_metaoptimize else {}
      if not curves:
        continue
      color, label = summary_lib.line_color(i, len(methods)), summary_lib.run_label(res)
      if len(curves) > 1:
        for steps, rates in curves.values():
          ax.plot(steps, rates, color=color, linewidth=0.6, alpha=0.35)
        steps, rates = mean_over_blocks(curves)
        label += f" (mean of {len(curves)} blocks)"
      else:
        steps, rates = next(iter(curves.values()))
      ax.plot(steps, rates, color=color, linewidth=1.8, label=label)
      drawn += 1
    if drawn:
      ax.set_yscale("log")
      ax.legend(fontsize=7, ncol=2 if drawn > 8 else 1)
    else:
      ax.text(0.5, 0.5, "no MetaOptimize runs", ha="center", va="center", transform=ax.transAxes)
    seeds = len(workload.config.seeds)
    ax.set_title(f"{workload.label} ({workload.config.steps} steps, {seeds} seed(s))", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3, which="both")
  if not workloads:
    axes[0].text(0.5, 0.5, "no results", ha="center", va="center")
  fig.suptitle(
    "Learned learning rates, geometric mean over seeds\n"
    "several blocks: thick = their geometric mean, thin = each block",
    fontsize=10,
  )
  fig.tight_layout()
  return fig
