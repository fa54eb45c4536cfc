"""Continual (label-permuted) MNIST-1D: the label mapping is permuted every ``task_steps`` steps.

Source: the label-permuted stream of the continual-learning literature
(label-permuted MNIST / EMNIST in Dohare et al., "Loss of plasticity in deep
continual learning", Nature 632, 2024; Kumar et al., "Maintaining plasticity in
continual learning via regenerative regularization", 2023), on MNIST-1D
(Greydanus & Kobak, 2020; generated locally, see :mod:`.mnist1d_data`) so that
tens of tasks fit on two CPU cores.

The inputs are the ordinary MNIST-1D training stream (4000 examples, epochs of
shuffled batches); during task ``k`` (steps ``k * task_steps`` to
``(k + 1) * task_steps - 1``) every label ``y`` is replaced by ``perm_k[y]``,
where ``perm_k`` is a random permutation of the 10 classes drawn from a
generator keyed on ``(seed, k)``. The learner gets no notice of the switch.
The stream has no end: any number of tasks; ``num_tasks`` (default 20) only
sets the suggested run length ``num_tasks * task_steps``.

Parameters: ``task_steps=500`` steps per task, batch 100, an MLP 40-100-100-10
(or the 1-D CNN). A stream: its primary metric is the online loss (the mean
over the run of each batch's loss before the update on it). Evaluation
relabels the train and test splits with the permutation of the task that is
current at the evaluation step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Workload
from metaoptimize_optax.experiments.workloads.mnist1d_classification import (
  MODELS,
  NUM_CLASSES,
  classifier_loss,
  data_options,
  mnist1d_model,
  split_batches,
  stream_batch,
)
from metaoptimize_optax.experiments.workloads.mnist1d_data import load_mnist1d
from metaoptimize_optax.experiments.workloads.sampling import Stream, stream_rng

# (seed, task, x, y) -> (x, y): what task ``task`` of a stream does to the examples.
Permute = Callable[[int, int, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def task_permutation(seed: int, task: int) -> np.ndarray:
  """The label permutation of task ``task`` (int32 ``(10,)``): ``y -> perm[y]``."""
  return stream_rng(seed, Stream.TASK, task).permutation(NUM_CLASSES).astype(np.int32)


def permuted_stream(
  name: str,
  permute: Permute,
  *,
  task_steps: int,
  num_tasks: int,
  model: str,
  batch_size: int,
  hidden_sizes: Sequence[int],
  channels: int,
  num_samples: int,
  train_split: float,
  data_seed: int,
  cache_dir: str | None,
  eval_batch_size: int,
) -> Workload:
  """A MNIST-1D stream whose examples ``permute`` changes every ``task_steps`` steps.

  Training batch ``step`` and the evaluation sets of ``step`` are those of task
  ``step // task_steps``; the arguments are those of :func:`continual_mnist1d`.
  """
  task_steps = options.positive_int("task_steps", task_steps)
  num_tasks = options.positive_int("num_tasks", num_tasks)
  options.one_of("model", model, MODELS)
  batch_size = options.positive_int("batch_size", batch_size)
  eval_batch_size = options.positive_int("eval_batch_size", eval_batch_size)
  data_kwargs = data_options(num_samples, train_split, data_seed, cache_dir)
  pure_model = mnist1d_model(model, hidden_sizes=hidden_sizes, channels=channels)

  def train_batch(seed: int, step: int):
    batch = stream_batch(load_mnist1d(**data_kwargs), seed, step, batch_size)
    batch["x"], batch["y"] = permute(seed, step // task_steps, batch["x"], batch["y"])
    return batch

  def eval_batches(seed: int, step: int):
    d, task = load_mnist1d(**data_kwargs), step // task_steps
    return {
      "train": split_batches(*permute(seed, task, d.x_train, d.y_train), eval_batch_size),
      "test": split_batches(*permute(seed, task, d.x_test, d.y_test), eval_batch_size),
    }

  return Workload(
    name=name,
    init=pure_model.init,
    loss=classifier_loss(pure_model),
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss", "accuracy"),
    default_steps=num_tasks * task_steps,
    primary_metric="online_loss",
    stream=True,
  )


def _permute_labels(seed: int, task: int, x: np.ndarray, y: np.ndarray):
  return x, task_permutation(seed, task)[y]


def continual_mnist1d(
  *,
  task_steps: int = 500,
  num_tasks: int = 20,
  model: str = "mlp",
  batch_size: int = 100,
  hidden_sizes: Sequence[int] = (100, 100),
  channels: int = 25,
  num_samples: int = 5000,
  train_split: float = 0.8,
  data_seed: int = 42,
  cache_dir: str | None = None,
  eval_batch_size: int = 1000,
) -> Workload:
  """MNIST-1D whose label mapping is re-permuted every ``task_steps`` steps.

  Args:
    task_steps: steps per task (label permutation).
    num_tasks: tasks in the suggested run length (``default_steps``); a run may be
      longer or shorter (the permutations go on).
    model: "mlp" or "cnn" (see ``mnist1d_mlp`` / ``mnist1d_cnn``).
    batch_size: training minibatch size.
    hidden_sizes: MLP hidden widths (``model="mlp"``).
    channels: CNN filters per convolution (``model="cnn"``).
    num_samples: examples generated (5000: the standard 4000 / 1000 split).
    train_split: fraction of examples used for training.
    data_seed: MNIST-1D generator seed (42: the standard dataset).
    cache_dir: optional directory caching the generated arrays.
    eval_batch_size: batch size of the evaluation batches.
  """
  return permuted_stream(
    "continual_mnist1d",
    _permute_labels,
    task_steps=task_steps,
    num_tasks=num_tasks,
    model=model,
    batch_size=batch_size,
    hidden_sizes=hidden_sizes,
    channels=channels,
    num_samples=num_samples,
    train_split=train_split,
    data_seed=data_seed,
    cache_dir=cache_dir,
    eval_batch_size=eval_batch_size,
  )
