"""Drifting regression: a teacher that moves at every step, seen through shifting inputs.

Built for this project's stream study (no paper defines it): where the slowly-changing
regression (Dohare et al. 2024) changes its target in jumps, here the target function and
the input distribution both change a little at every step, without notice, so a learner
never sees the same problem twice and a rate tuned for one moment is wrong at the next.

The teacher is a random ``num_inputs -> teacher_hidden -> 1`` tanh network whose weights
move along a great circle between two independent draws ``A`` and ``B``: at step ``t`` its
weights are ``cos(a t) A + sin(a t) B`` with ``a = 2 pi / teacher_period`` (every weight
changes at a constant speed; the norm of the weights stays the same; tanh being odd, the
teacher's function repeats every half period). The inputs are
Gaussian, ``x ~ N(mu_t, I)``, with a mean that circles likewise at radius ``input_shift``
with period ``input_period`` (covariate shift). The target is the teacher's output plus
Gaussian noise of std ``noise_std``. With the default periods the teacher's function repeats
every 3,500 steps and the inputs every 3,000, so the problem as a whole repeats every 21,000
steps: never within a 20,000-step stream.

The learner is an MLP ``num_inputs -> hidden_sizes -> 1`` (ReLU) trained on the squared
error, ``batch_size`` examples per step (one by default). A stream: its primary metric is
the online loss. Everything is a pure function of ``(seed, step)``; evaluation is on fresh
inputs of the evaluation step's distribution, labelled by the teacher of that step, without
noise.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from metaoptimize_optax.experiments.models import MLP, PureModel
from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Workload, squared_error_loss
from metaoptimize_optax.experiments.workloads.sampling import Stream, stream_rng


@functools.lru_cache(maxsize=64)
def _endpoints(seed: int, num_inputs: int, teacher_hidden: int) -> tuple[np.ndarray, ...]:
  """The two draws of the teacher's weights and of the input mean's directions."""
  rng = stream_rng(seed, Stream.INIT, 0)
  w = rng.standard_normal((2, num_inputs, teacher_hidden)) / np.sqrt(num_inputs)
  v = rng.standard_normal((2, teacher_hidden)) / np.sqrt(teacher_hidden)
  mean = rng.standard_normal((2, num_inputs))
  mean /= np.linalg.norm(mean, axis=1, keepdims=True)
  out = tuple(a.astype(np.float32) for a in (w, v, mean))
  for a in out:
    a.setflags(write=False)
  return out


def _on_circle(pair: np.ndarray, step: int, period: int) -> np.ndarray:
  angle = 2.0 * np.pi * step / period
  return (np.cos(angle) * pair[0] + np.sin(angle) * pair[1]).astype(np.float32)


def drifting_regression(
  *,
  num_inputs: int = 10,
  teacher_hidden: int = 20,
  hidden_sizes: Sequence[int] = (32,),
  teacher_period: int = 7000,
  input_period: int = 3000,
  input_shift: float = 1.0,
  noise_std: float = 0.1,
  batch_size: int = 1,
  eval_size: int = 1000,
) -> Workload:
  """A regression stream whose teacher drifts and whose inputs shift at every step.

  Args:
    num_inputs: input dimension.
    teacher_hidden: the teacher's tanh units.
    hidden_sizes: the learner's hidden widths (ReLU).
    teacher_period: steps for the teacher's weights to go once around their circle.
    input_period: steps for the input mean to go once around its circle.
    input_shift: the radius of the input mean's circle (0: no covariate shift).
    noise_std: std of the Gaussian noise on training targets.
    batch_size: examples per step.
    eval_size: size of each evaluation set.
  """
  num_inputs = options.positive_int("num_inputs", num_inputs)
  teacher_hidden = options.positive_int("teacher_hidden", teacher_hidden)
  hidden_sizes = options.positive_ints("hidden_sizes", hidden_sizes)
  teacher_period = options.positive_int("teacher_period", teacher_period)
  input_period = options.positive_int("input_period", input_period)
  input_shift = options.non_negative_float("input_shift", input_shift)
  noise_std = options.non_negative_float("noise_std", noise_std)
  batch_size = options.positive_int("batch_size", batch_size)
  eval_size = options.positive_int("eval_size", eval_size)
  model = PureModel.from_constructor(lambda rngs: MLP(num_inputs, hidden_sizes, 1, rngs=rngs))

  def labelled(seed: int, step: int, rng: np.random.Generator, n: int, noise: float) -> dict:
    w, v, mean = _endpoints(seed, num_inputs, teacher_hidden)
    mu = input_shift * _on_circle(mean, step, input_period)
    x = (mu + rng.standard_normal((n, num_inputs))).astype(np.float32)
    y = np.tanh(x @ _on_circle(w, step, teacher_period)) @ _on_circle(v, step, teacher_period)
    if noise:
      y = y + noise * rng.standard_normal(n)
    return {"x": x, "y": y.astype(np.float32)}

  def train_batch(seed: int, step: int):
    return labelled(seed, step, stream_rng(seed, Stream.STEP, step), batch_size, noise_std)

  def eval_batches(seed: int, step: int):
    return {"test": [labelled(seed, step, stream_rng(seed, Stream.EVAL, step), eval_size, 0.0)]}

  return Workload(
    name="drifting_regression",
    init=model.init,
    loss=squared_error_loss(model.apply),
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss",),
    default_steps=20_000,
    primary_metric="online_loss",
    stream=True,
  )
