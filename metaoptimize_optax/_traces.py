"""Trace rules: how the sensitivity of the weights to the log learning rates is kept.

A :class:`TraceRule` is the small set of pure functions one kind of trace needs,
chosen once when :func:`metaoptimize_optax.metaoptimize` is built:

* ``init(params, base_state, log_lr) -> (trace, base_state_trace)``;
* ``meta_gradient(layout, trace, grads, log_lr) -> z``, the meta-gradient
  ``z_b = <h_b, g>`` in the structure of the log learning rates, from the trace
  of before the step;
* ``next(step, trace, base_state_trace, gamma) -> (trace, base_state_trace)``,
  the trace after the step.

The learning-rate rules (:data:`RULES`): :data:`HESSIAN_FREE`, the paper's
trace ``h <- gamma (1 - kappa alpha) h + dw`` (params-shaped), :data:`DIAGONAL`,
IDBD's trace ``h <- gamma (1 - alpha (kappa + c))^+ h + dw`` with the diagonal
``c`` of the Hessian given to ``update`` (params-shaped, no Hessian-vector
product), and
:data:`CURVATURE`, the forward-mode derivative of one whole step
(Hessian-vector product included) with respect to each block's log learning
rate (one params-shaped column per block on a leading axis, and one for each
inexact leaf of the base state). The meta-parameter rules
(:data:`META_PARAMETER_RULES`) are the same forward-mode derivative with
respect to each learned meta-parameter, the gradient held fixed for
``hessian="free"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metaoptimize_optax import _blocks

# (g, base_state, w, log_lr, phi) -> (dw leaves, new base state): one base step
# at learning rates exp(log_lr) and meta-parameters phi, weight decay included.
StepFn = Callable[[Any, optax.OptState, Any, Any, Any], tuple[list[jax.Array], optax.OptState]]


class Step(NamedTuple):
  """One scaled base step, as the trace rules read it."""

  fn: StepFn  # The step itself: differentiated by some rules, taken again for the update.
  layout: _blocks.Layout  # The params' blocks.
  grads: optax.Updates  # g, the gradient the step was taken with.
  params: optax.Params | None  # w before the step.
  base_state: optax.OptState  # The base state before the step.
  log_lr: Any  # beta, in the structure of the log learning rates.
  phi: dict[str, jax.Array]  # The learned meta-parameters, unconstrained ({} if none).
  dw: list[jax.Array]  # The step's update, one leaf per params leaf.
  alpha: list[jax.Array]  # exp(beta) of each params leaf.
  decay: list[Any]  # kappa * M of each params leaf (0.0 when not decayed).
  value_fn: Callable[[optax.Params], jax.Array] | None  # params -> batch loss.
  # "diagonal": the diagonal of the loss's Hessian (an estimate), one leaf per params leaf.
  curvature: list[jax.Array] | None = None


class TraceRule(NamedTuple):
  """The pure functions of one kind of trace."""

  init: Callable[[optax.Params, optax.OptState, Any], tuple[optax.Updates, tuple]]
  meta_gradient: Callable[[_blocks.Layout, optax.Updates, Sequence[jax.Array], Any], Any]
  next: Callable[[Step, optax.Updates, tuple, Any], tuple[optax.Updates, tuple]]


def is_inexact(x: Any) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def finite_or_zero(x: jax.Array) -> jax.Array:
  return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def _dtype(coords: Any) -> Any:
  return jax.tree.leaves(coords)[0].dtype


def cast(tree: Any, dtype: Any) -> Any:
  """``tree`` with every leaf in ``dtype``; unchanged when ``dtype`` is None.

  Complex leaves take the complex dtype of ``dtype``'s width (complex64 for
  float32 or narrower, complex128 for float64), so no imaginary part is lost.
  """
  if dtype is None:
    return tree

  def one(x):
    if jnp.iscomplexobj(x):
      return x.astype(jnp.promote_types(dtype, jnp.complex64))
    return x.astype(dtype)

  return jax.tree.map(one, tree)


def real_product(x: jax.Array, g: jax.Array, dtype: Any) -> jax.Array:
  """``Re(x * conj(g))`` elementwise, in the real ``dtype``: ``x * g`` for real leaves.

  Complex weights are pairs of reals, as Optax's optimizers treat them (its
  updates are ``conj(jax.grad(loss))``), so the meta-gradient's inner product
  of a trace and a gradient is ``Re(x) Re(g) + Im(x) Im(g)``.
  """
  if jnp.iscomplexobj(x) or jnp.iscomplexobj(g):
    re = lambda v: jnp.real(v).astype(dtype)
    im = lambda v: jnp.imag(v).astype(dtype)
    return re(x) * re(g) + im(x) * im(g)
  return x.astype(dtype) * g.astype(dtype)


def after(x: Any, deps: Any) -> Any:
  """``x`` (a pytree of arrays) unchanged, but computed by XLA only once ``deps`` are.

  The bits of each floating leaf are OR-ed with a zero made from the sign bit
  of the least of 0 and the first values of the leaves of ``deps`` (shifted
  out: always exactly 0, NaN or not), which the compiler cannot prove constant
  (complex leaves: their real and imaginary parts). A data dependency where the
  program has none: XLA:CPU (no multi-output fusion, optimization barriers
  dropped) then runs the trace update after the meta-gradient has read the old
  trace, and the returned step after the traces have read the old params and
  base state, so donated buffers are updated in place instead of copied first.
  The least is taken by a sort, which XLA computes once: a chain of scalar
  operations (a sum of the first values, or of the meta-gradient's per-leaf
  sums) would be copied into the fusion of every leaf of ``x``, and the compiled
  program would grow with the square of the number of leaves (its compile time
  too: 84 s instead of 13 s for 64 leaves learning ``b2``, on 2 CPU cores).
  The values also differ from ``x`` for the compiler, so no computation on them
  is shared with one on ``x`` (a shared ``bfloat16`` -> ``float32`` conversion
  would be a params-sized temporary). Integer operations need no conversion, so
  the identity fuses into every consumer.
  """
  leaves = [d for d in jax.tree.leaves(deps) if jnp.size(d)]
  if not leaves:
    return x
  corners = [_first_value(d) for d in leaves]
  least = _first_value(jax.lax.sort(jnp.stack([*corners, jnp.zeros((), jnp.float32)])))
  bits = jax.lax.bitcast_convert_type(least, jnp.uint32)
  zero = jax.lax.shift_right_logical(
    jax.lax.shift_right_logical(bits, jnp.uint32(31)), jnp.uint32(1)
  )

  def same(v):
    if not is_inexact(v):
      return v
    if jnp.issubdtype(v.dtype, jnp.complexfloating):
      return jax.lax.complex(same(jnp.real(v)), same(jnp.imag(v)))
    uint = jnp.dtype(f"uint{8 * v.dtype.itemsize}")
    return jax.lax.bitcast_convert_type(
      jax.lax.bitcast_convert_type(v, uint) | zero.astype(uint), v.dtype
    )

  return jax.tree.map(same, x)


def _first_value(d: jax.Array) -> jax.Array:
  """The real part of ``d``'s first value, a 0-d float32 array.

  A slice (not an index, which vmap turns into a gather). A slice of one value
  along a dimension sharded over Explicit mesh axes (sharding in types, the
  default of ``jax.make_mesh``) is not defined there, so it is taken with those
  axes Auto (``jax.sharding.auto_axes``): the partitioner reads it from the
  device that holds it, and every device gets the replicated scalar.
  """
  take = lambda d: jnp.real(jax.lax.slice(d, (0,) * d.ndim, (1,) * d.ndim).reshape(()))
  axes = _explicit_axes(d)
  if axes:
    take = jax.sharding.auto_axes(take, axes=axes, out_sharding=jax.sharding.PartitionSpec())
  return take(d).astype(jnp.float32)


def _explicit_axes(d: jax.Array) -> tuple[str, ...]:
  """The Explicit mesh axes ``d`` is sharded over in its type (none on Auto axes)."""
  sharding = getattr(jax.typeof(d), "sharding", None)
  spec, mesh = getattr(sharding, "spec", None), getattr(sharding, "mesh", None)
  if not spec or mesh is None:
    return ()
  kinds = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
  entries = [e if isinstance(e, tuple) else (e,) for e in spec if e is not None]
  named = [n for entry in entries for n in entry]
  return tuple(n for n in named if kinds.get(n) == jax.sharding.AxisType.Explicit)


# ----------------------------------------------------------------------------
# Hessian-free: the paper's trace.


def _free_init(params, base_state, log_lr):
  del base_state, log_lr
  return jax.tree.map(jnp.zeros_like, params), ()


def _free_meta_gradient(lay, trace, g, log_lr):
  dtype = _dtype(log_lr)
  h = lay.treedef.flatten_up_to(trace)
  return _blocks.reduce(
    lay, [real_product(hi, gi, dtype) for hi, gi in zip(h, g, strict=True)], dtype
  )


def _free_next(step, trace, base_state_trace, gamma):
  del base_state_trace
  h = step.layout.treedef.flatten_up_to(trace)
  return step.layout.treedef.unflatten(
    [
      (gamma * (1.0 - d * a) * hi + di).astype(hi.dtype)
      for hi, di, a, d in zip(h, step.dw, step.alpha, step.decay, strict=True)
    ]
  ), ()


HESSIAN_FREE = TraceRule(init=_free_init, meta_gradient=_free_meta_gradient, next=_free_next)


# ----------------------------------------------------------------------------
# Diagonal curvature: IDBD's trace, for any base and blocks.


def _diagonal_next(step, trace, base_state_trace, gamma):
  """``h <- gamma (1 - alpha (kappa M + c))^+ h + dw``, ``c`` the Hessian's diagonal.

  The Hessian-free trace with the diagonal of the step's derivative kept: for an
  SGD base ``dw = -alpha (g + kappa M w)``, so ``d w'/d w = 1 - alpha (H + kappa M)``,
  whose diagonal is cut at zero as in IDBD's ``h (1 - alpha x^2)^+ + alpha delta x``
  (Sutton, 1992), which this is for a linear learner (``c = x^2``). No
  Hessian-vector product: ``c`` is given to ``update`` as ``curvature=``.
  """
  del base_state_trace
  h = step.layout.treedef.flatten_up_to(trace)
  factors = [
    jnp.maximum(1.0 - a * (d + c), 0.0)
    for a, d, c in zip(step.alpha, step.decay, step.curvature, strict=True)
  ]
  return step.layout.treedef.unflatten(
    [(gamma * f * hi + di).astype(hi.dtype) for hi, di, f in zip(h, step.dw, factors, strict=True)]
  ), ()


DIAGONAL = TraceRule(init=_free_init, meta_gradient=_free_meta_gradient, next=_diagonal_next)


# ----------------------------------------------------------------------------
# Forward mode: jax.jvp of the whole step, one column per coordinate.


def _columns_init(params, base_state, coords):
  k = len(jax.tree.leaves(coords))
  # Zeros like x (its sharding too, when that is in its type), k times.
  column = lambda x: jnp.broadcast_to(jnp.zeros_like(x)[None], (k, *jnp.shape(x)))
  trace = jax.tree.map(column, params)
  return trace, tuple(column(x) for x in jax.tree.leaves(base_state) if is_inexact(x))


def _columns_meta_gradient(lay, trace, g, coords):
  """``z_j = <X^w_j, g>`` summed over all weights (curvature couples blocks)."""
  dtype = _dtype(coords)
  columns = lay.treedef.flatten_up_to(trace)
  per_column = functools.reduce(
    jnp.add,
    [
      jnp.sum(real_product(x, gi, dtype), axis=tuple(range(1, x.ndim)))
      for x, gi in zip(columns, g, strict=True)
    ],
  )
  leaves, treedef = jax.tree.flatten(coords)
  return treedef.unflatten([per_column[j] for j in range(len(leaves))])


def _as_gradient_tangent(t: jax.Array, g: jax.Array) -> jax.Array:
  """The tangent of ``jax.grad(value_fn)`` as the tangent of ``g``, in ``g``'s dtype.

  For complex weights the updates are ``conj(jax.grad(value_fn))`` (Optax's
  convention), so their tangent is the conjugate.
  """
  return (jnp.conj(t) if jnp.iscomplexobj(t) else t).astype(jnp.result_type(g))


def _jvp_next(step, trace, base_state_trace, gamma, *, wrt, hvp):
  """Forward-mode derivative of one step w.r.t. each coordinate of ``wrt``.

  ``wrt`` is ``"log_lr"`` (the log learning rates) or ``"phi"`` (the learned
  meta-parameters). The weights and the inexact leaves of the base state carry
  their tangents ``gamma X``; the gradient's tangent is the Hessian-vector
  product ``jax.jvp(jax.grad(value_fn))`` when ``hvp``, and zero (the gradient
  held fixed) otherwise. Vmapped over the coordinates. Tangents that come out
  non-finite (``sqrt`` of a zero second moment in Adam-like bases, where the
  true contribution is zero) are set to zero.
  """
  coords = step.log_lr if wrt == "log_lr" else step.phi
  leaves, treedef = jax.tree.flatten(coords)
  k = len(leaves)
  one_hot = jnp.eye(k, dtype=leaves[0].dtype)
  basis = treedef.unflatten([one_hot[:, j] for j in range(k)])

  s_leaves, s_def = jax.tree.flatten(step.base_state)
  inexact = [i for i, x in enumerate(s_leaves) if is_inexact(x)]
  s_values = tuple(s_leaves[i] for i in inexact)

  def with_inexact(values):
    leaves = list(s_leaves)
    for i, v in zip(inexact, values, strict=True):
      leaves[i] = v
    return s_def.unflatten(leaves)

  def new_weights_and_state(g, w, coords, s_values):
    log_lr, phi = (coords, step.phi) if wrt == "log_lr" else (step.log_lr, coords)
    dw, s = step.fn(g, with_inexact(s_values), w, log_lr, phi)
    w_leaves, w_def = jax.tree.flatten(w)
    w_new = w_def.unflatten([wi + di for wi, di in zip(w_leaves, dw, strict=True)])
    s_leaves_new = jax.tree.leaves(s)
    return w_new, tuple(s_leaves_new[i] for i in inexact)

  # Tangents in the dtype of their primals (the trace may be kept wider).
  scale = lambda x, like: (gamma * x).astype(jnp.result_type(like))

  def column(x_w, x_s, e):
    trace_dtypes = jax.tree.map(lambda x: x.dtype, x_w)
    x_w = jax.tree.map(scale, x_w, step.params)
    x_s = tuple(scale(x, x) for x in x_s)
    if hvp:
      hx = jax.jvp(jax.grad(step.value_fn), (step.params,), (x_w,))[1]
      hx = jax.tree.map(_as_gradient_tangent, hx, step.grads)
      primals, tangents = (step.grads, step.params, coords, s_values), (hx, x_w, e, x_s)
      fn = new_weights_and_state
    else:
      primals, tangents = (step.params, coords, s_values), (x_w, e, x_s)
      fn = functools.partial(new_weights_and_state, step.grads)
    _, (t_w, _) = jax.jvp(fn, primals, tangents)
    t_w = jax.tree.map(lambda t, dt: finite_or_zero(t).astype(dt), t_w, trace_dtypes)
    # The state's tangents are taken again once the weights' tangent has read
    # the old ones, so each is updated in place (see after).
    *rest, x_s = tangents
    _, (_, t_s) = jax.jvp(fn, primals, (*rest, after(x_s, t_w)))
    return t_w, tuple(finite_or_zero(t) for t in t_s)

  return jax.vmap(column)(trace, base_state_trace, basis)


def _forward_rule(wrt: str, hvp: bool) -> TraceRule:
  return TraceRule(
    init=_columns_init,
    meta_gradient=_columns_meta_gradient,
    next=functools.partial(_jvp_next, wrt=wrt, hvp=hvp),
  )


# The curvature-aware learning-rate trace: one column per block.
CURVATURE = _forward_rule("log_lr", hvp=True)

# The learning-rate trace, by ``hessian``.
RULES = {"free": HESSIAN_FREE, "hvp": CURVATURE, "diagonal": DIAGONAL}

# The meta-parameter tangents, by ``hessian``: one column per learned name.
META_PARAMETER_RULES = {
  "free": _forward_rule("phi", hvp=False),
  "hvp": _forward_rule("phi", hvp=True),
  "diagonal": _forward_rule("phi", hvp=False),  # The meta-parameters' tangents: as "free".
}
