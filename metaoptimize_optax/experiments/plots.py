"""Figures of results, and the helpers every figure shares.

The figures of one results directory (written by :func:`.summary.write_summary`):

* :func:`loss_figure`: training loss (and evaluation loss) of every optimizer;
* :func:`learning_rate_figure`: the learned learning rate of each MetaOptimize
  optimizer over time, one line per block and seed, log scale (and the peers'
  rates in a last panel);
* :func:`meta_parameter_figure`: the learned meta-parameters over time.

The cross-workload report (:mod:`.report`) draws its own figures with the same
helpers: the colors (:func:`line_color`), the panel grid (:func:`panel_axes`),
the labels (:func:`run_label`) and the logged curves (:func:`block_curves`,
:func:`value_curves`, :func:`online_loss_curve`).

Figures are made with matplotlib's object-oriented ``Figure`` (drawn by the Agg
canvas; no pyplot state, no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from metaoptimize_optax.experiments.results import (
  OptimizerResults,
  Results,
  RunRecords,
  iter_events,
)

Curve = tuple[np.ndarray, np.ndarray]  # Steps and values.

# A curve of the loss figure with fewer points than this (a short run's evaluations) is
# drawn with markers too.
FEW_POINTS = 20


def _curve(runs: Sequence[RunRecords], event: str, key: str) -> tuple[np.ndarray, ...]:
  """Steps, mean, min and max of ``key`` over the runs that logged each step."""
  by_step: dict[int, list[float]] = {}
  for run in runs:
    for r in iter_events(run.records, event):
      if r.get(key) is not None:
        by_step.setdefault(r["step"], []).append(float(r[key]))
  steps = np.asarray(sorted(by_step))
  vals = [by_step[s] for s in steps]
  return (
    steps,
    np.asarray([np.mean(v) for v in vals]),
    np.asarray([np.min(v) for v in vals]),
    np.asarray([np.max(v) for v in vals]),
  )


def _eval_loss_key(loaded: Sequence[OptimizerResults]) -> str | None:
  keys = {
    k
    for res in loaded
    for run in res.chosen.runs
    for r in run.evals
    for k in r
    if k.endswith("_loss")
  }
  for preferred in ("test_loss", "valid_loss", "eval_loss"):
    if preferred in keys:
      return preferred
  return sorted(keys)[0] if keys else None


def run_label(res: OptimizerResults) -> str:
  """The display name, with the chosen grid point for a tuned optimizer."""
  point = res.chosen.point.label
  return res.optimizer.display_name + (f" ({point})" if res.optimizer.grid else "")


def line_color(i: int, n: int) -> Any:
  """The color of optimizer ``i`` of ``n`` (distinct for up to 20)."""
  return f"C{i % 10}" if n <= 10 else matplotlib.colormaps["tab20"](i % 20)


def panel_axes(n: int, width: float = 6.0, height: float = 4.2, ncols: int = 3) -> tuple[Any, list]:
  """A ``Figure`` with ``n`` panels (at least one) in rows of ``ncols``, and its axes."""
  ncols = max(1, min(n, ncols))
  nrows = max(1, -(-n // ncols))
  fig = Figure(figsize=(width * ncols, height * nrows))
  axes = fig.subplots(nrows, ncols, squeeze=False)
  flat = list(axes.ravel())
  for ax in flat[n:]:
    ax.set_visible(False)
  return fig, flat[: max(n, 1)]


def loss_figure(results: Results) -> Figure:
  """Training loss (and evaluation loss, or an agent's return) of every optimizer: mean
  over seeds, min–max band.

  Diverged runs are drawn up to their divergence (marked x) and left out of the
  y range. A curve of fewer than ``FEW_POINTS`` points (a short run's
  evaluations) shows them as markers.
  """
  config, loaded = results.config, results.optimizers
  eval_key = _eval_loss_key(loaded)
  panels = [
    ("train", "loss", "online training loss: each batch before its update (mean per log interval)")
  ]
  if eval_key:
    panels.append(("eval", eval_key, eval_key.replace("_", " ")))
  if any("return" in r for res in loaded for run in res.chosen.runs for r in run.train):
    panels.append(("train", "return", "episodic return (mean per log interval)"))
  fig, axes = panel_axes(len(panels), 6.5, 4.5)
  for ax, (event, key, title) in zip(axes, panels, strict=True):
    finite_range: list[float] = []
    for i, res in enumerate(loaded):
      color = line_color(i, len(loaded))
      steps, mean, lo, hi = _curve(res.chosen.runs, event, key)
      ax.plot(
        steps,
        mean,
        color=color,
        label=run_label(res),
        linewidth=2.0 if res.is_metaoptimize else 1.2,
        marker="o" if 0 < steps.size < FEW_POINTS else None,
        markersize=3,
      )
      if len(res.chosen.runs) > 1 and steps.size:
        ax.fill_between(steps, lo, hi, color=color, alpha=0.15, linewidth=0)
      diverged = [r.diverged["step"] for r in res.chosen.runs if r.diverged is not None]
      if diverged and steps.size:
        ax.plot([min(diverged)], [mean[-1]], marker="x", color=color, markersize=9)
      if not diverged:
        finite_range += [*lo, *hi]
    if finite_range:
      top, bottom = max(finite_range), min(finite_range)
      if bottom > 0 and key != "return":
        ax.set_yscale("log")
        ax.set_ylim(bottom / 1.3, top * 1.3)
      else:
        pad = 0.05 * (top - bottom or 1.0)
        ax.set_ylim(bottom - pad, top + pad)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
  axes[0].legend(fontsize=8)
  fig.suptitle(
    f"{config.workload.name}: loss, mean over {len(config.seeds)} seed(s), "
    "band min–max; x: diverged"
  )
  fig.tight_layout()
  return fig


def _draw_seeds(
  ax: Any,
  runs: Sequence[RunRecords],
  value: Callable[[dict[str, Any]], float | None],
  color: Any,
  label: str,
) -> None:
  """One line per run of ``value(train record)`` over the steps (None: not drawn there);
  the first run thicker, and the only one labelled."""
  for k, run in enumerate(runs):
    pts = [(r["step"], v) for r in run.train if (v := value(r)) is not None]
    if pts:
      steps, values = zip(*pts, strict=True)
      ax.plot(
        steps,
        values,
        color=color,
        linewidth=1.4 if k == 0 else 0.7,
        alpha=1.0 if k == 0 else 0.5,
        label=label if k == 0 else None,
      )


def learning_rate_figure(results: Results) -> Figure:
  """The learning rate of each MetaOptimize optimizer over time, one line per block.

  One panel per MetaOptimize optimizer with every seed (one color per block;
  the first seed drawn thicker), log scale, and a last panel with the peers'
  learning rates (schedules and estimates; first seed), in their loss-plot colors.
  """
  config, loaded = results.config, results.optimizers
  mo_results = [r for r in loaded if r.is_metaoptimize]
  peers = [(i, r) for i, r in enumerate(loaded) if not r.is_metaoptimize]
  fig, axes = panel_axes(len(mo_results) + bool(peers))
  for ax, res in zip(axes, mo_results, strict=False):
    blocks = list(
      dict.fromkeys(b for run in res.chosen.runs for r in run.train for b in r["learning_rate"])
    )
    for j, block in enumerate(blocks):
      _draw_seeds(
        ax,
        res.chosen.runs,
        lambda r, block=block: r["learning_rate"].get(block) or None,  # Positive rates only.
        color=f"C{j % 10}",
        label=block or '""',  # "": the leaves at the root.
      )
    ax.set_yscale("log")
    ax.set_title(f"{run_label(res)}: learned learning rate", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3, which="both")
    if 0 < len(blocks) <= 12:
      ax.legend(fontsize=7, title="block", title_fontsize=7)
  if peers:
    ax = axes[len(mo_results)]
    for i, res in peers:
      pts = [
        (r["step"], v)
        for r in res.chosen.runs[0].train
        for v in list(r["learning_rate"].values())[:1]
        if (v or 0) > 0
      ]
      if pts:
        s, v = zip(*pts, strict=True)
        ax.plot(s, v, color=line_color(i, len(loaded)), linestyle="--", label=run_label(res))
    ax.set_yscale("log")
    ax.set_title("peers: learning rate (schedule or estimate)", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
  if not loaded:
    axes[0].text(0.5, 0.5, "no runs", ha="center", va="center")
  fig.suptitle(f"{config.workload.name}: learning rates (log scale)")
  fig.tight_layout()
  return fig


def meta_parameter_figure(results: Results) -> Figure:
  """The learned meta-parameters over time: one panel per name, one line per optimizer.

  Every seed is drawn, the first thicker, in the optimizer's loss-plot color.
  """
  config, loaded = results.config, results.optimizers
  names = list(
    dict.fromkeys(
      name
      for res in loaded
      for run in res.chosen.runs
      for r in run.train
      for name in r.get("meta_parameters") or {}
    )
  )
  fig, axes = panel_axes(max(len(names), 1))
  for ax, name in zip(axes, names, strict=False):
    for i, res in enumerate(loaded):
      _draw_seeds(
        ax,
        res.chosen.runs,
        lambda r, name=name: (r.get("meta_parameters") or {}).get(name),
        color=line_color(i, len(loaded)),
        label=run_label(res),
      )
    ax.set_title(f"learned {name}", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  if not names:
    axes[0].text(0.5, 0.5, "no learned meta-parameters", ha="center", va="center")
  fig.suptitle(f"{config.workload.name}: meta-parameters learned beside the learning rate")
  fig.tight_layout()
  return fig


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


def value_curves(runs: Sequence[RunRecords]) -> dict[str, Curve]:
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


def online_loss_curve(res: OptimizerResults) -> Curve:
  """Steps and the logged online loss at each, mean over the chosen point's seeds.

  A loss logged as null (non-finite, as a run logs before it stops as diverged)
  makes that step's mean NaN, so the line ends where a seed diverged.
  """
  steps = sorted({r["step"] for run in res.chosen.runs for r in run.train})
  by_step: dict[int, list[float]] = {s: [] for s in steps}
  for run in res.chosen.runs:
    for r in run.train:
      by_step[r["step"]].append(np.nan if r["loss"] is None else r["loss"])
  return np.asarray(steps), np.asarray([np.mean(by_step[s]) for s in steps])
