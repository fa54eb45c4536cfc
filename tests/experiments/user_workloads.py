"""A user's own workloads, as a config names them: ``workload: {name: "user_workloads:linear"}``.

Not part of the package: the CLI imports this module from the current directory (or the
Python path), calls the factory with the config's ``options`` and gets a ``Workload``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from metaoptimize_optax.experiments.workloads import Workload


def linear(*, dim: int = 4, batch_size: int = 16, noise: float = 0.3) -> Workload:
  """Noisy linear regression: ``y = x @ w + noise``, fitted by least squares."""
  w_true = np.linspace(-1.0, 1.0, dim)

  def data(seed: int, step: int, n: int) -> dict[str, np.ndarray]:
    r = np.random.default_rng([seed, step])
    x = r.normal(size=(n, dim)).astype(np.float32)
    return {"x": x, "y": (x @ w_true + noise * r.normal(size=n)).astype(np.float32)}

  def init(key):
    del key
    return {"w": jnp.zeros(dim), "b": jnp.zeros(())}, {}

  def loss(params, model_state, batch, train):
    del train
    value = jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)
    return value, ({"loss": value}, model_state)

  return Workload(
    name="linear",
    init=init,
    loss=loss,
    train_batch=lambda seed, step: data(seed, step, batch_size),
    eval_batches=lambda seed, step: {
      "train": [data(10_000 + seed, 0, 256)],
      "test": [data(20_000 + seed, 0, 256)],
    },
    metrics=("loss",),
    default_steps=100,
  )


def not_a_workload(*, size: int = 1) -> dict:
  """A factory that returns something else (the CLI refuses it)."""
  return {"size": size}
