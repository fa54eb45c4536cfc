"""MetaOptimize's ancestors as peers: IDBD and Autostep, one step size per weight.

Both are written from their papers for a linear learner ``y = w . x`` with
squared error, where the error times the input is ``delta x = -g`` (the
negative gradient of ``0.5 delta^2``) and the curvature of weight ``i`` is
``x_i^2``. For any other learner they take the per-weight generalisation:
``-g`` in place of ``delta x``, and in place of ``x^2`` the Gauss-Newton
diagonal of a one-output squared error, ``c = g^2 / (2 L)``
(:func:`gauss_newton_diagonal`; ``L`` is the batch loss, handed to ``update``
as ``value=``), which is exactly ``x^2`` for one example of a linear learner.
``update`` also takes ``curvature=`` (a params-shaped tree) to use another.

References:
  Sutton, "Adapting Bias by Gradient Descent: An Incremental Version of
  Delta-Bar-Delta", AAAI 1992 (IDBD).

  Mahmood, Sutton, Degris & Pilarski, "Tuning-free step-size adaptation",
  ICASSP 2012 (Autostep).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def gauss_newton_diagonal(grads: optax.Updates, value: jax.Array) -> optax.Updates:
  """``g^2 / (2 L)``: the Gauss-Newton diagonal of a one-output squared error ``L``.

  For ``L = 0.5 (y - f(w))^2``, ``g = -(y - f) df/dw``, so ``g^2 / (2 L) =
  (df/dw)^2``; ``x^2`` for a linear learner. Zero where ``g`` is (also at ``L = 0``).
  """
  two_loss = 2.0 * value
  return jax.tree.map(
    lambda g: jnp.where(g == 0, 0.0, g**2 / jnp.where(two_loss > 0, two_loss, 1.0)).astype(g.dtype),
    grads,
  )


def _curvature(grads: optax.Updates, value: Any, curvature: Any, name: str) -> optax.Updates:
  if curvature is not None:
    return curvature
  if value is None:
    raise ValueError(
      f"{name}: update needs value= (the batch loss, for the curvature g^2 / (2 L)) or "
      "curvature= (a params-shaped tree, x**2 for a linear learner)."
    )
  return gauss_newton_diagonal(grads, value)


class IDBDState(NamedTuple):
  """State of :func:`idbd`."""

  log_learning_rate: optax.Params  # beta, one per weight.
  trace: optax.Params  # h, one per weight.


def idbd(
  initial_learning_rate: float = 0.05, meta_learning_rate: float = 0.01
) -> optax.GradientTransformationExtraArgs:
  """IDBD (Sutton, 1992): per-weight log step sizes by meta-gradient descent.

  One step (``-g`` is ``delta x`` for a linear learner, ``c`` its ``x^2``)::

    beta  = beta + theta * (-g) * h
    alpha = exp(beta)
    dw    = alpha * (-g)
    h     = h * (1 - alpha * c)^+ + dw

  Args:
    initial_learning_rate: ``exp(beta)`` at the start.
    meta_learning_rate: ``theta``, IDBD's meta step size.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes the
    batch loss as ``value=`` (or the curvature as ``curvature=``).

  Example:
    >>> import jax.numpy as jnp
    >>> from metaoptimize_optax.experiments.ancestors import idbd
    >>> tx = idbd(0.05, 0.01)
    >>> w, x, y = jnp.zeros(3), jnp.array([1.0, 2.0, 0.0]), 1.0
    >>> g = -(y - w @ x) * x
    >>> updates, state = tx.update(g, tx.init(w), w, value=0.5 * (y - w @ x) ** 2)
  """

  def init_fn(params):
    beta = jnp.log(initial_learning_rate)
    return IDBDState(
      log_learning_rate=jax.tree.map(lambda p: jnp.full_like(p, beta), params),
      trace=jax.tree.map(jnp.zeros_like, params),
    )

  def update_fn(updates, state, params=None, *, value=None, curvature=None, **extra_args):
    del params, extra_args
    c = _curvature(updates, value, curvature, "idbd")
    beta = jax.tree.map(
      lambda b, g, h: b - meta_learning_rate * g * h, state.log_learning_rate, updates, state.trace
    )
    dw = jax.tree.map(lambda b, g: -jnp.exp(b) * g, beta, updates)
    trace = jax.tree.map(
      lambda h, b, ci, d: h * jnp.maximum(1.0 - jnp.exp(b) * ci, 0.0) + d,
      state.trace,
      beta,
      c,
      dw,
    )
    return dw, IDBDState(log_learning_rate=beta, trace=trace)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AutostepState(NamedTuple):
  """State of :func:`autostep`."""

  learning_rate: optax.Params  # alpha, one per weight.
  trace: optax.Params  # h, one per weight.
  normalizer: optax.Params  # v, the running magnitude of delta x h.


def autostep(
  initial_learning_rate: float = 0.05, meta_learning_rate: float = 0.01, tau: float = 1e4
) -> optax.GradientTransformationExtraArgs:
  """Autostep (Mahmood, Sutton, Degris & Pilarski, 2012): IDBD normalised, so that its
  meta step size needs no tuning.

  One step, with ``z = (-g) * h`` (``delta x h`` for a linear learner)::

    v     = max(|z|, v + (1 / tau) * alpha * c * (|z| - v))
    alpha = alpha * exp(mu * z / v)           (where v > 0)
    alpha = alpha / max(sum(alpha * c), 1)    (over every weight)
    dw    = alpha * (-g)
    h     = h * (1 - alpha * c) + dw

  Args:
    initial_learning_rate: ``alpha`` at the start.
    meta_learning_rate: ``mu`` (the paper's default 1e-2).
    tau: the normalizer's time scale (the paper's default 1e4).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes the
    batch loss as ``value=`` (or the curvature as ``curvature=``).
  """

  def init_fn(params):
    return AutostepState(
      learning_rate=jax.tree.map(lambda p: jnp.full_like(p, initial_learning_rate), params),
      trace=jax.tree.map(jnp.zeros_like, params),
      normalizer=jax.tree.map(jnp.zeros_like, params),
    )

  def update_fn(updates, state, params=None, *, value=None, curvature=None, **extra_args):
    del params, extra_args
    c = _curvature(updates, value, curvature, "autostep")
    z = jax.tree.map(lambda g, h: -g * h, updates, state.trace)
    v = jax.tree.map(
      lambda zi, vi, a, ci: jnp.maximum(jnp.abs(zi), vi + a * ci * (jnp.abs(zi) - vi) / tau),
      z,
      state.normalizer,
      state.learning_rate,
      c,
    )
    alpha = jax.tree.map(
      lambda a, zi, vi: jnp.where(
        vi > 0, a * jnp.exp(meta_learning_rate * zi / jnp.where(vi > 0, vi, 1.0)), a
      ),
      state.learning_rate,
      z,
      v,
    )
    products = jax.tree.leaves(jax.tree.map(lambda a, ci: jnp.sum(a * ci), alpha, c))
    total = sum(products)
    alpha = jax.tree.map(lambda a: a / jnp.maximum(total, 1.0), alpha)
    dw = jax.tree.map(lambda a, g: -a * g, alpha, updates)
    trace = jax.tree.map(lambda h, a, ci, d: h * (1.0 - a * ci) + d, state.trace, alpha, c, dw)
    return dw, AutostepState(learning_rate=alpha, trace=trace, normalizer=v)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
