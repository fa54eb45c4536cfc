"""The learned learning rates of every workload in one figure (``learning_rates.png``).

One panel per workload; in each, one line per MetaOptimize optimizer: its learned
rate over the steps, the geometric mean over seeds (the rates span orders of
magnitude, and the axis is logarithmic). An optimizer with several blocks (label or
per-layer rates) gets a thick line for the geometric mean over its blocks and a
thin, faint line per block, in the same color; an optimizer keeps its color in
every panel.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from metaoptimize_optax.experiments import plots
from metaoptimize_optax.experiments.report.loading import WorkloadResults


def figure(workloads: Sequence[WorkloadResults], names: Sequence[str]) -> Figure:
  """One panel per workload with the learned rates of the optimizers ``names`` (MetaOptimize
  display names)."""
  fig, axes = plots.panel_axes(len(workloads), 6.5, 4.5)
  for ax, workload in zip(axes, workloads, strict=False):
    drawn = 0
    for i, name in enumerate(names):
      res = workload.result(name)
      curves = (
        plots.block_curves(res.chosen.runs) if res is not None and res.is_metaoptimize else {}
      )
      if not curves:
        continue
      color, label = plots.line_color(i, len(names)), plots.run_label(res)
      if len(curves) > 1:
        for steps, rates in curves.values():
          ax.plot(steps, rates, color=color, linewidth=0.6, alpha=0.35)
        steps, rates = plots.mean_over_blocks(curves)
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
    seeds = len(workload.results.config.seeds)
    ax.set_title(
      f"{workload.label} ({workload.results.config.steps} steps, {seeds} seed(s))", fontsize=10
    )
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
