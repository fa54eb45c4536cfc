"""MetaOptimize: learning rates tuned online by meta-gradient descent.

Implements Sharifnassab, Salehkaleybar & Sutton, "MetaOptimize: A Framework for
Optimizing Step Sizes and Other Meta-parameters", ICML 2025 (arXiv:2402.02342),
for any Optax base optimizer, with the paper's Hessian-free trace and a
curvature-aware trace whose Hessian-vector products come from ``jax.jvp``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metaoptimize_optax import _blocks

HESSIAN_KINDS = ("free", "hvp")


class MetaOptimizeState(NamedTuple):
  """State of the ``GradientTransformation`` returned by :func:`metaoptimize`."""

  base_state: optax.OptState  # State of the base optimizer.
  log_learning_rate: Any  # beta = log(alpha): a 0-d array, dict or tree, per block.
  meta_state: optax.OptState  # State of the meta optimizer, over log_learning_rate.
  # h = d w / d beta. "free": params-shaped. "hvp": one params-shaped column per
  # block, stacked on a leading axis of size num_blocks.
  trace: optax.Updates
  # "hvp" only: d s / d beta for each inexact leaf of the base state (leading
  # block axis, in the order of jax.tree.leaves); () for "free".
  base_state_trace: tuple
  count: jax.Array  # Number of updates so far (int32), the argument of a gamma schedule.


def _concrete(value: Any) -> float | None:
  """``float(value)``, or None when ``value`` is traced (under inject_hyperparams)."""
  if isinstance(value, jax.core.Tracer):
    return None
  return float(value)


def _check_number(name: str, value: Any, accepted: str, ok) -> None:
  try:
    x = _concrete(value)
  except (TypeError, ValueError) as err:
    raise TypeError(f"{name}={value!r} is not a real scalar; expected {accepted}.") from err
  if x is not None and not (math.isfinite(x) and ok(x)):
    raise ValueError(f"{name}={value!r} is invalid; expected {accepted}.")


def _check_transformation(name: str, tx: Any) -> None:
  if isinstance(tx, optax.GradientTransformation):
    return
  hint = ""
  if callable(tx) and getattr(tx, "__module__", "").startswith("optax"):
    hint = f" (did you mean {getattr(tx, '__name__', 'it')}(...), called?)"
  raise TypeError(
      f"{name} must be an optax.GradientTransformation such as optax.adam(1.0), "
      f"got {tx!r}{hint}."
  )


def _log_lr_dtype(params: Any) -> Any:
  """float32, or the params' widest float dtype when that is wider."""
  dtype = jnp.dtype(jnp.float32)
  for leaf in jax.tree.leaves(params):
    if jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      dtype = jnp.promote_types(dtype, jnp.result_type(leaf))
  return dtype


def _is_inexact(x: Any) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _is_zero(x: Any) -> bool:
  return isinstance(x, (int, float)) and x == 0

def _finite_or_zero(x: jax.Array) -> jax.Array:
  return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def metaoptimize(
    base: optax.GradientTransformation,
    meta: optax.GradientTransformation | None = None,
    *,
    initial_learning_rate: float = 1e-6,
    weight_decay: float = 0.0,
    weight_decay_mask: Any = None,
    gamma: float | optax.Schedule = 1.0,
    blocks: Any = "scalar",
    hessian: str = "free",
    min_learning_rate: float | None = None,
    max_learning_rate: float | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Tunes the learning rates of ``base`` online by meta-gradient descent.

  MetaOptimize treats the log learning rate ``beta`` of each block of weights as
  a parameter and descends, online, on the discounted sum of future losses
  ``sum_k gamma^k L(w_{t+k})``. A trace ``h``, the sensitivity of the weights to
  ``beta``, makes the meta-gradient causal. One Hessian-free step
  (Algorithm 3 of the paper, for any base) is::

    z_b       = sum_{i in b} h_i * g_i                 # trace from before the step
    u, s      = base.update(g, s, w)                   # base direction at rate 1
    dw_i      = alpha_i * (u_i - kappa * M_i * w_i)    # returned update
    h_i       = gamma * (1 - kappa * M_i * alpha_i) * h_i + dw_i
    beta      = beta + meta.update(z, meta_state, beta)

  with ``alpha = exp(beta)`` taken before the meta step. With ``hessian="hvp"``
  the trace is the forward-mode derivative of the whole step with respect to
  ``beta``, the base optimizer's state carried along: per block ``b``,
  ``(X^w, X^s) <- jvp(step, (w, s, beta), (gamma X^w, gamma X^s, e_b))`` where the
  step recomputes ``g = grad(value_fn)(w)`` (a Hessian-vector product), and
  ``z_b = <X^w_b, g>`` summed over all weights. Tangents that come out
  non-finite (``sqrt`` of a zero second moment in Adam-like bases, where the
  true contribution is zero) are set to zero.

  Args:
    base: any Optax transformation used at learning rate 1, whose updates are
      descent-signed (``optax.adam(1.0)``, a chain with clipping, a schedule that
      peaks at 1). Extra keyword arguments of ``update`` are passed on to it.
    meta: the Optax optimizer applied to the log learning rates, which it sees in
      the structure :func:`learning_rates` returns. ``None`` is the paper's Lion
      (learning rate 1e-3, b1 0.9, b2 0.99, no weight decay).
    initial_learning_rate: the starting learning rate of every block (paper:
      1e-6, one to two orders below a good fixed rate).
    weight_decay: decoupled weight decay ``kappa``, scaled by the learning rate.
    weight_decay_mask: a tree of booleans shaped like the params (or a prefix of
      it), or a callable ``params -> tree``, selecting the decayed weights.
    gamma: discount of future losses, in [0, 1]; 0 is hypergradient descent.
      A schedule ``count -> gamma`` (``count`` = updates so far) varies it, for
      example to look ahead to the end of a run of known length
      (:func:`recommended`).
    blocks: which weights share a learning rate: ``"scalar"``, ``"per_layer"``
      (leaves under one parent node, labelled by its '/'-joined path),
      ``"per_leaf"``, ``"per_weight"``, a pytree of hashable labels shaped like the
      params (or a prefix of it), or a callable ``params -> labels``.
    hessian: ``"free"`` (the paper's trace) or ``"hvp"`` (curvature-aware; pass
      ``value_fn=`` to ``update``, a function ``params -> loss`` of the batch
      whose gradient is ``updates``).
    min_learning_rate: optional lower clamp of every learning rate.
    max_learning_rate: optional upper clamp of every learning rate.

  Returns:
    An ``optax.GradientTransformationExtraArgs``. Log learning rates and meta
    state are float32, or the params' dtype when that is wider; updates and the
    trace have the params' dtype.

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> import metaoptimize_optax as mo
    >>> loss = lambda w: jnp.sum((w - 3.0) ** 2)
    >>> tx = mo.metaoptimize(optax.adam(1.0), initial_learning_rate=1e-3)
    >>> w = jnp.zeros(3)
    >>> state = tx.init(w)
    >>> for _ in range(200):
    ...   updates, state = tx.update(jax.grad(loss)(w), state, w)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(mo.learning_rates(state) > 1e-3)
    True

  References:
    Sharifnassab, Salehkaleybar & Sutton, `MetaOptimize: A Framework for
    Optimizing Step Sizes and Other Meta-parameters
    <https://arxiv.org/abs/2402.02342>`_, ICML 2025.
  """
  _check_transformation("base", base)
  if meta is None:
    meta = optax.lion(1e-3, b1=0.9, b2=0.99, weight_decay=0.0)
  _check_transformation("meta", meta)
  _check_number("initial_learning_rate", initial_learning_rate, "a finite number > 0",
                lambda x: x > 0)
  _check_number("weight_decay", weight_decay, "a finite number >= 0", lambda x: x >= 0)
  _check_number("gamma(0)" if callable(gamma) else "gamma", gamma(0) if callable(gamma) else gamma,
                "a number in [0, 1] or a schedule count -> [0, 1]", lambda x: 0 <= x <= 1)
  for name, value in (("min_learning_rate", min_learning_rate),
                      ("max_learning_rate", max_learning_rate)):
    if value is not None:
      _check_number(name, value, "None or a finite number > 0", lambda x: x > 0)
  if min_learning_rate is not None and max_learning_rate is not None:
    lo, hi = _concrete(min_learning_rate), _concrete(max_learning_rate)
    if lo is not None and hi is not None and lo > hi:
      raise ValueError(
          f"min_learning_rate={min_learning_rate!r} is larger than "
          f"max_learning_rate={max_learning_rate!r}; expected min <= max."
      )
  lr0 = _concrete(initial_learning_rate)
  if lr0 is not None and not (
      (min_learning_rate is None or lr0 >= float(min_learning_rate))
      and (max_learning_rate is None or lr0 <= float(max_learning_rate))
  ):
    raise ValueError(
        f"initial_learning_rate={initial_learning_rate!r} lies outside "
        f"[min_learning_rate, max_learning_rate] = [{min_learning_rate}, {max_learning_rate}]."
    )
  if not isinstance(hessian, str) or hessian not in HESSIAN_KINDS:
    raise ValueError(f"hessian={hessian!r} is not one of {HESSIAN_KINDS}.")
  _blocks.check_blocks(blocks)
  if hessian == "hvp" and isinstance(blocks, str) and blocks == "per_weight":
    raise ValueError(
        'blocks="per_weight" cannot be used with hessian="hvp": the curvature-aware '
        "trace keeps one params-sized column per block. Use blocks='scalar', "
        "'per_layer', 'per_leaf' or a label tree with hessian='hvp', or "
        "hessian='free' with 'per_weight'."
    )

  base = optax.with_extra_args_support(base)
  meta = optax.with_extra_args_support(meta)
  curvature = hessian == "hvp"
  decays = weight_decay is not None and _concrete(weight_decay) != 0.0

  def init_fn(params):
    lay = _blocks.layout(blocks, params)
    dtype = _log_lr_dtype(params)
    log_lr = _blocks.init_log_lr(lay, params, jnp.log(jnp.asarray(initial_learning_rate, dtype)),
                                 dtype)
    base_state = base.init(params)
    if curvature:
      k = _blocks.num_blocks(log_lr)
      column = lambda x: jnp.zeros((k, *jnp.shape(x)), jnp.result_type(x))
      trace = jax.tree.map(column, params)
      base_trace = tuple(column(x) for x in jax.tree.leaves(base_state) if _is_inexact(x))
    else:
      trace = jax.tree.map(jnp.zeros_like, params)
      base_trace = ()
    if weight_decay_mask is not None:
      _decay_mask(params)  # Validates the mask's structure at init.
    return MetaOptimizeState(base_state, log_lr, meta.init(log_lr), trace, base_trace,
                             jnp.zeros([], jnp.int32))

  def _decay_mask(params) -> list[Any]:
    treedef = jax.tree.structure(params)
    if weight_decay_mask is None:
      return [True] * treedef.num_leaves
    mask = weight_decay_mask(params) if callable(weight_decay_mask) else weight_decay_mask
    return _blocks.broadcast_prefix(mask, params, "weight_decay_mask")

  def update_fn(updates, state, params=None, **extra_args):
    grads = updates
    if params is None and (decays or curvature):
      raise ValueError(
          "metaoptimize: update needs params (the third argument) when weight_decay "
          "is non-zero or hessian='hvp'."
      )
    value_fn = extra_args.get("value_fn")
    if curvature and value_fn is None:
      raise ValueError(
          "metaoptimize with hessian='hvp': update needs value_fn=, a function "
          "params -> loss on the current batch, e.g. "
          "tx.update(grads, state, params, value_fn=lambda p: loss(p, batch))."
      )
    discount = gamma(state.count) if callable(gamma) else gamma
    lay = _blocks.layout(blocks, grads)
    g = lay.treedef.flatten_up_to(grads)
    w = None if params is None else lay.treedef.flatten_up_to(params)
    log_lr = state.log_learning_rate
    dtype = jax.tree.leaves(log_lr)[0].dtype
    out_dtypes = [jnp.result_type(x) for x in (w if w is not None else g)]
    mask = _decay_mask(params) if decays else [False] * len(g)
    decay = [weight_decay * m if isinstance(m, jax.Array) else (weight_decay if m else 0.0)
             for m in mask]

    # Meta-gradient, from the trace before this step.
    if curvature:
      columns = lay.treedef.flatten_up_to(state.trace)
      per_block = sum(
          jnp.sum(x.astype(dtype) * gi.astype(dtype), axis=tuple(range(1, x.ndim)))
          for x, gi in zip(columns, g, strict=True)
      )
      lr_leaves, lr_def = jax.tree.flatten(log_lr)
      meta_grad = lr_def.unflatten([per_block[j] for j in range(len(lr_leaves))])
    else:
      h = lay.treedef.flatten_up_to(state.trace)
      meta_grad = _blocks.reduce(
          lay, [hi.astype(dtype) * gi.astype(dtype) for hi, gi in zip(h, g, strict=True)], dtype)

    def step(g, base_state, w, log_lr):
      """One base step at learning rates exp(log_lr): (dw leaves, new base state)."""
      u, base_state = base.update(g, base_state, w, **extra_args)
      alpha = _blocks.leafwise(lay, jax.tree.map(jnp.exp, log_lr))
      u = lay.treedef.flatten_up_to(u)
      w = [None] * len(u) if w is None else lay.treedef.flatten_up_to(w)
      dw = [
          (a * (ui if _is_zero(d) else ui - d * wi)).astype(dt)
          for a, ui, wi, d, dt in zip(alpha, u, w, decay, out_dtypes, strict=True)
      ]
      return dw, base_state

    dw, base_state = step(grads, state.base_state, params, log_lr)

    if curvature:
      trace, base_trace = _curvature_trace(
          step, value_fn, grads, state, params, discount)
    else:
      alpha = _blocks.leafwise(lay, jax.tree.map(jnp.exp, log_lr))
      trace = lay.treedef.unflatten([
          (discount * (1.0 - d * a) * hi + di).astype(hi.dtype)
          for hi, di, a, d in zip(h, dw, alpha, decay, strict=True)
      ])
      base_trace = ()

    meta_updates, meta_state = meta.update(meta_grad, state.meta_state, log_lr)
    log_lr = optax.apply_updates(log_lr, meta_updates)
    if min_learning_rate is not None or max_learning_rate is not None:
      lo = None if min_learning_rate is None else jnp.log(min_learning_rate)
      hi = None if max_learning_rate is None else jnp.log(max_learning_rate)
      log_lr = jax.tree.map(lambda b: jnp.clip(b, lo, hi).astype(b.dtype), log_lr)

    new_state = MetaOptimizeState(base_state, log_lr, meta_state, trace, base_trace,
                                  optax.safe_increment(state.count))
    return lay.treedef.unflatten(dw), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _curvature_trace(step, value_fn, grads, state, params, gamma):
  """Forward-mode derivative of one step w.r.t. the log learning rates.

  Returns the new weight trace (params-shaped, one column per block on a leading
  axis) and the new base-state trace, from ``jax.jvp`` of the step composed with
  the Hessian-vector product ``jax.jvp(jax.grad(value_fn))``, vmapped over blocks.
  """
  log_lr = state.log_learning_rate
  lr_leaves, lr_def = jax.tree.flatten(log_lr)
  k = len(lr_leaves)
  one_hot = jnp.eye(k, dtype=lr_leaves[0].dtype)
  basis = lr_def.unflatten([one_hot[:, j] for j in range(k)])

  s_leaves, s_def = jax.tree.flatten(state.base_state)
  inexact = [i for i, x in enumerate(s_leaves) if _is_inexact(x)]

  def with_inexact(values):
    leaves = list(s_leaves)
    for i, v in zip(inexact, values, strict=True):
      leaves[i] = v
    return s_def.unflatten(leaves)

  def new_weights_and_state(g, s_values, w, log_lr):
    dw, s = step(g, with_inexact(s_values), w, log_lr)
    w_leaves, w_def = jax.tree.flatten(w)
    w_new = w_def.unflatten([wi + di for wi, di in zip(w_leaves, dw, strict=True)])
    s_leaves_new = jax.tree.leaves(s)
    return w_new, tuple(s_leaves_new[i] for i in inexact)

  scale = lambda x: (gamma * x).astype(x.dtype)

  def column(x_w, x_s, e):
    x_w = jax.tree.map(scale, x_w)
    x_s = tuple(scale(x) for x in x_s)
    hx = jax.jvp(jax.grad(value_fn), (params,), (x_w,))[1]
    hx = jax.tree.map(lambda t, gi: t.astype(jnp.result_type(gi)), hx, grads)
    s_values = tuple(s_leaves[i] for i in inexact)
    _, (t_w, t_s) = jax.jvp(
        new_weights_and_state, (grads, s_values, params, log_lr), (hx, x_s, x_w, e))
    return jax.tree.map(_finite_or_zero, t_w), tuple(_finite_or_zero(t) for t in t_s)

  return jax.vmap(column)(state.trace, state.base_state_trace, basis)


def learning_rates(state: optax.OptState) -> Any:
  """The current learning rates ``alpha = exp(beta)``, by block.

  ``state`` is the state of :func:`metaoptimize` or any Optax state tree holding
  exactly one (inside ``optax.chain``, ``inject_hyperparams``, ``MultiSteps``,
  ...). Returns a 0-d array for ``blocks="scalar"``, a dict label -> 0-d array for
  label blocks (``"per_layer"``: '/'-joined paths) and a params-shaped tree for
  ``"per_leaf"`` and ``"per_weight"``.

  Raises:
    ValueError: if ``state`` holds no MetaOptimize state, or several.
  """
  found = find_state(state)
  return jax.tree.map(jnp.exp, found.log_learning_rate)


def find_state(state: optax.OptState) -> MetaOptimizeState:
  """The one :class:`MetaOptimizeState` inside an Optax state tree."""
  is_mo = lambda x: isinstance(x, MetaOptimizeState)
  found = [x for x in jax.tree.leaves(state, is_leaf=is_mo) if is_mo(x)]
  if len(found) != 1:
    raise ValueError(
        f"expected exactly one MetaOptimizeState in the optimizer state, found "
        f"{len(found)}; pass the part of the state that holds the one you want."
    )
  return found[0]
