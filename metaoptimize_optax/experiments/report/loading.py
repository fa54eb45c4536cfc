"""Several results directories, one per workload, read for the cross-workload report."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

from metaoptimize_optax.experiments import results
from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.results import OptimizerResults
from metaoptimize_optax.experiments.spec import ConfigError, ExperimentConfig

# Split preference for a workload's final loss: a held-out split first, training last.
LOSS_SPLITS = ("test", "valid", "eval", "train")


@dataclasses.dataclass(frozen=True)
class WorkloadResults:
  """One results directory (one workload): its runs and its summary."""

  label: str  # The row name: the workload, with the directory when workloads repeat.
  results_dir: str
  config: ExperimentConfig
  loaded: tuple[OptimizerResults, ...]
  summary: dict[str, Any]  # summary_lib.summarize: what summary.json holds.
  loss: str = "held-out"  # Which final loss to report: "held-out" (when there is one) or "train".

  @property
  def methods(self) -> tuple[str, ...]:
    """The display names of the optimizers with runs, in config order."""
    return tuple(res.optimizer.display_name for res in self.loaded)

  def result(self, method: str) -> OptimizerResults | None:
    """The results of the optimizer ``method`` (a display name), if it ran here."""
    return next((r for r in self.loaded if r.optimizer.display_name == method), None)

  def row(self, method: str) -> dict[str, Any] | None:
    """The summary row of ``method`` (see ``summary.json``), if it ran here."""
    return next((r for r in self.summary["optimizers"] if r["optimizer"] == method), None)

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
  def primary_metric(self) -> str:
    """The workload's primary metric (what its runs recorded; "train_loss" for results
    from before it was recorded)."""
    return self.summary.get("primary_metric") or "train_loss"

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
  loaded = [results.load_results(d) for d in dirs]
  labels = row_labels([c.workload.name for c, _ in loaded], dirs)
  return [
    WorkloadResults(label, d, config, tuple(res), summary_lib.summarize(config, res), loss)
    for label, d, (config, res) in zip(labels, dirs, loaded, strict=True)
  ]


def all_methods(workloads: Iterable[WorkloadResults]) -> list[str]:
  """Every display name, in order of first appearance across the workloads."""
  return list(dict.fromkeys(m for w in workloads for m in w.methods))


def metaoptimize_methods(workloads: Iterable[WorkloadResults]) -> list[str]:
  """The display names of the MetaOptimize optimizers, in order of first appearance."""
  return list(
    dict.fromkeys(
      r.optimizer.display_name for w in workloads for r in w.loaded if r.is_metaoptimize
    )
  )


def parse_names(values: Sequence[str] | None) -> list[str] | None:
  """``--methods A,B --methods C`` as ``[A, B, C]`` (None when not given)."""
  if not values:
    return None
  return [n.strip() for v in values for n in v.split(",") if n.strip()]


def select(
  names: Sequence[str] | None, available: Sequence[str], option: str, what: str = "methods"
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
