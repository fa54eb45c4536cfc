"""The noisy quadratic problem of Wu et al. (2018), "Understanding short-horizon
bias in stochastic meta-optimization" (ICLR).

The loss of one step is ``L(w) = 0.5 * sum_i h_i (w_i - c_i)^2`` with curvatures
``h_i = 1 / i`` (condition number ``dim``) and a fresh random minimiser
``c ~ N(0, diag(sigma^2))`` every step. Its gradient ``h * (w - c)`` is the
true gradient plus noise of covariance ``diag(h^2 sigma^2)``; with the default
``sigma_i^2 = 1 / h_i`` that noise covariance is ``H = diag(h)`` (the noisy
quadratic model convention, gradient noise shaped like the curvature).

Evaluation reports the exact expected loss
``E_c[L(w)] = 0.5 * sum_i h_i (w_i^2 + sigma_i^2)``; its floor, reached at
``w = 0``, is ``0.5 * sum_i h_i sigma_i^2`` (``noise_scale^2 * dim / 2``).

Batches describe a Gaussian over ``c`` by its mean ``c`` and variance
``c_var``, and the loss is the expectation of ``L`` under it:
``0.5 * sum_i h_i ((w_i - c_i)^2 + c_var_i)``. Training batches hold samples
(``c_var = 0``); the evaluation batch holds ``c = 0, c_var = sigma^2``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Workload
from metaoptimize_optax.experiments.workloads.sampling import Stream, stream_rng


def curvatures(dim: int) -> np.ndarray:
  """The diagonal Hessian ``h_i = 1 / i``, ``i = 1 .. dim`` (float32)."""
  return (1.0 / np.arange(1, dim + 1)).astype(np.float32)


def noisy_quadratic(
  *,
  dim: int = 100,
  batch_size: int = 1,
  noise_scale: float = 1.0,
  init_scale: float = 1.0,
) -> Workload:
  """The noisy quadratic workload; params ``{"w": float32 (dim,)}``.

  Args:
    dim: number of coordinates; curvatures run from 1 down to ``1 / dim``.
    batch_size: samples of ``c`` averaged per step (divides the gradient noise
      variance by ``batch_size``).
    noise_scale: ``sigma_i = noise_scale / sqrt(h_i)``.
    init_scale: the fixed starting point is ``w_i = init_scale / sqrt(h_i)``,
      so every coordinate starts with the same expected excess loss
      ``init_scale^2 / 2``; it does not depend on the init key.
  """
  dim = options.positive_int("dim", dim)
  batch_size = options.positive_int("batch_size", batch_size)
  noise_scale = options.non_negative_float("noise_scale", noise_scale)
  init_scale = options.non_negative_float("init_scale", init_scale)
  h = curvatures(dim)
  sigma = (noise_scale / np.sqrt(h)).astype(np.float32)
  w0 = (init_scale / np.sqrt(h)).astype(np.float32)

  def init(key: jax.Array):
    del key  # A fixed starting point.
    return {"w": jnp.asarray(w0)}, {}

  def loss(params, model_state, batch, train):
    del train
    c = jnp.asarray(batch["c"])
    c_var = jnp.asarray(batch["c_var"])
    per_example = 0.5 * jnp.sum(h * ((params["w"] - c) ** 2 + c_var), axis=-1)
    value = jnp.mean(per_example)
    return value, ({"loss": value}, model_state)

  def train_batch(seed: int, step: int):
    c = stream_rng(seed, Stream.STEP, step).standard_normal((batch_size, dim)) * sigma
    return {"c": c.astype(np.float32), "c_var": np.zeros((batch_size, dim), np.float32)}

  def eval_batches(seed: int, step: int):
    del seed, step  # The expected loss is deterministic.
    expected = {"c": np.zeros((1, dim), np.float32), "c_var": (sigma**2)[None, :]}
    return {"test": [expected]}

  return Workload(
    name="noisy_quadratic",
    init=init,
    loss=loss,
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss",),
    default_steps=1000,
    primary_metric="test_loss",
  )
