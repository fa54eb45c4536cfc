"""MNIST-1D classification workloads: an MLP and a small 1-D CNN.

Shared by the stationary workloads here and by ``continual_mnist1d``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from metaoptimize_optax.experiments.models import CNN1D, MLP, PureModel
from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import LossFn, Workload
from metaoptimize_optax.experiments.workloads.losses import softmax_classification_loss
from metaoptimize_optax.experiments.workloads.mnist1d_data import Mnist1dArrays, load_mnist1d
from metaoptimize_optax.experiments.workloads.sampling import (
  consecutive_slices,
  epoch_batch_indices,
)

NUM_CLASSES = 10
SIGNAL_LENGTH = 40
MODELS = ("mlp", "cnn")


def mnist1d_model(
  model: str, hidden_sizes: Sequence[int] = (100, 100), channels: int = 25
) -> PureModel:
  """The MNIST-1D classifier ``model`` ("mlp" or "cnn") as a :class:`PureModel`."""
  options.one_of("model", model, MODELS)
  if model == "mlp":
    hidden_sizes = options.positive_ints("hidden_sizes", hidden_sizes)
    make = lambda rngs: MLP(SIGNAL_LENGTH, hidden_sizes, NUM_CLASSES, rngs=rngs)
  else:
    channels = options.positive_int("channels", channels)
    make = lambda rngs: CNN1D(SIGNAL_LENGTH, channels, NUM_CLASSES, rngs=rngs)
  return PureModel.from_constructor(make)


def classifier_loss(model: PureModel) -> LossFn:
  """Cross-entropy / accuracy loss of a stateless classifier on ``x``, ``y``."""

  def forward(params, model_state, x, train):
    del train
    return model.apply(params, model_state, x)

  return softmax_classification_loss(forward, inputs_key="x", labels_key="y")


def data_options(
  num_samples: int, train_split: float, data_seed: int, cache_dir: str | None
) -> dict:
  """Checked generator arguments of :func:`load_mnist1d`."""
  return {
    "num_samples": options.positive_int("num_samples", num_samples),
    "train_split": options.fraction("train_split", train_split),
    "data_seed": options.non_negative_int("data_seed", data_seed),
    "cache_dir": options.path_or_none("cache_dir", cache_dir),
  }


def stream_batch(data: Mnist1dArrays, seed: int, step: int, batch_size: int) -> dict:
  """Training minibatch ``step``: epochs of shuffled, disjoint batches."""
  idx = epoch_batch_indices(seed, step, len(data.y_train), batch_size)
  return {"x": data.x_train[idx], "y": data.y_train[idx]}


def split_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> list[dict]:
  """A whole split as consecutive batches of at most ``batch_size``."""
  return [{"x": x[s], "y": y[s]} for s in consecutive_slices(len(y), batch_size)]


def _mnist1d_workload(
  model_name: str, model: PureModel, batch_size: int, eval_batch_size: int, data_kwargs: dict
) -> Workload:
  batch_size = options.positive_int("batch_size", batch_size)
  eval_batch_size = options.positive_int("eval_batch_size", eval_batch_size)
  data: Callable[[], Mnist1dArrays] = lambda: load_mnist1d(**data_kwargs)

  def train_batch(seed: int, step: int):
    return stream_batch(data(), seed, step, batch_size)

  def eval_batches(seed: int, step: int):
    del seed, step  # A stationary task.
    d = data()
    return {
      "train": split_batches(d.x_train, d.y_train, eval_batch_size),
      "test": split_batches(d.x_test, d.y_test, eval_batch_size),
    }

  return Workload(
    name=f"mnist1d_{model_name}",
    init=model.init,
    loss=classifier_loss(model),
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss", "accuracy"),
    default_steps=5000,
    primary_metric="test_accuracy",
  )


def mnist1d_mlp(
  *,
  batch_size: int = 100,
  hidden_sizes: Sequence[int] = (100, 100),
  num_samples: int = 5000,
  train_split: float = 0.8,
  data_seed: int = 42,
  cache_dir: str | None = None,
  eval_batch_size: int = 1000,
) -> Workload:
  """MNIST-1D with an MLP ``40 -> hidden_sizes -> 10`` (ReLU).

  Args:
    batch_size: training minibatch size.
    hidden_sizes: hidden layer widths.
    num_samples: examples generated (5000: the standard 4000 / 1000 split).
    train_split: fraction of examples used for training.
    data_seed: MNIST-1D generator seed (42: the standard dataset).
    cache_dir: optional directory caching the generated arrays.
    eval_batch_size: batch size of the evaluation batches.
  """
  data_kwargs = data_options(num_samples, train_split, data_seed, cache_dir)
  model = mnist1d_model("mlp", hidden_sizes=hidden_sizes)
  return _mnist1d_workload("mlp", model, batch_size, eval_batch_size, data_kwargs)


def mnist1d_cnn(
  *,
  batch_size: int = 100,
  channels: int = 25,
  num_samples: int = 5000,
  train_split: float = 0.8,
  data_seed: int = 42,
  cache_dir: str | None = None,
  eval_batch_size: int = 1000,
) -> Workload:
  """MNIST-1D with a three-layer 1-D CNN of ``channels`` filters per layer.

  Args:
    batch_size: training minibatch size.
    channels: filters per convolution.
    num_samples: examples generated (5000: the standard 4000 / 1000 split).
    train_split: fraction of examples used for training.
    data_seed: MNIST-1D generator seed (42: the standard dataset).
    cache_dir: optional directory caching the generated arrays.
    eval_batch_size: batch size of the evaluation batches.
  """
  data_kwargs = data_options(num_samples, train_split, data_seed, cache_dir)
  model = mnist1d_model("cnn", channels=channels)
  return _mnist1d_workload("cnn", model, batch_size, eval_batch_size, data_kwargs)
