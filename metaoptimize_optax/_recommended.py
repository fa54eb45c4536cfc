"""The recommended configuration: MetaOptimize that matches a tuned schedule untuned.

The paper's defaults (Hessian-free trace, gamma 1, Lion meta optimizer at 1e-3)
learn a rate that warms up but hardly decays on runs of a few thousand steps,
and Lion's fixed-size meta steps make the rate saw up and down. The project's
study (README, "Which configuration should I use?") found that two changes,
both derived from the run length ``T``, close the gap to a tuned AdamW with
warm-up and cosine decay:

* a horizon-aware discount ``gamma_t = 1 - 1 / (T - t)``: the meta-gradient
  looks ahead to the end of the run and no further, so the rate decays as the
  end approaches (the horizon shrinks, and short horizons favour small rates),
  where ``gamma = 1`` keeps the rate up to the last step and a fixed
  ``gamma = 0.99`` (100 steps ahead) decays it far too early;
* an Adam meta optimizer at ``meta_learning_rate = 90 / T`` (clipped to
  [1e-3, 3e-2]): it can climb three orders of magnitude in a tenth of the run,
  and smooths the meta-gradient where Lion's sign steps oscillate.

A stream has no end (``total_steps=None``): there the study on six streams
(docs, "On a stream") chose a constant ``gamma = 0.99`` (about 100 steps ahead:
at 0.9999 the Hessian-free trace remembers 10,000 steps of movement, which on a
target that keeps changing lines up against the gradient and drives the rate
to 1e-9), per-layer rates (on label-permuted classification the hidden layers
want a rate 100-1000x below the output layer's), the fastest meta step of the
range, 3e-2 (the climb from a low start is what a stream pays for longest),
and no momentum (it carries the last task's direction into the next) or weight
decay (the streams were studied without it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from metaoptimize_optax import _validation
from metaoptimize_optax._meta_parameters import Space
from metaoptimize_optax._metaoptimize import Blocks, Hessian
from metaoptimize_optax._presets import adamw

META_RATE_HORIZON = 90.0  # meta_learning_rate = META_RATE_HORIZON / total_steps
META_RATE_RANGE = (1e-3, 3e-2)
# A stream (total_steps=None): its discount, meta learning rate (the range's top), and the
# defaults of b1 and weight_decay that differ from a run's (0.9 and 0.1).
STREAM_GAMMA = 0.99
STREAM_META_LEARNING_RATE = META_RATE_RANGE[1]
STREAM_B1 = 0.0
STREAM_WEIGHT_DECAY = 0.0
# The meta learning rate (Adam) of learned meta-parameters other than the rate: the
# paper's meta learning rate. At the learning rate's own (up to 3e-2) b1 and b2 run
# to 1 within a few thousand steps and the weight decay to 0.
META_PARAMETERS_META_RATE = 1e-3


def _check_total_steps(total_steps: Any) -> int | jax.Array | None:
  """None, an int >= 10 (an integral float is read as one), or an array (injected)."""
  if isinstance(total_steps, jax.Array):
    if not jnp.issubdtype(total_steps.dtype, jnp.number) or jnp.ndim(total_steps):
      raise TypeError(f"total_steps={total_steps!r} is not a number.")
    if _validation.is_traced(total_steps):
      return total_steps
    total_steps = total_steps.item()
  if total_steps is None:
    return None
  integral = isinstance(total_steps, int | float) and float(total_steps).is_integer()
  if isinstance(total_steps, bool) or not integral or total_steps < 10:
    raise ValueError(
      f"total_steps={total_steps!r} is invalid; expected None or an integer >= 10 "
      "(the number of optimizer updates)."
    )
  return int(total_steps)


def horizon_gamma(total_steps: int | jax.Array) -> optax.Schedule:
  """``count -> 1 - 1 / max(total_steps - count, 2)``: discount to the end of the run."""
  return lambda count: 1.0 - 1.0 / jnp.maximum(total_steps - count, 2).astype(jnp.float32)


def recommended_settings(total_steps: int | jax.Array | None = None) -> dict[str, Any]:
  """The ``gamma`` and ``meta_learning_rate`` that :func:`recommended` uses for a run length.

  With ``total_steps`` the discount is the schedule :func:`horizon_gamma` and the
  meta learning rate ``clip(90 / total_steps, 1e-3, 3e-2)``; without (a stream),
  the constant :data:`STREAM_GAMMA`, 0.99, and 3e-2.

  >>> import metaoptimize_optax as mo
  >>> settings = mo.recommended_settings(3000)
  >>> settings["meta_learning_rate"], round(float(settings["gamma"](2000)), 6)
  (0.03, 0.999)
  >>> mo.recommended_settings()
  {'gamma': 0.99, 'meta_learning_rate': 0.03}
  """
  total_steps = _check_total_steps(total_steps)
  lo, hi = META_RATE_RANGE
  if isinstance(total_steps, jax.Array):  # Injected: the same settings, in jnp.
    return {
      "gamma": horizon_gamma(total_steps),
      "meta_learning_rate": jnp.clip(META_RATE_HORIZON / total_steps, lo, hi).astype(jnp.float32),
    }
  if total_steps is None:
    return {"gamma": STREAM_GAMMA, "meta_learning_rate": STREAM_META_LEARNING_RATE}
  return {
    "gamma": horizon_gamma(total_steps),
    "meta_learning_rate": min(hi, max(lo, META_RATE_HORIZON / total_steps)),
  }


def recommended(
  initial_learning_rate: float = 1e-4,
  total_steps: int | jax.Array | None = None,
  *,
  b1: float | None = None,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float | None = None,
  weight_decay_mask: Any = None,
  blocks: Blocks | None = None,
  hessian: Hessian = "free",
  min_learning_rate: float | None = None,
  max_learning_rate: float | None = None,
  meta_parameters: Mapping[str, Space] | None = None,
  trace_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize as the project recommends it: AdamW base, Adam meta, horizon-aware gamma.

  One call with no learning rate to tune: start anywhere one to three orders of
  magnitude below a good fixed rate, and say how long training will be.

  The configuration is :func:`adamw` (Optax's Adam at rate 1, decoupled weight
  decay 0.1, Hessian-free trace, one scalar rate) with ``meta="adam"`` and the
  settings of :func:`recommended_settings`::

    gamma_t            = 1 - 1 / max(total_steps - t, 2)     # t: updates so far
    meta_learning_rate = clip(90 / total_steps, 1e-3, 3e-2)

  ``total_steps=None`` is the call for a stream, which has no end: a constant
  ``gamma = 0.99``, an Adam meta step of 3e-2, per-layer rates
  (``blocks="per_layer"``), and neither momentum (``b1 = 0``) nor weight decay.
  On a linear learner (one weight vector, as in IDBD's tracking task) pass
  ``blocks="per_weight"``: one rate per weight, as IDBD learns them; a network
  keeps the per-layer default. The paper's defaults stay available, unchanged, as
  ``mo.adamw()``. ``gamma``, ``meta`` and ``meta_learning_rate`` are set here;
  call :func:`adamw` to choose them.

  Args:
    initial_learning_rate: the starting rate (default 1e-4).
    total_steps: the number of optimizer updates, if known: calls of
      ``update``, not epochs or rollouts (PPO with 4 epochs of 4 minibatches
      per rollout makes 16 updates a rollout; under ``optax.MultiSteps``, the
      number of inner updates). An int, or an integral float; under
      ``optax.inject_hyperparams`` it is injected like any number and a change
      takes effect from the next step.
    b1: Adam's first-moment decay (None: 0.9 with ``total_steps``, 0 on a stream).
    b2: Adam's second-moment decay.
    eps: Adam's denominator offset.
    weight_decay: decoupled weight decay (None: 0.1 with ``total_steps``, 0 on a
      stream).
    weight_decay_mask: the decayed weights (see :func:`metaoptimize`).
    blocks: which weights share a learning rate (see :func:`metaoptimize`);
      None: ``"scalar"`` with ``total_steps``, ``"per_layer"`` on a stream;
      ``"per_weight"`` for a linear learner on a stream.
    hessian: ``"free"`` (default), ``"diagonal"`` or ``"hvp"`` (see :func:`metaoptimize`).
    min_learning_rate: optional lower clamp of the learned rates.
    max_learning_rate: optional upper clamp of the learned rates.
    meta_parameters: hyperparameters learned beside the learning rate (see
      :func:`adamw`), e.g. ``{"b2": "logit", "weight_decay": "log"}``, by Adam
      at 1e-3 (the paper's meta learning rate).
    trace_dtype: dtype of the weight traces (None: the params' dtype).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (see :func:`metaoptimize`).

  Example:
    >>> import metaoptimize_optax as mo
    >>> tx = mo.recommended(total_steps=3000)  # a run of 3,000 updates
    >>> stream = mo.recommended()  # a stream without an end
    >>> linear = mo.recommended(blocks="per_weight")  # a linear learner on a stream
  """
  stream = total_steps is None
  return adamw(
    initial_learning_rate,
    b1=(STREAM_B1 if stream else 0.9) if b1 is None else b1,
    b2=b2,
    eps=eps,
    weight_decay=(STREAM_WEIGHT_DECAY if stream else 0.1) if weight_decay is None else weight_decay,
    meta="adam",
    weight_decay_mask=weight_decay_mask,
    blocks=("per_layer" if stream else "scalar") if blocks is None else blocks,
    hessian=hessian,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    meta_parameters=meta_parameters,
    meta_parameters_meta=optax.adam(META_PARAMETERS_META_RATE) if meta_parameters else None,
    trace_dtype=trace_dtype,
    **recommended_settings(total_steps),
  )
