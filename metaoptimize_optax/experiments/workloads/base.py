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

Each workload declares its ``primary_metric``, the one number that ranks
optimizers on it (reports, ``compare``, ``report``):

* a stream (a non-stationary workload without an end) declares
  ``"online_loss"``: the mean over the whole run of each training batch's loss
  at the params *before* the update on that batch (the loss the train step
  computes anyway), as the continual-learning literature scores a learner;
  ``"online_accuracy"`` likewise;
* a finite workload declares its held-out metric (``"test_accuracy"``,
  ``"test_loss"``), or ``"train_loss"`` when it has none.

Names ending in ``_accuracy`` are better higher, every other name lower.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
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
  # The run length of a config that omits ``steps``.
  default_steps: int = 1000
  # The metric that ranks optimizers here: "online_loss" for a stream, the held-out
  # "<split>_<metric>" for a finite workload (see the module docstring).
  primary_metric: str = "train_loss"
  # Whether the data change over time without notice (a stream): reports then
  # also show the online metrics over time.
  stream: bool = False


ONLINE_PREFIX = "online_"


def higher_is_better(metric: str) -> bool:
  """Whether a larger value of ``metric`` (e.g. ``"test_accuracy"``) is better."""
  return metric.endswith("_accuracy")


def squared_error_loss(apply: Callable[..., tuple[Any, Any]]) -> Callable[..., Any]:
  """A ``Workload.loss`` for scalar regression: the mean over the batch of
  ``(y - f(x))**2``, with ``f`` the model's single output (``apply(params, model_state, x)``
  returns ``(outputs of shape (n, 1), model_state)``, as :meth:`.models.PureModel.apply`)."""

  def loss(params, model_state, batch, train):
    del train
    prediction, _ = apply(params, model_state, jnp.asarray(batch["x"]))
    value = jnp.mean((jnp.asarray(batch["y"]) - prediction[:, 0]) ** 2)
    return value, ({"loss": value}, model_state)

  return loss
