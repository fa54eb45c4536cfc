"""Loss functions of the workloads, built around a model's forward pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from metaoptimize_optax.experiments.workloads.base import LossFn

# forward(params, model_state, inputs, train) -> (logits, new_model_state)
Forward = Callable[[Any, Any, jax.Array, bool], tuple[jax.Array, Any]]


def softmax_classification_loss(forward: Forward, inputs_key: str, labels_key: str) -> LossFn:
  """Mean softmax cross-entropy and accuracy of integer labels.

  Works for any leading shape: ``(batch,)`` labels of a classifier or
  ``(batch, seq)`` next tokens of a language model (averaged over all tokens).
  ``train`` must be a Python bool (a static argument under ``jax.jit``); with
  ``train=False`` the model state is returned unchanged.
  """

  def loss(params, model_state, batch, train):
    logits, new_state = forward(params, model_state, jnp.asarray(batch[inputs_key]), train)
    labels = jnp.asarray(batch[labels_key])
    logits = logits.astype(jnp.float32)
    value = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
    return value, ({"loss": value, "accuracy": accuracy}, new_state if train else model_state)

  return loss
