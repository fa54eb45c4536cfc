"""MetaOptimize with a Flax Linen ``TrainState``: ``apply_gradients`` that passes ``value_fn``.

``flax.training.train_state.TrainState.apply_gradients`` calls ``tx.update`` without extra
arguments, so the curvature-aware trace (``hessian="hvp"``), which needs ``value_fn``, cannot
run through it. :func:`apply_gradients` does what it does and passes ``value_fn`` on::

  state = mo_linen.apply_gradients(state, grads=grads, value_fn=value_fn)

Linen models are pure functions of their variables, so ``value_fn`` is simply the batch loss
as a function of ``params`` with everything else held fixed: the same ``batch_stats`` the
gradient was computed with (discard the ``mutable`` output inside ``value_fn``) and the same
``rngs={"dropout": key}``, so that it sees the dropout masks of the gradient. It runs under
``jax.vmap(jax.jvp(jax.grad(value_fn)))``.

Requires Flax (``pip install "metaoptimize-optax[experiments]"``); the core package does not
import it.

>>> import jax, jax.numpy as jnp
>>> import flax.linen as nn
>>> from flax.training import train_state
>>> import metaoptimize_optax as mo
>>> import metaoptimize_optax.linen as mo_linen
>>> model = nn.Dense(1)
>>> x, y = jnp.ones((8, 3)), jnp.zeros(8)
>>> state = train_state.TrainState.create(
...     apply_fn=model.apply, params=model.init(jax.random.key(0), x)["params"],
...     tx=mo.adamw(1e-3, hessian="hvp"))
>>> @jax.jit
... def train_step(state, x, y):
...   def loss_fn(params):
...     return jnp.mean((state.apply_fn({"params": params}, x)[:, 0] - y) ** 2)
...   loss, grads = jax.value_and_grad(loss_fn)(state.params)
...   return mo_linen.apply_gradients(state, grads=grads, value_fn=loss_fn), loss
>>> state, loss = train_step(state, x, y)
>>> int(state.step)
1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import jax
import optax

from metaoptimize_optax._extras import missing_extra

try:
  from flax.linen.fp8_ops import OVERWRITE_WITH_GRADIENT
  from flax.training import train_state
except ModuleNotFoundError as e:
  raise missing_extra(e, "metaoptimize_optax.linen") from None

__all__ = ["apply_gradients"]

S = TypeVar("S", bound=train_state.TrainState)


def apply_gradients(
  state: S,
  *,
  grads: Any,
  value_fn: Callable[[Any], jax.Array] | None = None,
  **kwargs: Any,
) -> S:
  """``state.apply_gradients(grads=grads, **kwargs)``, passing ``value_fn`` to ``tx.update``.

  The same as ``TrainState.apply_gradients``: ``tx.update(grads, opt_state, params,
  value_fn=value_fn)``, ``optax.apply_updates``, ``step + 1``, and ``kwargs`` replaced in the
  state (``batch_stats=...``, say). Under Flax's ``OVERWRITE_WITH_GRADIENT`` collection, as
  there, only ``params["params"]`` goes through the optimizer; ``value_fn`` still takes the
  whole ``params`` (the other collection held at its current value).

  Args:
    state: a ``flax.training.train_state.TrainState`` (or a subclass).
    grads: the gradients, shaped like ``state.params``.
    value_fn: ``params -> loss`` of the current batch, for ``hessian="hvp"`` (pure: it is
      called under ``jax.jvp`` and ``jax.vmap``); None passes nothing, as
      ``TrainState.apply_gradients`` does.
    **kwargs: other fields of ``state`` to replace.

  Returns:
    The updated state.

  Example:

  >>> import jax, jax.numpy as jnp, optax
  >>> from flax.training import train_state
  >>> import metaoptimize_optax as mo
  >>> import metaoptimize_optax.linen as mo_linen
  >>> loss_fn = lambda w: jnp.sum((w - 1.0) ** 2)
  >>> state = train_state.TrainState.create(
  ...     apply_fn=None, params=jnp.zeros(3), tx=mo.sgd(1e-2, hessian="hvp"))
  >>> state = mo_linen.apply_gradients(
  ...     state, grads=jax.grad(loss_fn)(state.params), value_fn=loss_fn)
  >>> state.params
  Array([0.02, 0.02, 0.02], dtype=float32)
  """
  extra = {} if value_fn is None else {"value_fn": value_fn}
  overwrite = isinstance(grads, Mapping) and OVERWRITE_WITH_GRADIENT in grads
  if overwrite:
    grads_with_opt, params_with_opt = grads["params"], state.params["params"]
    if value_fn is not None:
      extra["value_fn"] = lambda p: value_fn({**state.params, "params": p})
  else:
    grads_with_opt, params_with_opt = grads, state.params
  updates, opt_state = state.tx.update(grads_with_opt, state.opt_state, params_with_opt, **extra)
  new_params = optax.apply_updates(params_with_opt, updates)
  if overwrite:
    new_params = {
      "params": new_params,
      OVERWRITE_WITH_GRADIENT: grads[OVERWRITE_WITH_GRADIENT],
    }
  return state.replace(step=state.step + 1, params=new_params, opt_state=opt_state, **kwargs)
