"""Non-stationary linear tracking: experiment 1 of Sutton (1992), "Adapting bias
by gradient descent: an incremental version of delta-bar-delta" (AAAI).

Inputs are ``num_inputs`` (20) independent standard normals; the target is
``y = s . x`` where the first ``num_relevant`` (5) target weights ``s_i`` are
+1 or -1 and the rest are 0. Every ``flip_every`` (20) steps one relevant
weight, chosen at random, flips its sign, with no notice to the learner. The
learner is linear, ``y_hat = w . x`` with ``w`` starting at 0, and the loss is
``0.5 * (y - y_hat)^2`` (so SGD on it is the LMS / delta rule of the paper).

The target at every step is a pure function of ``(seed, step)``: the initial
signs and the sequence of flipped weights are drawn from seed-keyed
generators. Evaluation is on a fixed held-out input set labelled by the target
that is current at the evaluation step.

Parameters as in the paper (20 inputs, 5 relevant, a flip every 20 steps, one
example per step, no noise). A stream without an end: its primary metric is the
online loss (the mean over the run of each example's loss before the update on
it); the built-in config ``stream_tracking`` runs 20,000 steps (1,000 flips).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Workload
from metaoptimize_optax.experiments.workloads.sampling import Stream, stream_rng

# The flipped weight of flip n is entry n % _FLIP_BLOCK of the block of
# _FLIP_BLOCK flips drawn from generator n // _FLIP_BLOCK.
_FLIP_BLOCK = 1024


@functools.lru_cache(maxsize=1024)
def _full_block_flip_counts(seed: int, block: int, num_relevant: int) -> tuple[int, ...]:
  """How often each relevant weight flips in full block ``block`` of flips."""
  flipped = stream_rng(seed, Stream.TARGET, block).integers(0, num_relevant, _FLIP_BLOCK)
  return tuple(np.bincount(flipped, minlength=num_relevant).tolist())


def target_weights(
  seed: int, step: int, num_inputs: int = 20, num_relevant: int = 5, flip_every: int = 20
) -> np.ndarray:
  """The target weights ``s`` in force at ``step`` (float32 ``(num_inputs,)``)."""
  signs = stream_rng(seed, Stream.INIT).choice(np.array([-1.0, 1.0]), size=num_relevant)
  num_flips = step // flip_every
  full_blocks, partial = divmod(num_flips, _FLIP_BLOCK)
  flip_counts = np.zeros(num_relevant, np.int64)
  for block in range(full_blocks):
    flip_counts += _full_block_flip_counts(int(seed), block, num_relevant)
  if partial:
    flipped = stream_rng(seed, Stream.TARGET, full_blocks).integers(0, num_relevant, _FLIP_BLOCK)
    flip_counts += np.bincount(flipped[:partial], minlength=num_relevant)
  weights = np.zeros(num_inputs, np.float32)
  weights[:num_relevant] = signs * (-1.0) ** flip_counts
  return weights


def tracking(
  *,
  num_inputs: int = 20,
  num_relevant: int = 5,
  flip_every: int = 20,
  batch_size: int = 1,
  noise_std: float = 0.0,
  eval_size: int = 1000,
) -> Workload:
  """Sutton's (1992) sign-flipping linear tracking task; params ``{"w": (20,)}``.

  Args:
    num_inputs: input dimension (20 in the paper).
    num_relevant: leading inputs with a +/-1 target weight (5 in the paper).
    flip_every: steps between sign flips (20 in the paper).
    batch_size: examples per step, all labelled by the step's target (1 in the
      paper: one example per step).
    noise_std: std of Gaussian noise added to training targets (0 in the paper).
    eval_size: size of the fixed held-out input set.
  """
  num_inputs = options.positive_int("num_inputs", num_inputs)
  num_relevant = options.positive_int("num_relevant", num_relevant)
  if num_relevant > num_inputs:
    raise ValueError(f"option num_relevant ({num_relevant}) exceeds num_inputs ({num_inputs})")
  flip_every = options.positive_int("flip_every", flip_every)
  batch_size = options.positive_int("batch_size", batch_size)
  noise_std = options.non_negative_float("noise_std", noise_std)
  eval_size = options.positive_int("eval_size", eval_size)

  def weights_at(seed: int, step: int) -> np.ndarray:
    return target_weights(seed, step, num_inputs, num_relevant, flip_every)

  def init(key: jax.Array):
    del key  # The learner starts at zero, as in the paper.
    return {"w": jnp.zeros((num_inputs,), jnp.float32)}, {}

  def loss(params, model_state, batch, train):
    del train
    error = jnp.asarray(batch["y"]) - jnp.asarray(batch["x"]) @ params["w"]
    value = jnp.mean(0.5 * error**2)
    return value, ({"loss": value}, model_state)

  def train_batch(seed: int, step: int):
    rng = stream_rng(seed, Stream.STEP, step)
    x = rng.standard_normal((batch_size, num_inputs)).astype(np.float32)
    y = x @ weights_at(seed, step)
    if noise_std:
      y = y + noise_std * rng.standard_normal(batch_size).astype(np.float32)
    return {"x": x, "y": y.astype(np.float32)}

  def eval_batches(seed: int, step: int):
    x = stream_rng(seed, Stream.EVAL).standard_normal((eval_size, num_inputs)).astype(np.float32)
    return {"test": [{"x": x, "y": (x @ weights_at(seed, step)).astype(np.float32)}]}

  return Workload(
    name="tracking",
    init=init,
    loss=loss,
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss",),
    default_steps=20_000,
    primary_metric="online_loss",
    stream=True,
  )
