"""The workload interface: data, model and loss of one training task.

A workload is a bundle of pure functions, so a train step built on it is one
jitted pure function and a run is reproducible and resumable from ``(seed, step)``
alone:

* ``init(key) -> (params, model_state)``: the trainable parameters as a plain
  nested dict of arrays (Flax NNX modules are split with ``nnx.split`` and turned
  into pure dicts), and the non-trainable state (for example BatchNorm
  statistics; ``{}`` when there is none).
* ``loss(params, model_state, batch, train) -> (loss, (metrics, model_state))``:
  the mean minibatch loss (a 0-d float array), a dict of 0-d metrics (always
  ``"loss"``; ``"accuracy"`` for classifiers) and the updated model state.
* ``train_batch(seed, step) -> batch``: the minibatch of step ``step`` as a dict of
  NumPy arrays whose leading axis is the batch axis; a pure function of
  ``(seed, step)``.
* ``eval_batches(seed, step) -> {split: [batch, ...]}``: the evaluation sets
  of training step ``step`` (0-based; a non-stationary workload evaluates on the
  task that step ``step`` trains on, and the runner passes the last step it
  trained); metrics are averaged over the batches, weighted by batch size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

Params = Any
ModelState = Any
Batch = Mapping[str, np.ndarray]
LossFn = Callable[[Params, ModelState, Batch, bool], tuple[jax.Array, tuple[dict, ModelState]]]


@dataclasses.dataclass(frozen=True)
class Workload:
  """One training task: data, model and loss, all pure functions."""

  name: str
  init: Callable[[jax.Array], tuple[Params, ModelState]]
  loss: LossFn
  train_batch: Callable[[int, int], Batch]
  eval_batches: Callable[[int, int], dict[str, Sequence[Batch]]]
  # Metric names the loss reports, e.g. ("loss", "accuracy").
  metrics: tuple[str, ...] = ("loss",)
  # Suggested run length and evaluation interval for configs that omit them.
  default_steps: int = 1000
  description: str = ""
