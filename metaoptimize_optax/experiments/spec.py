"""The experiment's data types and the names of its file fields, written once.

A leaf module: the config (:mod:`.config`) turns YAML into these types, the
plan (:mod:`.plan`) resolves them, and the results (:mod:`.results`), summary
and report read a results directory back with these types, without the
config's validation or the optimizer registry. The fields of the runner's
start record and the optimizer-side fields of its train records are listed
here; the tests pin them against what :mod:`.runner` writes, so a rename is a
change of the file format on purpose.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from typing import Any

START = "start"  # The event of a run's first record in metrics.jsonl.
# The fields of the start record: what ran, so that reading a results directory
# needs neither the config's validation nor the optimizer registry.
START_FIELDS = (
  "event",
  "optimizer",  # The display name.
  "name",  # The registry name.
  "metaoptimize",  # Whether the optimizer's rates are learned (MetaOptimize).
  "params",
  "grid_point",
  "seed",
  "steps",
  "devices",
  "workload",
  "primary_metric",
  "stream",
)
# The optimizer-side fields of a train record (beside the workload's metrics).
TRAIN_FIELDS = ("event", "step", "learning_rate", "meta_parameters", "step_time")
# Registry names of the MetaOptimize entries, for results written before the start
# record said so ("metaoptimize" absent).
METAOPTIMIZE_NAMES_BEFORE_THE_FLAG = ("metaoptimize", "hypergradient", "recommended")


class ConfigError(ValueError):
  """A config that cannot be run, with a message saying why and what is valid."""


@dataclasses.dataclass(frozen=True)
class WorkloadConfig:
  """The workload: a name for ``get_workload`` and its keyword options."""

  name: str
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class GridPoint:
  """One setting of an optimizer: its registry parameters and a short label."""

  label: str  # "" without a grid, else e.g. "learning_rate=0.003".
  params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """One optimizer to compare, as the config names it."""

  display_name: str  # The name in tables and plots (the config's key).
  name: str  # The registry name.
  params: Mapping[str, Any]  # Registry parameters, outside the grid.
  grid: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)

  @property
  def slug(self) -> str:
    """The display name as a directory name."""
    return slugify(self.display_name)

  def points(self) -> tuple[GridPoint, ...]:
    """Every grid point (one point, labelled "", without a grid)."""
    if not self.grid:
      return (GridPoint("", dict(self.params)),)
    keys = list(self.grid)
    out = []
    for values in itertools.product(*(self.grid[k] for k in keys)):
      label = ",".join(f"{k}={format_value(v)}" for k, v in zip(keys, values, strict=True))
      out.append(GridPoint(label, {**self.params, **dict(zip(keys, values, strict=True))}))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """A validated experiment: one workload, a budget and the optimizers to compare."""

  workload: WorkloadConfig
  optimizers: tuple[OptimizerConfig, ...]
  steps: int
  seeds: tuple[int, ...] = (0,)
  log_every: int = 10
  eval_every: int = 0  # 0: evaluate at the end only.
  checkpoint_every: int = 0  # 0: no checkpoints.
  output_dir: str = "results"
  target_loss: float | None = None
  data_parallel: bool = True
  description: str = ""

  def to_dict(self) -> dict[str, Any]:
    """The config as plain data (the YAML schema, defaults filled in)."""
    return {
      "description": self.description,
      "workload": {"name": self.workload.name, "options": dict(self.workload.options)},
      "steps": self.steps,
      "seeds": list(self.seeds),
      "log_every": self.log_every,
      "eval_every": self.eval_every,
      "checkpoint_every": self.checkpoint_every,
      "output_dir": self.output_dir,
      "target_loss": self.target_loss,
      "data_parallel": self.data_parallel,
      "optimizers": {
        o.display_name: {
          "name": o.name,
          **o.params,
          **({"grid": {k: list(v) for k, v in o.grid.items()}} if o.grid else {}),
        }
        for o in self.optimizers
      },
    }


TOP_LEVEL_KEYS = (
  "description",
  "workload",
  "steps",
  "seeds",
  "log_every",
  "eval_every",
  "checkpoint_every",
  "output_dir",
  "target_loss",
  "data_parallel",
  "optimizers",
)
WORKLOAD_KEYS = ("name", "options")


def slugify(name: str) -> str:
  """``name`` with every run of characters other than ``[A-Za-z0-9._-]`` as one '_'."""
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


def format_value(v: Any) -> str:
  """A parameter value as grid labels and reports show it (floats in ``%g``)."""
  return f"{v:g}" if isinstance(v, float) else str(v)


def from_plain(raw: Mapping[str, Any]) -> ExperimentConfig:
  """The config as :meth:`ExperimentConfig.to_dict` wrote it (a results directory's
  ``config.yaml``), read back by form alone: no validation, no registry."""
  optimizers = []
  for display_name, entry in (raw.get("optimizers") or {}).items():
    params = dict(entry)
    name, grid = params.pop("name"), params.pop("grid", None) or {}
    optimizers.append(
      OptimizerConfig(display_name, name, params, {k: tuple(v) for k, v in grid.items()})
    )
  workload = raw["workload"]
  return ExperimentConfig(
    workload=WorkloadConfig(workload["name"], dict(workload.get("options") or {})),
    optimizers=tuple(optimizers),
    steps=raw["steps"],
    seeds=tuple(raw.get("seeds", (0,))),
    log_every=raw.get("log_every", 10),
    eval_every=raw.get("eval_every", 0),
    checkpoint_every=raw.get("checkpoint_every", 0),
    output_dir=raw.get("output_dir", "results"),
    target_loss=raw.get("target_loss"),
    data_parallel=raw.get("data_parallel", True),
    description=raw.get("description", ""),
  )
