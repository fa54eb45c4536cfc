"""The quality table: the primary metric, training loss, final loss (and accuracy) of every
optimizer on every workload.

The first table ranks the optimizers of each workload by its primary metric (the
mean online loss of a stream, the held-out metric of a finite workload; see
:mod:`..workloads.base`); the final training loss stands beside it, then the
final (held-out) loss and accuracy. :func:`quality` gathers the cells as data
(``quality.json``); :func:`markdown` writes them as a table with one row per
workload (``quality.md``) or one row per optimizer (``quality_by_optimizer.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.report.loading import WorkloadResults
from metaoptimize_optax.experiments.workloads.base import higher_is_better

MISSING = "—"
Cell = dict[str, Any]


def stat_cell(stat: Mapping[str, float] | None, of: int, finished: int, diverged: int) -> Cell:
  """A cell from a final metric's ``{"mean", "std", "n"}`` over the runs that finished.

  ``of`` is the number of seeds of the config, ``finished`` and ``diverged``
  how many runs did. ``status`` is ``finished`` (every seed), ``partial``
  (some), ``diverged`` or ``incomplete`` (none finished; some diverged, or none
  did), or ``unmeasured`` (finished without this metric).
  """
  out = {
    "mean": None,
    "std": None,
    "n": 0,
    "of": of,
    "diverged": diverged,
    "incomplete": of - finished - diverged,
    "best": False,
  }
  if stat is None:
    status = "unmeasured" if finished else "diverged" if diverged else "incomplete"
    return {**out, "status": status, "text": MISSING if status == "unmeasured" else status}
  text = summary_lib.format_stat(stat)
  status = "finished" if stat["n"] == of else "partial"
  if status == "partial":
    text += f" ({stat['n']}/{of} seeds)"
  return {
    **out,
    "status": status,
    "text": text,
    "mean": stat["mean"],
    "std": stat["std"],
    "n": stat["n"],
  }


def cell(workload: WorkloadResults, name: str, metric: str) -> Cell:
  """The final ``metric`` of ``name`` on ``workload`` (see :func:`stat_cell`).

  ``status`` is ``missing`` where the optimizer did not run on the workload;
  ``point`` is the chosen grid point of a tuned optimizer.
  """
  row = workload.row(name)
  if row is None:
    return {"status": "missing", "text": MISSING, "best": False}
  out = stat_cell(
    row["metrics"].get(metric),
    len(workload.results.config.seeds),
    row["finished"],
    len(row["diverged"]),
  )
  return {**out, "point": row["grid"]["best"] if "grid" in row else None}


def mark_best(cells: Mapping[str, Cell], higher_is_better: bool) -> dict[str, Cell]:
  """``cells`` with ``best`` set on the best mean among those that finished every seed, and
  ``rank`` (1 = best) on each of those."""
  finished = sorted(
    (-c["mean"] if higher_is_better else c["mean"], m)
    for m, c in cells.items()
    if c["status"] == "finished"
  )
  if not finished:
    return dict(cells)
  ranks = {m: i + 1 for i, (_, m) in enumerate(finished)}
  best = finished[0][0]
  return {
    m: {
      **c,
      "best": m in ranks and (-c["mean"] if higher_is_better else c["mean"]) == best,
      **({"rank": ranks[m]} if m in ranks else {}),
    }
    for m, c in cells.items()
  }


def metric_row(workload: WorkloadResults, names: Sequence[str], metric: str) -> dict[str, Any]:
  """One row of a table: ``metric`` of each optimizer of ``names`` on ``workload``, the best
  marked."""
  cells = {m: cell(workload, m, metric) for m in names}
  return {
    "workload": workload.label,
    "metric": metric,
    "cells": mark_best(cells, higher_is_better=higher_is_better(metric)),
  }


def quality(workloads: Sequence[WorkloadResults], names: Sequence[str]) -> dict[str, Any]:
  """The quality tables as data (what ``quality.json`` holds).

  ``loss``: one row per workload, its test loss (train loss without a test
  split); ``accuracy``: the accuracy of the same split, for the workloads that
  measure one.
  """
  return {
    "optimizers": list(names),
    "primary": [metric_row(w, names, w.results.primary_metric) for w in workloads],
    "train_loss": [metric_row(w, names, "train_loss") for w in workloads],
    "workloads": [
      {
        "workload": w.label,
        "name": w.results.config.workload.name,
        "results_dir": w.results_dir,
        "steps": w.results.config.steps,
        "seeds": list(w.results.config.seeds),
      }
      for w in workloads
    ],
    "loss": [metric_row(w, names, w.loss_metric) for w in workloads],
    "accuracy": [metric_row(w, names, w.accuracy_metric) for w in workloads if w.accuracy_metric],
  }


def _md(text: str) -> str:
  return text.replace("|", "\\|")


def _text(c: Cell, ranked: bool = False) -> str:
  text = c["text"] + (f" (#{c['rank']})" if ranked and c.get("rank") else "")
  return f"**{text}**" if c["best"] else text


def table(
  rows: Sequence[Mapping[str, Any]],
  names: Sequence[str],
  by_optimizer: bool,
  ranked: bool = False,
) -> str:
  """A Markdown table: one row per workload, or (``by_optimizer``) one row per optimizer;
  ``ranked`` adds each cell's rank in its workload, ``(#k)``."""
  if by_optimizer:
    header = ["Optimizer", *(r["workload"] for r in rows)]
    body = [[m, *(_text(r["cells"][m], ranked) for r in rows)] for m in names]
  else:
    header = ["Workload", *names]
    body = [[r["workload"], *(_text(r["cells"][m], ranked) for m in names)] for r in rows]
  lines = ["| " + " | ".join(map(_md, header)) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(map(_md, line)) + " |" for line in body]
  return "\n".join(lines)


def metric_line(rows: Sequence[Mapping[str, Any]], by_optimizer: bool) -> str:
  """Which metric each row (column, ``by_optimizer``) uses, as one line."""
  groups: dict[str, list[str]] = {}
  for r in rows:
    groups.setdefault(r["metric"], []).append(r["workload"])
  what = "column" if by_optimizer else "row"
  parts = []
  for metric, labels in groups.items():
    name = metric.replace("_", " ")
    parts.append(f"{name}: {', '.join(labels)}")
  return f"Metric of each {what}: " + "; ".join(parts) + "."


def markdown(data: Mapping[str, Any], by_optimizer: bool = False) -> str:
  """``quality.md`` (one row per workload) or ``quality_by_optimizer.md`` (``by_optimizer``)."""
  names = data["optimizers"]
  line = "column" if by_optimizer else "row"
  parts = [
    "# Final quality across workloads",
    "",
    f"{len(data['workloads'])} workload(s), {len(names)} optimizer(s). Each cell: the final "
    "value (the last evaluation, as in each workload's summary.md), mean ± standard "
    "deviation over seeds; **bold**: the best of the " + line + " (lowest loss, highest "
    "accuracy or return) among the optimizers that finished every seed. A tuned optimizer "
    "shows its grid point with the lowest final training loss (on a stream, the lowest online "
    "loss; for an agent, the highest online return). "
    f"{MISSING}: not run on that workload; "
    "diverged / incomplete: no seed finished; (k/n seeds): only k of the n seeds finished.",
    "",
    "Results: "
    + "; ".join(
      f"{w['workload']}: `{w['results_dir']}` ({w['steps']} steps, {len(w['seeds'])} seed(s))"
      for w in data["workloads"]
    )
    + ".",
    "",
  ]

  def section(title: str, rows: Sequence[Mapping[str, Any]], *intro: str, ranked=False):
    return [
      f"## {title}",
      "",
      *intro,
      metric_line(rows, by_optimizer),
      "",
      table(rows, names, by_optimizer, ranked=ranked),
      "",
    ]

  if data.get("primary"):
    parts += section(
      "Primary metric",
      data["primary"],
      "Each workload's own score: the mean online loss over the whole run (each "
      "training batch's loss before the update on it) for a stream, the held-out "
      "metric for a finite workload, the final return (the mean episodic return over the "
      "last 10% of the iterations) for an agent; (#k): the rank in the workload.",
      "",
      ranked=True,
    )
    parts += section("Final training loss", data["train_loss"])
  if data["loss"] != data.get("train_loss"):  # Under --loss train, the same table.
    parts += section("Final loss", data["loss"])
  if data["accuracy"]:
    parts += section("Final accuracy", data["accuracy"])
  return "\n".join(parts)
