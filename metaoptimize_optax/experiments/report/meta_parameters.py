"""The learned meta-parameters of every workload in one figure (``meta_parameters.png``).

One row per workload and one column per learned name (``b1``, ``b2``,
``weight_decay``, ...); in each panel, one line per optimizer that learned it: its
value over the steps, the mean over seeds. Written only when some run learned a
meta-parameter beside the learning rate.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from metaoptimize_optax.experiments import plots
from metaoptimize_optax.experiments.report.loading import WorkloadResults


def learned_names(workloads: Sequence[WorkloadResults], names: Sequence[str]) -> list[str]:
  """The meta-parameters any of the optimizers ``names`` learned on any workload, in order
  of appearance."""
  learned: dict[str, None] = {}
  for workload in workloads:
    for name in names:
      res = workload.result(name)
      if res is not None:
        learned.update(dict.fromkeys(plots.value_curves(res.chosen.runs)))
  return list(learned)


def figure(workloads: Sequence[WorkloadResults], names: Sequence[str]) -> Figure:
  """A workloads x learned-names grid of the learned values of the optimizers ``names``
  (display names)."""
  learned = learned_names(workloads, names)
  rows, cols = max(len(workloads), 1), max(len(learned), 1)
  fig = Figure(figsize=(4.2 * cols, 2.9 * rows))
  axes = fig.subplots(rows, cols, squeeze=False)
  for row, workload in zip(axes, workloads, strict=False):
    for ax, meta_parameter in zip(row, learned, strict=False):
      for i, name in enumerate(names):
        res = workload.result(name)
        curves = plots.value_curves(res.chosen.runs) if res is not None else {}
        if meta_parameter in curves:
          ax.plot(
            *curves[meta_parameter],
            color=plots.line_color(i, len(names)),
            label=plots.run_label(res),
          )
      ax.set_title(f"{workload.label}: {meta_parameter}", fontsize=9)
      ax.set_xlabel("step", fontsize=8)
      ax.grid(alpha=0.3)
      if ax.lines:
        ax.legend(fontsize=6)
      if meta_parameter == "weight_decay":
        ax.set_yscale("log")
  fig.suptitle("Learned meta-parameters, mean over seeds", fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.98))
  return fig
