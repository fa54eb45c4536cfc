"""CIFAR-10 classification with a CIFAR-style ResNet-18 and BatchNorm."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from metaoptimize_optax.experiments.models import PureModel, ResNet18
from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Workload
from metaoptimize_optax.experiments.workloads.cifar10_data import (
  MEAN,
  STD,
  find_cifar10,
  load_cifar10,
  random_crop_flip,
)
from metaoptimize_optax.experiments.workloads.losses import softmax_classification_loss
from metaoptimize_optax.experiments.workloads.sampling import (
  Stream,
  consecutive_slices,
  epoch_batch_indices,
  stream_rng,
)

NUM_CLASSES = 10


def normalize(images):
  """uint8 NHWC images to float32, standardised per channel."""
  x = jnp.asarray(images, jnp.float32) / 255.0
  return (x - jnp.asarray(MEAN, jnp.float32)) / jnp.asarray(STD, jnp.float32)


def cifar10_resnet18(
  *,
  data_path: str | os.PathLike,
  batch_size: int = 128,
  width: int = 64,
  augment: bool = True,
  eval_train_size: int = 10_000,
  eval_batch_size: int = 1000,
) -> Workload:
  """CIFAR-10 with ResNet-18; BatchNorm statistics live in ``model_state``.

  Batches hold uint8 ``image`` (B, 32, 32, 3) and int32 ``label`` (B,); the
  loss normalises the images. ``loss(..., train=True)`` normalises with batch
  statistics and returns updated running statistics; ``train=False`` uses the
  running statistics and returns ``model_state`` unchanged.

  Args:
    data_path: directory of the CIFAR-10 python batches (or its parent); see
      ``cifar10_data.FORMAT``.
    batch_size: training minibatch size.
    width: first-stage width; stages are ``width * (1, 2, 4, 8)`` (64: the
      standard 11M-parameter ResNet-18).
    augment: random 4-pixel-padded crops and horizontal flips for training.
    eval_train_size: leading training examples evaluated as split "train".
    eval_batch_size: batch size of the evaluation batches.
  """
  directory = find_cifar10(data_path)
  batch_size = options.positive_int("batch_size", batch_size)
  width = options.positive_int("width", width)
  eval_train_size = options.positive_int("eval_train_size", eval_train_size)
  eval_batch_size = options.positive_int("eval_batch_size", eval_batch_size)
  if not isinstance(augment, bool):
    raise ValueError(f"option augment must be true or false, got {augment!r}")
  model = PureModel.from_constructor(lambda rngs: ResNet18(NUM_CLASSES, width, rngs=rngs))

  def forward(params, model_state, images, train):
    return model.apply(params, model_state, normalize(images), train=train)

  def train_batch(seed: int, step: int):
    data = load_cifar10(directory)
    idx = epoch_batch_indices(seed, step, len(data.y_train), batch_size)
    images = data.x_train[idx]
    if augment:
      images = random_crop_flip(images, stream_rng(seed, Stream.AUGMENT, step))
    return {"image": images, "label": data.y_train[idx]}

  def _batches(x: np.ndarray, y: np.ndarray) -> list[dict]:
    return [{"image": x[s], "label": y[s]} for s in consecutive_slices(len(y), eval_batch_size)]

  def eval_batches(seed: int, step: int):
    del seed, step  # A stationary task.
    data = load_cifar10(directory)
    n = min(eval_train_size, len(data.y_train))
    return {
      "train": _batches(data.x_train[:n], data.y_train[:n]),
      "test": _batches(data.x_test, data.y_test),
    }

  return Workload(
    name="cifar10_resnet18",
    init=model.init,
    loss=softmax_classification_loss(forward, inputs_key="image", labels_key="label"),
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss", "accuracy"),
    default_steps=20_000,
    primary_metric="test_accuracy",
  )
