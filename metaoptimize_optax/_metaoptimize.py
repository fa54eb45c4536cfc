"""MetaOptimize: learning rates tuned online by meta-gradient descent.

Implements Sharifnassab, Salehkaleybar & Sutton, "MetaOptimize: A Framework for
Optimizing Step Sizes and Other Meta-parameters", ICML 2025 (arXiv:2402.02342),
for any Optax base optimizer, with the paper's Hessian-free trace and a
curvature-aware trace whose Hessian-vector products come from ``jax.jvp``.

The pieces: :mod:`._validation` checks the arguments at construction,
:func:`scaled_base_step` is one base step at the learned rates, and a trace
rule of :mod:`._traces` (chosen by ``hessian``) keeps the trace and reads the
meta-gradient from it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, TypeAlias, cast

import jax
import jax.numpy as jnp
import optax

from metaoptimize_optax import _blocks, _meta_parameters, _traces, _validation
from metaoptimize_optax._meta_parameters import MetaParametersState

Hessian: TypeAlias = Literal["free", "hvp", "diagonal"]
# A block kind, a pytree of hashable labels shaped like the params (or a prefix
# of it), or a callable params -> labels.
Blocks: TypeAlias = (
  Literal["scalar", "per_layer", "per_leaf", "per_weight"] | Any | Callable[[optax.Params], Any]
)

HESSIAN_KINDS: tuple[str, ...] = tuple(_traces.RULES)


class MetaOptimizeState(NamedTuple):
  """State of the ``GradientTransformation`` returned by :func:`metaoptimize`."""

  base_state: optax.OptState  # State of the base optimizer.
  log_learning_rate: Any  # beta = log(alpha): a 0-d array, dict or tree, per block.
  meta_state: optax.OptState  # State of the meta optimizer, over log_learning_rate.
  # h = d w / d beta. "free", "diagonal": params-shaped. "hvp": one params-shaped column per
  # block, stacked on a leading axis of size num_blocks.
  trace: optax.Updates
  # "hvp" only: d s / d beta for each inexact leaf of the base state (leading
  # block axis, in the order of jax.tree.leaves); () for "free".
  base_state_trace: tuple
  count: jax.Array  # Number of updates so far (int32), the argument of a gamma schedule.
  # The learned meta-parameters beyond the learning rate; None when there are none.
  meta_parameters: MetaParametersState | None = None


def paper_lion(learning_rate: Any = 1e-3) -> optax.GradientTransformation:
  """The paper's meta optimizer: Lion with b1 0.9, b2 0.99 and no weight decay."""
  return optax.lion(learning_rate, b1=0.9, b2=0.99, weight_decay=0.0)


def _log_lr_dtype(params: optax.Params) -> Any:
  """float32, or the params' widest real dtype (complex128's is float64) when wider."""
  dtype = jnp.dtype(jnp.float32)
  for leaf in jax.tree.leaves(params):
    if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
      dtype = jnp.promote_types(dtype, jnp.finfo(jnp.result_type(leaf)).dtype)
  return dtype


def _is_zero(x: Any) -> bool:
  return isinstance(x, (int, float)) and x == 0


def _check_blocks_for(hessian: Hessian, blocks: Blocks) -> None:
  _blocks.check_blocks(blocks)
  if hessian == "hvp" and isinstance(blocks, str) and blocks == "per_weight":
    raise ValueError(
      'blocks="per_weight" cannot be used with hessian="hvp": the curvature-aware '
      "trace keeps one params-sized column per block. Use blocks='scalar', "
      "'per_layer', 'per_leaf' or a label tree with hessian='hvp', or "
      "hessian='free' with 'per_weight'."
    )


def _decay_mask(weight_decay_mask: Any, params: optax.Params | None, num_leaves: int) -> list[Any]:
  """``M_i`` for each params leaf: True, False or a boolean array (validated)."""
  if params is None:
    return [False] * num_leaves
  if weight_decay_mask is None:
    return [True] * num_leaves
  tree = weight_decay_mask(params) if callable(weight_decay_mask) else weight_decay_mask
  return _blocks.broadcast_prefix(tree, params, "weight_decay_mask")


def _decay_leaves(kappa: Any, mask: list[Any]) -> list[Any]:
  """``kappa * M_i`` for each params leaf: 0.0, ``kappa``, or ``kappa * mask`` arrays."""
  return [kappa * m if isinstance(m, jax.Array) else (kappa if m else 0.0) for m in mask]


def scaled_base_step(
  grads: optax.Updates,
  base_state: optax.OptState,
  params: optax.Params | None,
  log_lr: Any,
  phi: dict[str, jax.Array],
  *,
  base: optax.GradientTransformationExtraArgs,
  lay: _blocks.Layout,
  mask: list[Any],
  dtypes: list[Any],
  spaces: dict[str, _meta_parameters.Space],
  weight_decay: Any,
  extra_args: dict[str, Any],
) -> tuple[list[jax.Array], optax.OptState, tuple[list[jax.Array], list[Any]]]:
  """One base step at learning rates ``exp(log_lr)``: ``dw = alpha * (u - kappa M w)``.

  The learned meta-parameters ``phi`` are written into the base state (or are
  ``kappa``) first. Returns the update leaves, in ``dtypes``, the new base
  state, and the ``alpha`` and ``kappa * M`` of each leaf that the step used.
  """
  theta = _meta_parameters.values(phi, spaces)
  kappa = theta.pop(_meta_parameters.WEIGHT_DECAY, weight_decay)
  base_state = _meta_parameters.inject(base_state, theta)
  u, base_state = base.update(grads, base_state, params, **extra_args)
  if jax.tree.structure(u) != lay.treedef:
    raise ValueError(
      f"metaoptimize: the base returned updates of tree structure {jax.tree.structure(u)}, "
      f"not that of the gradients, {lay.treedef}; the base must return updates shaped like "
      "the gradients. Wrappers whose params are a container of their own (optax.lookahead's "
      "LookaheadParams) go around MetaOptimize instead: optax.lookahead(mo.adamw(...), ...)."
    )
  alpha = _blocks.leafwise(lay, jax.tree.map(jnp.exp, log_lr))
  u = lay.treedef.flatten_up_to(u)
  w = [None] * len(u) if params is None else lay.treedef.flatten_up_to(params)
  decay = _decay_leaves(kappa, mask)
  dw = [
    (a * (ui if _is_zero(d) else ui - d * wi)).astype(dt)
    for a, ui, wi, d, dt in zip(alpha, u, w, decay, dtypes, strict=True)
  ]
  return dw, base_state, (alpha, decay)


def _take_step(
  settings: _Settings,
  lay: _blocks.Layout,
  grads: optax.Updates,
  base_state: optax.OptState,
  params: optax.Params | None,
  log_lr: Any,
  phi: dict[str, jax.Array],
  mask: list[Any],
  extra_args: dict[str, Any],
) -> _traces.Step:
  """The scaled base step as the trace rules read it: its update leaves, its inputs
  and the step function itself (for rules that differentiate it, and to take it again).

  The base is traced once: the step function evaluates that trace
  (``jax.closure_convert``), however often it is taken.
  """
  traced_fn = functools.partial(
    scaled_base_step,
    base=settings.base,
    lay=lay,
    mask=mask,
    dtypes=[
      jnp.result_type(x) for x in lay.treedef.flatten_up_to(grads if params is None else params)
    ],
    spaces=settings.spaces,
    weight_decay=settings.weight_decay,
    extra_args=extra_args,
  )
  converted, consts = jax.closure_convert(traced_fn, grads, base_state, params, log_lr, phi)

  def step_fn(g, s, w, b, p):
    dw, s, _ = converted(g, s, w, b, p, *consts)
    return dw, s

  dw, _, (alpha, decay) = converted(grads, base_state, params, log_lr, phi, *consts)
  return _traces.Step(
    fn=step_fn,
    layout=lay,
    grads=grads,
    params=params,
    base_state=base_state,
    log_lr=log_lr,
    phi=phi,
    dw=dw,
    alpha=alpha,
    decay=decay,
    value_fn=extra_args.get("value_fn"),
    curvature=(
      lay.treedef.flatten_up_to(extra_args["curvature"]) if settings.hessian == "diagonal" else None
    ),
  )


def metaoptimize(
  base: optax.GradientTransformation,
  meta: optax.GradientTransformation | None = None,
  *,
  initial_learning_rate: float = 1e-6,
  weight_decay: float = 0.0,
  weight_decay_mask: Any = None,
  gamma: float | optax.Schedule = 1.0,
  blocks: Blocks = "scalar",
  hessian: Hessian = "free",
  min_learning_rate: float | None = None,
  max_learning_rate: float | None = None,
  meta_parameters: Mapping[str, _meta_parameters.Space] | None = None,
  meta_parameters_meta: optax.GradientTransformation | None = None,
  trace_dtype: Any = None,
  meta_step_first: bool = False,
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

  With ``hessian="diagonal"`` the trace keeps the diagonal of the step's
  derivative, IDBD's trace (Sutton, 1992) for any base and blocks, with no
  Hessian-vector product::

    h_i       = gamma * (1 - alpha_i * (kappa * M_i + c_i))^+ * h_i + dw_i

  where ``c`` (``curvature=`` in ``update``, shaped like the params) is the
  diagonal of the loss's Hessian or an estimate of it (``x**2`` for a linear
  learner with squared error). With ``meta_step_first=True`` the meta step is
  taken first and this step uses its rate, ``alpha = exp(beta')``, as IDBD and
  Autostep do. MetaOptimize with an SGD base, ``blocks="per_weight"``,
  ``hessian="diagonal"``, ``meta=optax.sgd(theta)``, gamma 1 and
  ``meta_step_first=True`` is IDBD on a linear learner.

  Other meta-parameters (``meta_parameters=``, section 2b of the paper's
  framework) are learned by the same meta-gradient: each hyperparameter
  ``theta`` of the step (``b1``, ``b2``, ``eps``, ``momentum``, ``decay``,
  ``weight_decay``) is kept as ``phi = log(theta)`` or ``logit(theta)``, and::

    z_phi        = <X^w, g>                                # X from before the step
    (X^w, X^s)   = jvp(step, (w, s, phi), (gamma X^w, gamma X^s, e_phi))
    phi          = clip(phi + meta.update(z_phi, meta_state_phi, phi))

  with the gradient inside the step held fixed (``"free"``) or its tangent the
  Hessian-vector product (``"hvp"``). The learning rates keep their own trace;
  ``clip`` keeps ``|phi| <= 16`` for "logit" (the value stays strictly inside
  (0, 1) in float32) and ``<= 80`` for "log".

  Args:
    base: any Optax transformation used at learning rate 1, whose updates are
      descent-signed (``optax.adam(1.0)``, a chain with clipping, a schedule that
      peaks at 1). Extra keyword arguments of ``update`` are passed on to it.
    meta: the Optax optimizer applied to the log learning rates, which it sees in
      the structure :func:`learning_rates` returns. ``None`` is the paper's Lion
      (learning rate 1e-3, b1 0.9, b2 0.99, no weight decay).
    initial_learning_rate: the starting learning rate of every block (paper:
      1e-6, one to two orders below a good fixed rate). Init-only, as Optax's
      init-only hyperparameters are: under ``optax.inject_hyperparams`` it is
      injected like any number and used by ``init``, and a later change of the
      injected value does not move the learned rate. To restart the rate on
      purpose, set it in the state:
      ``optax.tree.set(state, log_learning_rate=jax.tree.map(lambda b:
      jnp.full_like(b, jnp.log(lr)), mo.find_state(state).log_learning_rate))``.
    weight_decay: decoupled weight decay ``kappa``, scaled by the learning rate.
      Under ``optax.inject_hyperparams`` a change takes effect from the next
      step; when it is learned (``meta_parameters``) it only sets the start,
      like ``initial_learning_rate``.
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
    hessian: ``"free"`` (the paper's trace), ``"diagonal"`` (IDBD's trace; pass
      ``curvature=``, a params-shaped tree of the Hessian's diagonal, to
      ``update``) or ``"hvp"`` (curvature-aware; pass
      ``value_fn=`` to ``update``, a function ``params -> loss`` of the batch
      whose gradient is ``updates``; inside ``optax.multi_transform`` or
      ``optax.masked`` it receives the masked params, the other parts
      ``optax.MaskedNode``, and closes over those). Complex weights are pairs
      of reals, as in Optax: ``updates`` is ``conj(jax.grad(loss))`` and the
      meta-gradient is ``sum Re(h conj(g))``.
    min_learning_rate: optional lower clamp of every learning rate.
    max_learning_rate: optional upper clamp of every learning rate.
    meta_parameters: hyperparameters learned beside the learning rate, a mapping
      name -> space: ``"log"`` (the value stays > 0) or ``"logit"`` (it stays in
      (0, 1)). A name is ``"weight_decay"`` (the decay above, which then starts
      at ``weight_decay``) or a numeric hyperparameter of a base built with
      ``optax.inject_hyperparams`` (it starts at the base's value). The meta
      optimizer is applied to the dict ``{name: phi}`` with a state of its own
      (``optax.partition`` over the names gives per-name settings);
      :func:`meta_parameters` reads the values. Each costs one params-sized
      weight tangent and one tangent per inexact leaf of the base state.
    meta_parameters_meta: the meta optimizer of the ``phi``; None: ``meta``.
    trace_dtype: dtype of the weight traces ``h`` and ``X^w`` (Optax's
      ``mu_dtype`` convention), e.g. ``jnp.float32`` for bfloat16 params; None
      keeps the params' dtype.
    meta_step_first: take the meta step before the base step, which then uses
      the new rate (IDBD's order); False: the step uses the rate of before the
      meta step (the paper's Algorithm 3).

  Returns:
    An ``optax.GradientTransformationExtraArgs``. Log learning rates, learned
    ``phi`` and meta states are float32, or the params' dtype when that is
    wider; updates have the params' dtype, the traces ``trace_dtype`` or the
    params' dtype.

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

    Sutton, `Adapting Bias by Gradient Descent: An Incremental Version of
    Delta-Bar-Delta <https://cdn.aaai.org/AAAI/1992/AAAI92-027.pdf>`_, AAAI 1992.
  """
  meta = paper_lion() if meta is None else meta
  spaces = _check_arguments(
    base=base,
    meta=meta,
    initial_learning_rate=initial_learning_rate,
    weight_decay=weight_decay,
    gamma=gamma,
    blocks=blocks,
    hessian=hessian,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    meta_parameters=meta_parameters,
    meta_parameters_meta=meta_parameters_meta,
    trace_dtype=trace_dtype,
  )
  if not isinstance(meta_step_first, bool):
    raise TypeError(f"meta_step_first={meta_step_first!r} is not a bool; expected True or False.")
  settings = _Settings(
    base=optax.with_extra_args_support(base),
    meta=optax.with_extra_args_support(meta),
    meta_parameters_meta=optax.with_extra_args_support(meta_parameters_meta or meta),
    rule=_traces.RULES[hessian],
    meta_parameter_rule=_traces.META_PARAMETER_RULES[hessian],
    spaces=spaces,
    hessian=hessian,
    blocks=blocks,
    initial_learning_rate=initial_learning_rate,
    weight_decay=weight_decay,
    weight_decay_mask=weight_decay_mask,
    decays=_meta_parameters.WEIGHT_DECAY in spaces or _validation.concrete(weight_decay) != 0.0,
    gamma=gamma,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    trace_dtype=trace_dtype,
    meta_step_first=meta_step_first,
  )
  # The state is a MetaOptimizeState where Optax's protocols say OptState.
  return optax.GradientTransformationExtraArgs(
    cast(optax.TransformInitFn, functools.partial(_init, settings)),
    cast(optax.TransformUpdateExtraArgsFn, functools.partial(_update, settings)),
  )


class _Settings(NamedTuple):
  """What :func:`metaoptimize` fixes at construction, as ``init`` and ``update`` read it."""

  base: optax.GradientTransformationExtraArgs
  meta: optax.GradientTransformationExtraArgs  # Over the log learning rates.
  meta_parameters_meta: optax.GradientTransformationExtraArgs  # Over the learned phi.
  rule: _traces.TraceRule  # The learning rates' trace, by hessian.
  meta_parameter_rule: _traces.TraceRule  # The learned meta-parameters' tangents.
  spaces: dict[str, _meta_parameters.Space]
  hessian: Hessian
  blocks: Blocks
  initial_learning_rate: Any
  weight_decay: Any
  weight_decay_mask: Any
  decays: bool  # Whether any weight decay can apply (the update then needs params).
  gamma: Any
  min_learning_rate: Any
  max_learning_rate: Any
  trace_dtype: Any
  meta_step_first: bool  # The meta step before the base step (IDBD's order).


def _init(settings: _Settings, params: optax.Params) -> MetaOptimizeState:
  lay = _blocks.layout(settings.blocks, params)
  dtype = _log_lr_dtype(params)
  log_lr = _blocks.init_log_lr(
    lay, params, jnp.log(jnp.asarray(settings.initial_learning_rate, dtype)), dtype
  )
  base_state = settings.base.init(params)
  trace, base_state_trace = settings.rule.init(params, base_state, log_lr)
  _decay_mask(settings.weight_decay_mask, params, lay.treedef.num_leaves)  # Validates it.
  learned = None
  if settings.spaces:
    learned = _meta_parameters.init_state(
      settings.spaces,
      settings.weight_decay,
      params,
      base_state,
      dtype,
      settings.meta_parameter_rule,
      settings.meta_parameters_meta,
      settings.trace_dtype,
    )
  return MetaOptimizeState(
    base_state=base_state,
    log_learning_rate=log_lr,
    meta_state=settings.meta.init(log_lr),
    trace=_traces.cast(trace, settings.trace_dtype),
    base_state_trace=base_state_trace,
    count=jnp.zeros([], jnp.int32),
    meta_parameters=learned,
  )


def _update(
  settings: _Settings,
  updates: optax.Updates,
  state: MetaOptimizeState,
  params: optax.Params | None = None,
  **extra_args: Any,
) -> tuple[optax.Updates, MetaOptimizeState]:
  """One step of the update rule of :func:`metaoptimize`, in its order."""
  grads, learned = updates, state.meta_parameters
  _check_update_args(settings, grads, params, extra_args)
  _check_trace(settings.hessian, grads, state.trace)
  lay = _blocks.layout(settings.blocks, grads)
  g = lay.treedef.flatten_up_to(grads)
  phi = {} if learned is None else learned.phi
  # z_b = <h_b, g>, from the trace of before the step.
  meta_grad = settings.rule.meta_gradient(lay, state.trace, g, state.log_learning_rate)
  # beta' = beta + meta.update(z), clamped; the step uses beta, or beta' if meta_step_first.
  meta_updates, meta_state = settings.meta.update(
    meta_grad, state.meta_state, state.log_learning_rate
  )
  new_log_lr = _clip_log_lr(
    optax.apply_updates(state.log_learning_rate, meta_updates),
    settings.min_learning_rate,
    settings.max_learning_rate,
  )
  log_lr = new_log_lr if settings.meta_step_first else state.log_learning_rate
  order = _Order(meta_grad)
  old_trace, step_grads = order.after_meta_gradient((state.trace, grads))
  # The step as the traces read it: dw = alpha (u - kappa M w), from the old state.
  step = _take_step(
    settings,
    lay,
    step_grads,
    state.base_state,
    params,
    log_lr,
    phi,
    _decay_mask(settings.weight_decay_mask, params if settings.decays else None, len(g)),
    extra_args,
  )
  # h <- gamma (1 - kappa M alpha) h + dw (or the step's forward-mode derivative).
  gamma = settings.gamma(state.count) if callable(settings.gamma) else settings.gamma
  trace, base_state_trace = settings.rule.next(step, old_trace, state.base_state_trace, gamma)
  if learned is not None:  # phi <- phi + meta.update(<X^w, g>), X stepped likewise.
    learned = _meta_parameters.advance(
      learned,
      settings.spaces,
      settings.meta_parameter_rule,
      settings.meta_parameters_meta,
      order.after_trace(step, trace),
      g,
      gamma,
    )
  # The returned update: the same step, taken again once the traces have read its inputs.
  grads, base_state, params = order.after_traces(
    (grads, state.base_state, params), (trace, base_state_trace, learned)
  )
  dw, base_state = step.fn(grads, base_state, params, log_lr, phi)
  return lay.treedef.unflatten(dw), MetaOptimizeState(
    base_state=base_state,
    log_learning_rate=new_log_lr,
    meta_state=meta_state,
    trace=trace,
    base_state_trace=base_state_trace,
    count=cast(jax.Array, optax.safe_increment(state.count)),
    meta_parameters=learned,
  )


class _Order:
  """The order XLA computes one update in, for in-place buffers (see :func:`_traces.after`).

  The values are unchanged; each method returns its argument computed only once
  what it must wait for is:

  * the old trace and the gradients wait for the meta-gradient's sums (which read
    the old trace first);
  * the meta-parameters' tangent step waits for the trace, so that it shares no
    computation (a params-sized temporary) with the trace's step;
  * the returned step waits for every trace: a direction computed once for both
    the caller's params and a trace would be a params-sized temporary, and the
    moments and params could not be updated in place.
  """

  def __init__(self, meta_grad: Any):
    self._sums = [z for z in jax.tree.leaves(meta_grad) if jnp.ndim(z) == 0]

  def after_meta_gradient(self, x: Any) -> Any:  # The old trace and the gradients.
    return _traces.after(x, self._sums)

  def after_trace(self, step: _traces.Step, trace: Any) -> _traces.Step:
    grads, base_state, params = _traces.after((step.grads, step.base_state, step.params), trace)
    return step._replace(grads=grads, base_state=base_state, params=params)

  def after_traces(self, x: Any, traces: Any) -> Any:
    return _traces.after(x, traces)


def _check_arguments(
  *,
  base: Any,
  meta: Any,
  initial_learning_rate: Any,
  weight_decay: Any,
  gamma: Any,
  blocks: Any,
  hessian: Any,
  min_learning_rate: Any,
  max_learning_rate: Any,
  meta_parameters: Any,
  meta_parameters_meta: Any,
  trace_dtype: Any,
) -> dict[str, _meta_parameters.Space]:
  """Every argument check of :func:`metaoptimize`; returns the validated spaces."""
  _validation.check_transformation("base", base)
  _validation.check_transformation("meta", meta)
  if meta_parameters_meta is not None:
    _validation.check_transformation("meta_parameters_meta", meta_parameters_meta)
  _validation.check_number("weight_decay", weight_decay, "a finite number >= 0", lambda x: x >= 0)
  _validation.check_gamma(gamma)
  _validation.check_learning_rate_range(initial_learning_rate, min_learning_rate, max_learning_rate)
  _validation.check_choice("hessian", hessian, HESSIAN_KINDS)
  _check_blocks_for(hessian, blocks)
  _validation.check_float_dtype("trace_dtype", trace_dtype)
  return _meta_parameters.check_spaces(meta_parameters, weight_decay)


def _check_update_args(settings: _Settings, grads: Any, params: Any, extra_args: Any) -> None:
  hessian = settings.hessian
  if params is not None and jax.tree.structure(params) != jax.tree.structure(grads):
    raise ValueError(
      f"metaoptimize: params of tree structure {jax.tree.structure(params)} do not match "
      f"the updates' {jax.tree.structure(grads)}; MetaOptimize needs params shaped like the "
      "gradients. A base whose params are a container of its own (optax.lookahead's "
      "LookaheadParams) goes around MetaOptimize instead: optax.lookahead(mo.adamw(...), ...)."
    )
  if params is not None:
    _check_shapes("params", params, grads, jnp.shape)
  if params is None and (settings.decays or settings.spaces or hessian == "hvp"):
    raise ValueError(
      "metaoptimize: update needs params (the third argument) when weight_decay "
      "is non-zero, meta_parameters are learned or hessian='hvp'."
    )
  if hessian == "hvp" and extra_args.get("value_fn") is None:
    raise ValueError(
      "metaoptimize with hessian='hvp': update needs value_fn=, a function "
      "params -> loss on the current batch, e.g. "
      "tx.update(grads, state, params, value_fn=lambda p: loss(p, batch))."
    )
  if hessian == "diagonal":
    curvature = extra_args.get("curvature")
    if curvature is None or jax.tree.structure(curvature) != jax.tree.structure(grads):
      raise ValueError(
        "metaoptimize with hessian='diagonal': update needs curvature=, a tree shaped "
        "like the updates of the diagonal of the loss's Hessian (an estimate: x**2 for a "
        "linear learner with squared error), e.g. tx.update(grads, state, params, "
        f"curvature=c); got {curvature if curvature is None else jax.tree.structure(curvature)}."
      )
    _check_shapes("curvature", curvature, grads, jnp.shape)


def _check_trace(hessian: Hessian, grads: Any, trace: Any) -> None:
  """The updates match the params the state was initialized with (its trace)."""
  if jax.tree.structure(trace) != jax.tree.structure(grads):
    raise ValueError(
      f"metaoptimize: the updates' tree structure {jax.tree.structure(grads)} is not that "
      f"of the params the state was initialized with, {jax.tree.structure(trace)}; call "
      "init on params shaped like the updates."
    )
  # "hvp" keeps one params-shaped column per block on a leading axis.
  shape = (lambda x: x.shape[1:]) if hessian == "hvp" else (lambda x: x.shape)
  _check_shapes("params the state was initialized with", trace, grads, shape)


def _check_shapes(name: str, tree: Any, grads: Any, shape: Callable[[Any], tuple]) -> None:
  """Each leaf of ``grads`` has the shape ``shape`` gives for ``tree``'s leaf."""
  for (path, g), x in zip(jax.tree.leaves_with_path(grads), jax.tree.leaves(tree), strict=True):
    if jnp.shape(g) != shape(x):
      raise ValueError(
        f"metaoptimize: the updates' leaf {jax.tree_util.keystr(path)} has shape "
        f"{jnp.shape(g)}, but the {name} have {shape(x)} there; the updates must be "
        "shaped like them."
      )


def _clip_log_lr(log_lr: Any, min_learning_rate: Any, max_learning_rate: Any) -> Any:
  if min_learning_rate is None and max_learning_rate is None:
    return log_lr
  lo = None if min_learning_rate is None else jnp.log(min_learning_rate)
  hi = None if max_learning_rate is None else jnp.log(max_learning_rate)
  return jax.tree.map(lambda b: jnp.clip(b, lo, hi).astype(b.dtype), log_lr)


def meta_parameters(state: optax.OptState) -> dict[str, jax.Array]:
  """The current values of the learned meta-parameters, ``{name: value}``.

  ``state`` is the state of :func:`metaoptimize` or any Optax state tree holding
  exactly one; ``{}`` when nothing but the learning rate is learned.

  Example:
    >>> import jax.numpy as jnp, optax, metaoptimize_optax as mo
    >>> tx = mo.adamw(1e-3, meta_parameters={"b2": "logit", "weight_decay": "log"})
    >>> {k: round(float(v), 4) for k, v in mo.meta_parameters(tx.init(jnp.ones(3))).items()}
    {'b2': 0.999, 'weight_decay': 0.1}
  """
  learned = find_state(state).meta_parameters
  return {} if learned is None else dict(learned.value)


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
  """The one :class:`MetaOptimizeState` inside an Optax state tree.

  The leaves of a Flax ``nnx.Optimizer``'s ``opt_state`` (NNX variables) are
  unwrapped to their arrays.

  Raises:
    ValueError: if ``state`` holds no MetaOptimize state, or several.
  """
  is_mo = lambda x: isinstance(x, MetaOptimizeState)
  found = [x for x in jax.tree.leaves(state, is_leaf=is_mo) if is_mo(x)]
  if len(found) != 1:
    hint = "pass the part of the state that holds the one you want."
    if not found and any(
      map(_blocks.is_nnx_variable, jax.tree.leaves(state, is_leaf=_blocks.is_nnx_variable))
    ):
      hint = (
        "this looks like Flax NNX state, whose structure nnx.state() flattens: pass "
        "optimizer.opt_state, or nnx.as_pure(optimizer.opt_state)."
      )
    raise ValueError(
      f"expected exactly one MetaOptimizeState in the optimizer state, found {len(found)}; {hint}"
    )
  unwrap = lambda x: x.get_value() if _blocks.is_nnx_variable(x) else x
  return jax.tree.map(unwrap, found[0], is_leaf=_blocks.is_nnx_variable)
