"""Helpers of the experiment tests: a tiny workload and tiny configs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments.workloads.base import Workload


def tiny_classifier(hidden: int = 8, batch_size: int = 16) -> Workload:
  """A two-layer ReLU classifier of 10-d Gaussian inputs into 3 linear classes."""
  w_true = np.random.default_rng(0).normal(size=(10, 3))

  def data(seed: int, step: int, n: int) -> dict[str, np.ndarray]:
    r = np.random.default_rng([seed, step])
    x = r.normal(size=(n, 10)).astype(np.float32)
    return {"x": x, "y": np.argmax(x @ w_true, -1).astype(np.int32)}

  def init(key):
    k1, k2 = jax.random.split(key)
    return {
      "l1": {"w": jax.random.normal(k1, (10, hidden)) / 3, "b": jnp.zeros(hidden)},
      "l2": {"w": jax.random.normal(k2, (hidden, 3)) / 3, "b": jnp.zeros(3)},
    }, {}

  def loss(params, model_state, batch, train):
    del train
    h = jax.nn.relu(batch["x"] @ params["l1"]["w"] + params["l1"]["b"])
    logits = h @ params["l2"]["w"] + params["l2"]["b"]
    value = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), batch["y"][:, None], 1))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["y"])
    return value, ({"loss": value, "accuracy": accuracy}, model_state)

  return Workload(
    name="tiny_classifier",
    init=init,
    loss=loss,
    train_batch=lambda seed, step: data(seed, step, batch_size),
    eval_batches=lambda seed, step: {
      "train": [data(10_000 + seed, 0, 64)],
      "test": [data(20_000 + seed, 0, 48), data(20_001, 0, 16)],
    },
    metrics=("loss", "accuracy"),
    default_steps=100,
  )


def tiny_config(output_dir: Any, **overrides: Any) -> config_lib.ExperimentConfig:
  """A validated config of a few steps on the tiny classifier."""
  raw = {
    "workload": {"name": "tiny_classifier"},
    "steps": 40,
    "seeds": 2,
    "log_every": 5,
    "eval_every": 20,
    "checkpoint_every": 0,
    "output_dir": str(output_dir),
    "target_loss": 0.9,
    "optimizers": {
      "MetaOptimize": {
        "name": "metaoptimize",
        "initial_learning_rate": 1e-3,
        "meta_learning_rate": 0.05,
        "blocks": "per_layer",
      },
      "AdamW": {"name": "adamw", "grid": {"learning_rate": [1e-3, 3e-2]}},
    },
  }
  raw.update(overrides)
  return config_lib.from_dict(raw)
