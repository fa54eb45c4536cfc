"""The results directory: where each run's files lie, and its metrics stream.

Layout, under a config's ``output_dir``::

  config.yaml                          the validated config, defaults filled in
  <optimizer>/seed<k>/metrics.jsonl    one JSON record a line, written as they come
  <optimizer>/seed<k>/checkpoints/     Orbax checkpoints (when checkpoint_every > 0)
  <optimizer>/<grid point>/seed<k>/    the same, for each point of a grid
  summary.md, summary.json             the comparison table (reports.py)
  loss.png, learning_rates.png         the plots (reports.py)

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

import json
import math
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from metaoptimize_optax.experiments.config import GridPoint, OptimizerConfig, slugify

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
