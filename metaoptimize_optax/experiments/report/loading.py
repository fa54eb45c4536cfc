"""Several results directories, one per workload, read for the cross-workload report."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

from metaoptimize_optax.experiments import results
from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.results import OptimizerResults, Results
from metaoptimize_optax.experiments.spec import ConfigError

# Split preference for a workload's final loss: a held-out split first, training last.
LOSS_SPLITS = ("test", "valid", "eval", "train")


@dataclasses.dataclass(frozen=True)
class WorkloadResults:
  """One results directory (one workload): its runs and its summary."""

  label: str  # The row name: the workload, with the directory when workloads repeat.
  results_dir: str
  results: Results
  summary: dict[str, Any]  # summary_lib.summarize: what summary.json holds.
  loss: str = "held-out"  # Which final loss to report: "held-out" (when there is one) or "train".

  @property
  def names(self) -> tuple[str, ...]:
    """The display names of the optimizers with runs, in config order."""
    return tuple(res.optimizer.display_name for res in self.results.optimizers)

  def result(self, name: str) -> OptimizerResults | None:
    """The results of the optimizer ``name`` (a display name), if it ran here."""
    return next((r for r in self.results.optimizers if r.optimizer.display_name == name), None)

  def row(self, name: str) -> dict[str, Any] | None:
    """The summary row of ``name`` (see ``summary.json``), if it ran here."""
    return next((r for r in self.summary["optimizers"] if r["optimizer"] == name), None)

  @property
  def metric_keys(self) -> set[str]:
    """Every final metric some optimizer of this workload has."""
    return {k for row in self.summary["optimizers"] for k in row["metrics"]}

  @property
  def loss_metric(self) -> str:
    """The final loss the report uses: ``test_loss`` when there is one (and ``loss`` is
    "held-out"), else ``train_loss``."""
    keys = self.metric_keys
    if self.loss == "train":
      return "train_loss"
    return next((f"{s}_loss" for s in LOSS_SPLITS if f"{s}_loss" in keys), "train_loss")

  @property
  def sweep_metric(self) -> str:
    """What a learning-rate sweep is scored by: the mean online loss on a stream (its
    primary metric; ``loss="train"`` keeps the training loss), else :attr:`loss_metric`."""
    online = self.results.primary_metric == "online_loss" and self.loss == "held-out"
    return "online_loss" if online else self.loss_metric

  @property
  def accuracy_metric(self) -> str | None:
    """The held-out accuracy (test when there is one), when the workload measures one."""
    keys = self.metric_keys
    return next((f"{s}_accuracy" for s in LOSS_SPLITS if f"{s}_accuracy" in keys), None)


def row_labels(names: Sequence[str], dirs: Sequence[str]) -> list[str]:
  """Workload names as row labels, ``name (directory)`` where a name repeats."""
  labels = [
    n if names.count(n) == 1 else f"{n} ({pathlib.Path(d).name})"
    for n, d in zip(names, dirs, strict=True)
  ]
  return [lab if labels.count(lab) == 1 else f"{lab} #{i + 1}" for i, lab in enumerate(labels)]


def load_workloads(
  results_dirs: Sequence[str | pathlib.Path], loss: str = "held-out"
) -> list[WorkloadResults]:
  """Reads each results directory (made by ``compare`` or ``run``), in the order given.

  ``loss`` chooses the final loss of the tables: ``"held-out"`` or ``"train"``.

  Raises:
    ConfigError: if a directory is not a results directory, or is given twice.
  """
  dirs = [str(d) for d in results_dirs]
  resolved = [pathlib.Path(d).resolve() for d in dirs]
  twice = sorted({d for d, r in zip(dirs, resolved, strict=True) if resolved.count(r) > 1})
  if twice:
    raise ConfigError(f"results directories given more than once: {', '.join(twice)}.")
  found = [results.load_results(d) for d in dirs]
  labels = row_labels([f.config.workload.name for f in found], dirs)
  return [
    WorkloadResults(
      label=label, results_dir=d, results=f, summary=summary_lib.summarize(f), loss=loss
    )
    for label, d, f in zip(labels, dirs, found, strict=True)
  ]


def all_display_names(workloads: Iterable[WorkloadResults]) -> list[str]:
  """Every display name, in order of first appearance across the workloads."""
  return list(dict.fromkeys(m for w in workloads for m in w.names))


def metaoptimize_display_names(workloads: Iterable[WorkloadResults]) -> list[str]:
  """The display names of the MetaOptimize optimizers, in order of first appearance."""
  return list(
    dict.fromkeys(
      r.optimizer.display_name for w in workloads for r in w.results.optimizers if r.is_metaoptimize
    )
  )


def parse_names(values: Sequence[str] | None) -> list[str] | None:
  """``--optimizers A,B --optimizers C`` as ``[A, B, C]`` (None when not given)."""
  if not values:
    return None
  return [n.strip() for v in values for n in v.split(",") if n.strip()]


def select(
  names: Sequence[str] | None, available: Sequence[str], option: str, what: str = "optimizers"
) -> list[str]:
  """The names chosen with ``option`` (all ``available`` when None), checked.

  Raises:
    ConfigError: for a name not in ``available`` (the message lists them).
  """
  if names is None:
    return list(available)
  unknown = [n for n in names if n not in available]
  if unknown:
    raise ConfigError(
      f"{option} {', '.join(map(repr, unknown))}: not found; the {what} of "
      f"these results: {', '.join(available) or '(none)'}."
    )
  return list(dict.fromkeys(names))
