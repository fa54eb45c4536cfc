"""The results directory: where each run's files lie, and its metrics stream.

Layout, under a config's ``output_dir``::

  config.yaml                          the validated config, defaults filled in
  <optimizer>/seed<k>/metrics.jsonl    one JSON record a line, written as they come
  <optimizer>/seed<k>/checkpoints/     Orbax checkpoints (when checkpoint_every > 0)
  <optimizer>/<grid point>/seed<k>/    the same, for each point of a grid
  summary.md, summary.json             the comparison table (summary.py)
  loss.png, learning_rates.png         the figures (plots.py, written by summary.py)

Records of ``metrics.jsonl`` (``step`` counts the updates done):

* ``{"event": "start", "optimizer", "name", "params", "grid_point", "seed", "steps",
  "devices", "workload", "primary_metric", "stream"}``: ``primary_metric`` is the
  workload's (what ranks optimizers on it, e.g. ``"online_loss"``), ``stream``
  whether it is a stream;
* ``{"event": "train", "step", "loss", <other training metrics>, "learning_rate":
  {block: rate}, "step_time"}``: the online metrics (each batch's loss, accuracy,
  ... at the params before the update on it) averaged over the steps since the
  last record, the learning rates in effect at the last of them, and the mean
  seconds per step over the interval (``null`` when the interval only held the
  first, compiling step);
* ``{"event": "eval", "step", "<split>_<metric>": value, ...}``;
* ``{"event": "diverged", "step", "reason"}``: the first step whose training loss
  was not finite;
* ``{"event": "end", "status": "finished" | "diverged", "step"}``.

Non-finite numbers are written as ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

import numpy as np
import yaml

from metaoptimize_optax.experiments import spec
from metaoptimize_optax.experiments.spec import (
  ConfigError,
  ExperimentConfig,
  GridPoint,
  OptimizerConfig,
  slugify,
)
from metaoptimize_optax.experiments.workloads.base import ONLINE_PREFIX, higher_is_better

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


def run_dir(
  output_dir: str | pathlib.Path, optimizer: OptimizerConfig, point: GridPoint, seed: int
) -> pathlib.Path:
  """The directory of one run: ``<output_dir>/<optimizer>[/<grid point>]/seed<k>``."""
  base = pathlib.Path(output_dir) / optimizer.slug
  if point.label:
    base = base / slugify(point.label)
  return base / f"seed{seed}"


def _clean(value: Any) -> Any:
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, Mapping):
    return {str(k): _clean(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_clean(v) for v in value]
  return value


def write_record(stream: TextIO, record: Mapping[str, Any]) -> None:
  """Appends one record to an open metrics stream and flushes it."""
  stream.write(json.dumps(_clean(record), allow_nan=False) + "\n")
  stream.flush()


def read_records(path: str | pathlib.Path) -> list[dict[str, Any]]:
  """The records of a metrics file ([] when there is none); a torn last line is dropped."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  out = []
  for line in path.read_text().splitlines():
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      break
  return out


def truncate_records(path: str | pathlib.Path, step: int) -> None:
  """Keeps the records of a metrics file up to ``step`` (and its start record)."""
  kept = [
    r
    for r in read_records(path)
    if r.get("event") == "start" or (r.get("event") in ("train", "eval") and r["step"] <= step)
  ]
  pathlib.Path(path).write_text("".join(json.dumps(r) + "\n" for r in kept))


def end_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
  """The ``end`` record of a run, or None if it has not ended."""
  return next((r for r in reversed(records) if r.get("event") == "end"), None)


def final_train_loss(records: list[dict[str, Any]]) -> float | None:
  """The final training loss of a run, the one figure the console, tables and grids use.

  The ``train_loss`` of the run's last evaluation, when the workload evaluates on a training
  split and that evaluation is at (or after) the last logged step: the loss of the final
  params. Otherwise the mean training loss over the last logged interval (the batches'
  losses before each update). None when the run logged neither.
  """
  train = [r for r in records if r.get("event") == "train"]
  evals = [r for r in records if r.get("event") == "eval" and r.get("train_loss") is not None]
  if evals and (not train or evals[-1]["step"] >= train[-1]["step"]):
    return float(evals[-1]["train_loss"])
  if train and train[-1].get("loss") is not None:
    return float(train[-1]["loss"])
  return None


def iter_events(records: list[dict[str, Any]], event: str) -> Iterator[dict[str, Any]]:
  """The records of one kind (``"train"``, ``"eval"``, ...), in order."""
  return (r for r in records if r.get("event") == event)


# ----------------------------------------------------------------------------
# Reading a results directory.

Records = list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class RunRecords:
  """The metrics stream of one run."""

  seed: int
  records: Records

  @property
  def status(self) -> str:
    end = end_record(self.records)
    return end["status"] if end else "incomplete"

  @property
  def start(self) -> dict[str, Any] | None:
    return next(iter_events(self.records, spec.START), None)

  @property
  def train(self) -> Records:
    return list(iter_events(self.records, "train"))

  @property
  def evals(self) -> Records:
    return list(iter_events(self.records, "eval"))

  @property
  def diverged(self) -> dict[str, Any] | None:
    return next(iter_events(self.records, "diverged"), None)

  def train_loss_score(self) -> float:
    """:func:`.final_train_loss` (the table's train loss) as a score: infinite if the
    run diverged or has none (None there)."""
    loss = final_train_loss(self.records)
    return math.inf if self.diverged is not None or loss is None else loss

  def online(self) -> dict[str, float]:
    """``{"online_<metric>": mean}``: each training metric's step-weighted mean over the run.

    A train record holds the mean over its interval of each batch's metric before
    the update on it, so this is the mean over every step of the run.
    """
    return online_means(self.train)

  def online_score(self, metric: str = "online_loss") -> float:
    """``metric`` (an online loss, or return) of the run; the worst value (infinite, with
    the sign that is worse) if it diverged or has none."""
    value = self.online().get(metric)
    if self.diverged is not None or value is None:
      return -math.inf if higher_is_better(metric) else math.inf
    return value


def _interval_steps(train: Records) -> list[int]:
  """The number of steps each train record averages (its step minus the previous one's)."""
  steps = [r["step"] for r in train]
  return [b - a for a, b in zip([0, *steps[:-1]], steps, strict=True)]


def online_means(train: Records) -> dict[str, float]:
  """``{"online_<metric>": mean}`` over the steps of ``train`` records (weighted by interval)."""
  weights = _interval_steps(train)
  sums: dict[str, list[float]] = {}
  for r, w in zip(train, weights, strict=True):
    for k, v in r.items():
      if k not in spec.TRAIN_FIELDS and isinstance(v, int | float) and v is not None:
        acc = sums.setdefault(k, [0.0, 0])
        acc[0] += w * float(v)
        acc[1] += w
  return {f"{ONLINE_PREFIX}{k}": total / n for k, (total, n) in sums.items() if n}


def online_curve(train: Records, steps: int, bins: int = 10) -> dict[str, list[float | None]]:
  """Each online metric's mean over ``bins`` equal parts of a run of ``steps`` steps.

  Returns ``{"step": [end of each bin], "<metric>": [mean or None], ...}``; a
  record belongs to the bin holding its last step.
  """
  bins = max(1, min(bins, steps))
  ends = [round(steps * (i + 1) / bins) for i in range(bins)]
  out: dict[str, list[float | None]] = {"step": ends}
  per_bin: list[list[dict[str, Any]]] = [[] for _ in ends]
  for r, w in zip(train, _interval_steps(train), strict=True):
    i = min(int(np.searchsorted(ends, r["step"])), bins - 1)
    per_bin[i].append({**r, "_w": w})
  numeric = lambda v: isinstance(v, int | float) and not isinstance(v, bool)
  keys = list(
    dict.fromkeys(
      k for r in train for k, v in r.items() if k not in spec.TRAIN_FIELDS and numeric(v)
    )
  )
  for k in keys:
    values: list[float | None] = []
    for records in per_bin:
      pts = [(r["_w"], r[k]) for r in records if numeric(r.get(k))]
      total = sum(w for w, _ in pts)
      values.append(sum(w * v for w, v in pts) / total if total else None)
    out[k] = values
  return out


def selection_metric(primary: str) -> str:
  """What picks a grid point: the primary metric when it is an online loss (measured on
  training data, so no held-out data is used to tune); an agent's return over the whole
  run (``online_return``, the area under its return curve) when the primary metric is a
  return; else the final training loss."""
  if primary.endswith("_return"):
    return f"{ONLINE_PREFIX}return"
  online_loss = primary.startswith(ONLINE_PREFIX) and primary.endswith("_loss")
  return primary if online_loss else "train_loss"


@dataclasses.dataclass(frozen=True)
class PointResults:
  """The runs of one grid point (the only point without a grid)."""

  point: GridPoint
  runs: tuple[RunRecords, ...]

  def score(self, metric: str = "train_loss") -> float:
    """The mean over seeds of the final training loss, or of ``metric`` when it is an
    online metric (the worst value, infinite, when any run diverged)."""
    if not self.runs:
      return -math.inf if higher_is_better(metric) else math.inf
    if metric.startswith(ONLINE_PREFIX):
      return float(np.mean([r.online_score(metric) for r in self.runs]))
    return float(np.mean([r.train_loss_score() for r in self.runs]))


@dataclasses.dataclass(frozen=True)
class OptimizerResults:
  """One optimizer of the comparison: all its grid points and the chosen one."""

  optimizer: OptimizerConfig
  points: tuple[PointResults, ...]
  chosen: PointResults
  is_metaoptimize: bool


@dataclasses.dataclass(frozen=True)
class Results:
  """A results directory read back: its config, the runs of each optimizer that has any,
  and the workload's primary metric (from the runs' start records; ``"train_loss"`` for
  runs from before they recorded it)."""

  config: ExperimentConfig
  optimizers: tuple[OptimizerResults, ...]
  primary_metric: str


def load_results(output_dir: str | pathlib.Path) -> Results:
  """Reads a results directory: the config and every optimizer's runs.

  Raises:
    ConfigError: if the directory holds no ``config.yaml`` (not a results directory).
  """
  out = pathlib.Path(output_dir)
  path = out / CONFIG_FILE
  if not path.exists():
    raise ConfigError(
      f"{str(out)!r} is not a results directory: it has no {CONFIG_FILE} "
      "(run `metaoptimize-optax compare CONFIG` first)."
    )
  # Read by form: the config was validated when the runs were made.
  config = spec.from_plain(yaml.safe_load(path.read_text()) or {})
  found = []
  for opt in config.optimizers:
    points = []
    for point in opt.points():
      runs = []
      for seed in config.seeds:
        path = run_dir(out, opt, point, seed) / METRICS_FILE
        records = read_records(path)
        if any(r.get("event") == "train" for r in records) or end_record(records):
          runs.append(RunRecords(seed, records))
      points.append(PointResults(point, tuple(runs)))
    if any(p.runs for p in points):
      found.append((opt, points))
  starts = [run.start or {} for _, points in found for p in points for run in p.runs]
  primary = next((s["primary_metric"] for s in starts if s.get("primary_metric")), "train_loss")
  select = selection_metric(primary)
  loaded = []
  for opt, points in found:
    sign = -1.0 if higher_is_better(select) else 1.0
    chosen = min(points, key=lambda p: (sign * p.score(select), not p.runs))
    is_mo = _is_metaoptimize(opt, [run for p in points for run in p.runs])
    loaded.append(
      OptimizerResults(optimizer=opt, points=tuple(points), chosen=chosen, is_metaoptimize=is_mo)
    )
  return Results(config=config, optimizers=tuple(loaded), primary_metric=primary)


def _is_metaoptimize(optimizer: OptimizerConfig, runs: Sequence[RunRecords]) -> bool:
  """What the runs' start records say (by registry name for runs from before they did)."""
  for run in runs:
    if "metaoptimize" in (run.start or {}):
      return bool(run.start["metaoptimize"])
  return optimizer.name in spec.METAOPTIMIZE_NAMES_BEFORE_THE_FLAG
