"""MetaOptimize in Flax NNX training loops, BatchNorm, Dropout and other state included.

``hessian="hvp"`` needs ``value_fn``, the loss of the current batch as a pure function of the
params, and calls it under ``jax.vmap(jax.jvp(jax.grad(value_fn)))``. A ``value_fn`` that calls
the NNX model directly would mutate the model's ``BatchStat`` and ``RngCount`` variables from
inside those transforms (``TraceContextError: Cannot mutate BatchStat from a different trace
level``), or, after ``nnx.merge(..., copy=True)``, run on a copy whose new statistics are lost.

:func:`loss_and_grads` splits the model once per step, outside every transform, into its
params and the rest of its state (BatchNorm statistics, rng keys and counts, ...). It returns

* the loss and the gradients of the params, the model's new non-param state written back into
  the model (running statistics kept, rng counts advanced), as ``nnx.value_and_grad`` would;
* ``value_fn(params) -> loss``: the same loss at other params, evaluated on a fresh copy of the
  model with the non-param state of *before* the step, so with the same dropout masks and batch
  statistics as the gradient; its own state changes are discarded. It is pure, so it is safe
  under ``jax.jit``, ``jax.grad``, ``jax.jvp`` and ``jax.vmap``.

NNX objects other than the model among the arguments (an ``nnx.Rngs`` passed to the loss, say)
are split with it and handled the same way: their state is read once per step, the same in the
gradient and in ``value_fn``, and advanced once.

Requires Flax (``pip install "metaoptimize-optax[experiments]"``); the core package does not
import it.

>>> import jax, jax.numpy as jnp, optax
>>> from flax import nnx
>>> import metaoptimize_optax as mo
>>> import metaoptimize_optax.nnx as mo_nnx
>>> class Net(nnx.Module):
...   def __init__(self, rngs):
...     self.linear = nnx.Linear(4, 8, rngs=rngs)
...     self.norm = nnx.BatchNorm(8, rngs=rngs)
...     self.dropout = nnx.Dropout(0.1, rngs=rngs)
...     self.out = nnx.Linear(8, 1, rngs=rngs)
...   def __call__(self, x):
...     return self.out(self.dropout(nnx.relu(self.norm(self.linear(x)))))
>>> model = Net(nnx.Rngs(0))
>>> optimizer = nnx.Optimizer(model, mo.adamw(1e-3, meta="adam", hessian="hvp"), wrt=nnx.Param)
>>> def loss_fn(model, x, y):
...   return jnp.mean((model(x)[:, 0] - y) ** 2)
>>> @nnx.jit
... def train_step(model, optimizer, x, y):
...   loss, grads, value_fn = mo_nnx.loss_and_grads(loss_fn, model, x, y)
...   optimizer.update(model, grads, value_fn=value_fn)
...   return loss
>>> x, y = jnp.ones((16, 4)), jnp.zeros(16)
>>> losses = [float(train_step(model, optimizer, x, y)) for _ in range(3)]
>>> bool(jnp.any(model.norm.mean[...] != 0))   # the running statistics were kept
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

from metaoptimize_optax._extras import missing_extra

try:
  from flax import nnx
except ModuleNotFoundError as e:
  raise missing_extra(e, "metaoptimize_optax.nnx") from None
from flax.nnx import graphlib

__all__ = ["loss_and_grads", "step"]

Params = Any  # An ``nnx.State`` of the ``wrt`` variables (pure arrays or variables).


def _is_node(x: Any) -> bool:
  return graphlib.is_graph_node(x)


def loss_and_grads(
  loss_fn: Callable[..., Any],
  model: nnx.Module,
  *args: Any,
  wrt: Any = nnx.Param,
  has_aux: bool = False,
  **kwargs: Any,
) -> tuple[Any, nnx.State, Callable[[Params], jax.Array]]:
  """The loss, its gradients and a pure ``value_fn`` of one training step of an NNX model.

  Args:
    loss_fn: ``loss_fn(model, *args, **kwargs) -> loss`` (a 0-d array), or ``(loss, aux)``
      with ``has_aux=True``. It may update BatchNorm statistics, draw dropout masks from the
      model's own rng streams or from an ``nnx.Rngs`` among ``args``/``kwargs``, and set any
      other non-param variable.
    model: the NNX module being trained.
    *args: the rest of ``loss_fn``'s positional arguments (the batch; NNX objects such as an
      ``nnx.Rngs`` are handled like the model's own state, and must not share variables with
      the model; their params, if any, are held fixed).
    wrt: the filter of the trained variables, as given to ``nnx.Optimizer(..., wrt=...)``.
    has_aux: whether ``loss_fn`` returns ``(loss, aux)``.
    **kwargs: keyword arguments of ``loss_fn`` (NNX objects handled as in ``args``).

  Returns:
    ``(loss, grads, value_fn)``, where ``loss`` is ``(loss, aux)`` with ``has_aux``;
    ``grads`` is the ``nnx.State`` of the gradients of the ``wrt`` variables (what
    ``nnx.grad`` returns, for ``optimizer.update(model, grads, ...)``), and
    ``value_fn(params) -> loss`` is the loss of the same batch at ``params`` (an ``nnx.State``
    of the ``wrt`` variables, pure arrays as ``nnx.Optimizer`` passes them), with the
    non-param state and rng draws of the gradient computation. Before returning, the model's
    (and the NNX arguments') non-param state is updated as one call of ``loss_fn`` leaves it.
    ``value_fn`` mutates nothing.

  Example:

  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> import metaoptimize_optax.nnx as mo_nnx
  >>> model = nnx.Sequential(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), nnx.BatchNorm(3, rngs=nnx.Rngs(0)))
  >>> loss_fn = lambda model, x: jnp.mean(model(x) ** 2)
  >>> x = jnp.arange(8.0).reshape(4, 2)
  >>> loss, grads, value_fn = mo_nnx.loss_and_grads(loss_fn, model, x)
  >>> params = nnx.as_pure(nnx.state(model, nnx.Param))
  >>> bool(jnp.allclose(value_fn(params), loss))
  True
  >>> bool(jnp.any(model.layers[1].mean[...] != 0))   # the running mean moved
  True
  """
  nodes_at = [i for i, a in enumerate(args) if _is_node(a)]
  kw_nodes_at = [k for k, v in kwargs.items() if _is_node(v)]
  others = (tuple(args[i] for i in nodes_at), {k: kwargs[k] for k in kw_nodes_at})
  # One split per step, outside every transform. The non-param state becomes pure arrays, so
  # each merge below makes fresh variables that belong to the trace it runs in (the model's
  # own are never touched inside a transform).
  graphdef, params, rest = nnx.split(model, wrt, ...)
  others_def, others_state = nnx.split(others)
  # The params stay variables: their gradients are then an ``nnx.State`` of ``Param``s, as
  # ``nnx.grad`` returns and ``nnx.Optimizer.update`` filters.
  rest, others_state = nnx.as_pure((rest, others_state))

  def call(p: Params) -> tuple[Any, tuple[Any, Any]]:
    m = nnx.merge(graphdef, p, rest)
    node_args, node_kwargs = nnx.merge(others_def, others_state)
    full_args = list(args)
    for i, node in zip(nodes_at, node_args, strict=True):
      full_args[i] = node
    out = loss_fn(m, *full_args, **{**kwargs, **node_kwargs})
    _, _, new_rest = nnx.split(m, wrt, ...)
    _, new_others = nnx.split((node_args, node_kwargs))
    return out, nnx.as_pure((new_rest, new_others))

  def with_state(p: Params) -> tuple[jax.Array, tuple[Any, Any]]:
    out, new_state = call(p)
    loss, aux = out if has_aux else (out, None)
    return loss, (aux, new_state)

  (loss, (aux, (new_rest, new_others))), grads = jax.value_and_grad(with_state, has_aux=True)(
    params
  )
  nnx.update(model, new_rest)
  if nodes_at or kw_nodes_at:
    nnx.update(others, new_others)

  def value_fn(p: Params) -> jax.Array:
    """The loss of this step's batch at ``p``; pure (state changes are discarded)."""
    out, _ = call(p)
    return out[0] if has_aux else out

  return ((loss, aux) if has_aux else loss), grads, value_fn


def step(
  optimizer: nnx.Optimizer,
  model: nnx.Module,
  loss_fn: Callable[..., Any],
  *args: Any,
  has_aux: bool = False,
  **kwargs: Any,
) -> Any:
  """One training step: :func:`loss_and_grads`, then ``optimizer.update(..., value_fn=...)``.

  Works for either trace (``value_fn`` is ignored by ``hessian="free"``) and for any Optax
  optimizer (``value_fn`` is passed to those that take extra arguments in ``update``). Call it
  inside ``nnx.jit``.

  Returns:
    The loss (``(loss, aux)`` with ``has_aux``) at the params before the update.

  Example:

  >>> import jax.numpy as jnp, optax
  >>> from flax import nnx
  >>> import metaoptimize_optax as mo
  >>> import metaoptimize_optax.nnx as mo_nnx
  >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  >>> optimizer = nnx.Optimizer(model, mo.adamw(1e-2, hessian="hvp"), wrt=nnx.Param)
  >>> loss_fn = lambda model, x: jnp.mean(model(x) ** 2)
  >>> train_step = nnx.jit(lambda model, optimizer, x: mo_nnx.step(optimizer, model, loss_fn, x))
  >>> loss = train_step(model, optimizer, jnp.ones((4, 2)))
  """
  loss, grads, value_fn = loss_and_grads(
    loss_fn, model, *args, wrt=optimizer.wrt, has_aux=has_aux, **kwargs
  )
  if isinstance(optimizer.tx, optax.GradientTransformationExtraArgs):
    optimizer.update(model, grads, value_fn=value_fn)
  else:  # A plain transformation takes no extra arguments.
    optimizer.update(model, grads)
  return loss
