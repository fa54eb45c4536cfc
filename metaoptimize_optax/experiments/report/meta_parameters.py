"""The learned meta-parameters of every workload in one figure (``meta_parameters.png``).

One row per workload and one column per learned name (``b1``, ``b2``,
``weight_decay``, ...); in each panel, one line per method that learned it: its
value over the steps, the mean over seeds. Written only when some run learned a
meta-parameter beside the learning rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.report.loading import WorkloadResults
from metaoptimize_optax.experiments.results import RunRecords


def value_curves(runs: Sequence[RunRecords]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Each learned meta-parameter's logged value over the steps, the mean over runs."""
  logs: dict[str, dict[int, list[float]]] = {}
  for run in runs:
    for r in run.train:
      for name, value in (r.get("meta_parameters") or {}).items():
        logs.setdefault(name, {}).setdefault(r["step"], []).append(value)
  return {
    name: (np.asarray(sorted(by_step)), np.asarray([np.mean(by_step[s]) for s in sorted(by_step)]))
    for name, by_step in logs.items()
  }


def learned_names(workloads: Sequence[WorkloadResults], methods: Sequence[str]) -> list[str]:
  """The meta-parameters any of ``methods`` learned on any workload, in order of appearance."""
  names = {}
  for workload in workloads:
    for method in methods:
      res = workload.result(method)
      if res is not None:
        names.update(dict.fromkeys(value_curves(res.chosen.runs)))
  return list(names)


def plot_meta_parameters(workloads: Sequence[WorkloadResults], methods: Sequence[str]) -> Figure:
  """A workloads x names grid of the learned values of ``methods`` (display names)."""
  import matplotlib.pyplot as plt

  names = learned_names(workloads, methods)
  rows, cols = max(len(workloads), 1), max(len(names), 1)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
  for row, workload in zip(axes, workloads, strict=False):
    for ax, name in zip(row, names, strict=False):
      for i, method in enumerate(methods):
        res = workload.result(method)
        curve = value_curves(res.chosen.runs).get(name) if res is not None else None
        if curve is not None:
          ax.plot(
            *curve, color=summary_lib.line_color(i, len(methods)), label=summary_lib.run_label(res)
          )
      ax.set_title(f"{workload.label}: {name}", fontsize=9)
      ax.set_xlabel("step", fontsize=8)
      ax.grid(alpha=0.3)
      if ax.lines:
        ax.legend(fontsize=6)
      if name == "weight_decay":
        ax.set_yscale("log")
  fig.suptitle("Learned meta-parameters, mean over seeds", fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.98))
  return fig
