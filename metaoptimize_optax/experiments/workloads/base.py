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

Names ending in ``_accuracy`` or ``_return`` are better higher, every other name lower.

An :class:`AgentWorkload` is the other kind: an agent that collects its own data by
acting in an environment (reinforcement learning), so the data depend on the params
and cannot be a function of ``(seed, step)``. It declares ``"final_return"``.
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


@dataclasses.dataclass(frozen=True)
class Agent:
  """One agent's training as pure functions of a carry, for one optimizer.

  ``start(key) -> carry``: the agent's params, optimizer state, environment state
  and random key at the start of training. ``iterate(carry) -> (carry, metrics)``:
  one iteration, which collects data with the current policy and then makes
  ``AgentWorkload.updates_per_iteration`` optimizer updates on it; ``metrics`` holds
  ``"loss"`` (the mean over the updates of the loss before each) and ``"return"``
  (the mean episodic return of the episodes that ended in the iteration, else the
  last such value; NaN before the first). ``optimizer_state(carry)`` is the
  optimizer state in the carry.
  """

  start: Callable[[jax.Array], Any]
  iterate: Callable[[Any], tuple[Any, dict[str, jax.Array]]]
  optimizer_state: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class AgentWorkload:
  """A task whose data the learner collects itself by acting (reinforcement learning).

  ``init(key) -> (params, {})`` as :class:`Workload`'s. ``agent(init, update) ->
  Agent`` builds the pure training functions around an optimizer's ``init(params)``
  and ``update(grads, opt_state, params, *, value_fn, value)`` (as
  :meth:`.optimizers.BuiltOptimizer.update`). A run's ``steps`` count optimizer
  updates and must be a multiple of ``updates_per_iteration``.

  Its scores: ``final_return``, the mean return over the last 10% of the
  iterations (the primary metric), and ``online_return``, the mean return over the
  whole run, i.e. the area under the return curve per update.
  """

  name: str
  init: Callable[[jax.Array], tuple[Params, ModelState]]
  agent: Callable[..., Agent]
  updates_per_iteration: int
  metrics: tuple[str, ...] = ("loss", "return")
  default_steps: int = 15616
  primary_metric: str = "final_return"
  stream: bool = False


# The share of a run's last iterations that ``final_return`` averages.
FINAL_RETURN_SHARE = 0.1


def higher_is_better(metric: str) -> bool:
  """Whether a larger value of ``metric`` (e.g. ``"test_accuracy"``, ``"final_return"``)
  is better."""
  return metric.endswith(("_accuracy", "_return"))


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
