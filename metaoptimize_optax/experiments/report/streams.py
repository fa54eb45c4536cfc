"""The online loss and the learned rates over each stream, task switches marked (``streams.png``).

One row per stream workload (``Workload.stream``): on the left the online loss
(each logged interval's mean of the batches' losses before their updates, mean
over seeds) of the chosen optimizers; on the right the learned rates of the
MetaOptimize ones, one line per block. Dotted vertical lines mark where the
stream changes (every ``task_steps`` or ``flip_every`` steps of the workload's
options), when that is rarer than every 100 steps. The loss axis ends at ten times
the median of the optimizers' first logged losses, so a diverging optimizer does not
flatten the other curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from metaoptimize_optax.experiments import plots
from metaoptimize_optax.experiments.report.loading import WorkloadResults

SWITCH_OPTIONS = ("task_steps", "flip_every")  # Workload options that say when a stream changes.
MIN_MARKED_INTERVAL = 100  # Changes more frequent than this are not marked (tracking: 20).


def switch_every(workload: WorkloadResults) -> int | None:
  """The steps between two changes of the stream, when the workload's options say so."""
  options = workload.results.config.workload.options or {}
  for key in SWITCH_OPTIONS:
    if isinstance(options.get(key), int) and options[key] >= MIN_MARKED_INTERVAL:
      return options[key]
  return None


def figure(workloads: Sequence[WorkloadResults], names: Sequence[str]) -> Figure:
  """A row per stream of ``workloads``: the online loss and the learned rates of the
  optimizers ``names`` (display names)."""
  rows = max(len(workloads), 1)
  fig = Figure(figsize=(13, 3.2 * rows))
  axes = fig.subplots(rows, 2, squeeze=False)
  for (ax_loss, ax_lr), workload in zip(axes, workloads, strict=False):
    every = switch_every(workload)
    starts = []
    for i, name in enumerate(names):
      res = workload.result(name)
      if res is None:
        continue
      color = plots.line_color(i, len(names))
      steps, loss = plots.online_loss_curve(res)
      ax_loss.plot(steps, loss, color=color, linewidth=1.0, label=name)
      starts += [x for x in loss[:1] if np.isfinite(x)]
      if res.is_metaoptimize:
        for k, (block, curve) in enumerate(plots.block_curves(res.chosen.runs).items()):
          alpha = 1.0 if k == 0 else 0.6
          ax_lr.plot(*curve, color=color, linewidth=1.0, alpha=alpha, label=f"{name}: {block}")
    for ax in (ax_loss, ax_lr):
      if every:
        last = workload.results.config.steps
        for s in range(every, last, every):
          ax.axvline(s, color="gray", linestyle=":", linewidth=0.6)
      ax.set_xlabel("step")
      ax.grid(alpha=0.3, which="both")
    ax_loss.set_yscale("log")
    if starts:  # A diverging optimizer would stretch the axis over every other curve.
      ax_loss.set_ylim(top=10 * float(np.median(starts)))
    ax_lr.set_yscale("log")
    marked = f", a change every {every} steps (dotted)" if every else ""
    ax_loss.set_title(f"{workload.label}: online loss{marked}", fontsize=9)
    ax_lr.set_title(f"{workload.label}: learned learning rates, by block", fontsize=9)
    for ax in (ax_loss, ax_lr):
      if ax.get_legend_handles_labels()[0]:  # Nothing to label where no optimizer ran.
        ax.legend(fontsize=6)
  fig.tight_layout()
  return fig
