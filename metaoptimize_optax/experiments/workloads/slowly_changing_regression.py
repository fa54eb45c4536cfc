"""Slowly-changing regression: a fixed teacher network whose binary inputs flip slowly.

Source: the slowly-changing regression problem of Dohare et al., "Loss of
plasticity in deep continual learning" (Nature 632, 2024; first in Dohare,
Sutton & Mahmood, "Continual backprop", arXiv:2108.06325, 2021), after the
teacher-student problems of Mahmood & Sutton (2013).

Each example is ``num_inputs + 1`` bits (default 20 + 1): the first
``num_slow`` (15) bits are *slowly changing*, the same for every example until,
every ``flip_every`` steps, one of them chosen at random flips; the other
``num_inputs - num_slow`` (5) bits are drawn at random (Bernoulli 1/2) for every
example; the last bit is a constant 1 (bias). The target is the output of a
fixed random teacher: ``teacher_hidden`` (100) linear threshold units with
input weights ``+1`` or ``-1`` at random, unit ``i`` firing (1, else 0) when
``w_i . x > theta_i``, with ``theta_i = (num_inputs + 1) * beta - S_i``, ``S_i``
the number of negative input weights of unit ``i`` and ``beta = 0.7``; the
output is ``sum_i v_i h_i`` with ``v_i = +1`` or ``-1`` at random. The teacher
is drawn once per seed and never changes; only its slow inputs drift, so the
target function of the fast bits changes a little at every flip, without notice.

The learner is an MLP ``num_inputs + 1 -> hidden_sizes -> 1`` (ReLU; default one
hidden layer of 5 units, as in the paper) trained on the squared error
``(y - y_hat)^2`` (mean over the batch), one example per step by default (as in
the paper).

Parameters as in the paper (m = 20, f = 15, 100 teacher units, beta = 0.7, one
example per step, 5 learner units) except the flip interval: the paper flips
every T = 10,000 steps over millions of steps; the default here is 500, so that
a 20,000-step stream (two CPU cores) holds 40 changes. A stream: its primary
metric is the online loss (the mean over the run of each example's squared
error before the update on it). The slow bits and the teacher are pure
functions of ``(seed, step)``; evaluation is on a fixed set of fast-bit draws
with the slow bits of the evaluation step.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from metaoptimize_optax.experiments.models import MLP, PureModel
from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Workload, squared_error_loss
from metaoptimize_optax.experiments.workloads.sampling import Stream, stream_rng

BETA = 0.7  # The teacher's threshold parameter (Dohare et al.).
# Flip n of the slow bits is entry n % _FLIP_BLOCK of the block drawn from generator
# n // _FLIP_BLOCK.
_FLIP_BLOCK = 1024


@functools.lru_cache(maxsize=1024)
def _block_flips(seed: int, block: int, num_slow: int) -> np.ndarray:
  """Which slow bit each flip of block ``block`` flips (int ``(_FLIP_BLOCK,)``)."""
  flips = stream_rng(seed, Stream.TARGET, block).integers(0, num_slow, _FLIP_BLOCK)
  flips.setflags(write=False)
  return flips


@functools.lru_cache(maxsize=1024)
def _block_parity(seed: int, block: int, num_slow: int) -> tuple[int, ...]:
  counts = np.bincount(_block_flips(seed, block, num_slow), minlength=num_slow)
  return tuple((counts % 2).tolist())


def slow_bits(seed: int, step: int, num_slow: int = 15, flip_every: int = 500) -> np.ndarray:
  """The slowly-changing bits in force at ``step`` (float32 0/1 ``(num_slow,)``)."""
  bits = stream_rng(seed, Stream.INIT, 1).integers(0, 2, num_slow)
  num_flips = step // flip_every
  full_blocks, partial = divmod(num_flips, _FLIP_BLOCK)
  parity = np.zeros(num_slow, np.int64)
  for block in range(full_blocks):
    parity += _block_parity(int(seed), block, num_slow)
  if partial:
    parity += np.bincount(
      _block_flips(int(seed), full_blocks, num_slow)[:partial], minlength=num_slow
    )
  return ((bits + parity) % 2).astype(np.float32)


@functools.lru_cache(maxsize=64)
def teacher(
  seed: int, num_inputs: int = 20, teacher_hidden: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The teacher of seed ``seed``: input weights ``(num_inputs + 1, teacher_hidden)``
  of +/-1, thresholds ``(teacher_hidden,)`` and output weights ``(teacher_hidden,)`` of +/-1."""
  rng = stream_rng(seed, Stream.INIT, 0)
  w = rng.choice(np.array([-1.0, 1.0], np.float32), size=(num_inputs + 1, teacher_hidden))
  v = rng.choice(np.array([-1.0, 1.0], np.float32), size=teacher_hidden)
  theta = (num_inputs + 1) * BETA - np.sum(w < 0, axis=0)
  for a in (w, v, theta):
    a.setflags(write=False)
  return w, theta.astype(np.float32), v


def teacher_output(
  x: np.ndarray, seed: int, num_inputs: int = 20, teacher_hidden: int = 100
) -> np.ndarray:
  """The teacher's target for inputs ``x`` (``(n, num_inputs + 1)`` bits), float32 ``(n,)``."""
  w, theta, v = teacher(seed, num_inputs, teacher_hidden)
  hidden = (x @ w > theta).astype(np.float32)
  return (hidden @ v).astype(np.float32)


def slowly_changing_regression(
  *,
  num_inputs: int = 20,
  num_slow: int = 15,
  flip_every: int = 500,
  teacher_hidden: int = 100,
  hidden_sizes: Sequence[int] = (5,),
  batch_size: int = 1,
  num_changes: int = 40,
  eval_size: int = 1000,
) -> Workload:
  """Dohare et al.'s slowly-changing regression; a stream of teacher targets.

  Args:
    num_inputs: input bits besides the bias bit (m = 20 in the paper).
    num_slow: the leading slowly-changing bits (f = 15 in the paper); the rest
      are random for every example.
    flip_every: steps between flips of one slow bit (T = 10,000 in the paper).
    teacher_hidden: linear threshold units of the teacher (100 in the paper).
    hidden_sizes: the learner's hidden widths (one layer of 5 in the paper).
    batch_size: examples per step (1 in the paper).
    num_changes: flips in the suggested run length (``default_steps``,
      ``num_changes * flip_every``); a run may be longer or shorter.
    eval_size: size of the fixed held-out set of fast-bit draws.
  """
  num_inputs = options.positive_int("num_inputs", num_inputs)
  num_slow = options.positive_int("num_slow", num_slow)
  if num_slow > num_inputs:
    raise ValueError(f"option num_slow ({num_slow}) exceeds num_inputs ({num_inputs})")
  flip_every = options.positive_int("flip_every", flip_every)
  teacher_hidden = options.positive_int("teacher_hidden", teacher_hidden)
  hidden_sizes = options.positive_ints("hidden_sizes", hidden_sizes)
  batch_size = options.positive_int("batch_size", batch_size)
  num_changes = options.positive_int("num_changes", num_changes)
  eval_size = options.positive_int("eval_size", eval_size)
  model = PureModel.from_constructor(lambda rngs: MLP(num_inputs + 1, hidden_sizes, 1, rngs=rngs))

  def inputs(rng: np.random.Generator, slow: np.ndarray, n: int) -> np.ndarray:
    fast = rng.integers(0, 2, (n, num_inputs - num_slow)).astype(np.float32)
    return np.concatenate(
      [np.broadcast_to(slow, (n, num_slow)), fast, np.ones((n, 1), np.float32)], axis=1
    )

  def labelled(seed: int, step: int, rng: np.random.Generator, n: int) -> dict:
    x = inputs(rng, slow_bits(seed, step, num_slow, flip_every), n)
    return {"x": x, "y": teacher_output(x, seed, num_inputs, teacher_hidden)}

  def train_batch(seed: int, step: int):
    return labelled(seed, step, stream_rng(seed, Stream.STEP, step), batch_size)

  def eval_batches(seed: int, step: int):
    return {"test": [labelled(seed, step, stream_rng(seed, Stream.EVAL), eval_size)]}

  return Workload(
    name="slowly_changing_regression",
    init=model.init,
    loss=squared_error_loss(model.apply),
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss",),
    default_steps=num_changes * flip_every,
    primary_metric="online_loss",
    stream=True,
  )
