"""Optimizers: registry names and parameters to Optax transformations.

An experiment config names each optimizer by a registry name and its keyword
parameters::

  optimizers:
    MetaOptimize: {name: metaoptimize, base: adamw, meta: lion, initial_learning_rate: 1.0e-4}
    AdamW (tuned): {name: adamw, grid: {learning_rate: [1.0e-3, 3.0e-3]}}

:func:`build_optimizer` turns one such entry into a :class:`BuiltOptimizer`: the
Optax transformation plus what the runner needs to drive and log it (whether
``update`` wants ``value_fn``, the point at which to evaluate, the learning
rates to log). Every builder takes the run length ``steps`` first, for
schedules, and keyword-only parameters after it.

Names:

* ``metaoptimize``: MetaOptimize around any preset base (``base``: ``adamw``,
  ``lion``, ``sgdm``, ``rmsprop``, ``sgd``) or any Optax alias as the base
  (``base: adafactor`` is ``optax.adafactor(learning_rate=1.0, **base_options)``,
  with ``mo.metaoptimize``'s defaults: initial rate 1e-6, no weight decay), any
  meta optimizer (``meta``:
  ``lion``, ``adam``, an Optax alias name or ``{name: <alias>, <its arguments>}``, whose
  ``learning_rate`` may be an Optax schedule ``{name: <optax schedule>, <its arguments>}``),
  any blocks (a kind, or a mapping path prefix -> label, see
  :func:`prefix_blocks`), ``hessian="free"|"hvp"|"diagonal"`` (the diagonal's curvature
  the Gauss-Newton ``g^2 / (2 L)`` of the batch loss), any ``gamma``; the preset's
  own parameters (``b1``, ``momentum``, ...) pass through.
* ``recommended``: ``mo.recommended`` (AdamW base, Adam meta, gamma and meta
  learning rate derived from the run length ``steps``); ``horizon: false`` calls
  ``mo.recommended()`` without ``total_steps``, the call for a stream (no end).
* ``hypergradient``: the same with ``gamma`` fixed at 0 (the trace is the last
  update alone), i.e. hypergradient descent on the log learning rate. Its meta
  optimizer defaults to the paper's Lion, so that against ``metaoptimize`` only
  ``gamma`` differs; ``meta: sgd`` gives the classic additive rule.
* ``adamw``, ``adamw_cosine`` (linear warm-up, cosine decay), ``adamw_linear``
  (linear decay to the end, PPO's anneal), ``sgdm`` (fixed
  rate; ``momentum: 0`` is plain SGD), ``sgdm_cosine``, ``lion``: the hand-tuned
  peers.
* ``prodigy``, ``mechanic`` (``optax.contrib.mechanize`` around Adam), ``dog``,
  ``schedule_free_adamw`` (evaluated at its averaged point through
  ``optax.contrib.schedule_free_eval_params``), ``dadapt_adamw``, ``cocob``
  (``optax.contrib.cocob``), ``dowg`` (``optax.contrib.dowg``), ``momo_adam``
  (``optax.contrib.momo_adam``, handed the batch loss as ``value=``): the
  learning-rate-free peers, at their documented defaults.
* ``idbd``, ``autostep`` (:mod:`.ancestors`, written from Sutton 1992 and Mahmood et
  al. 2012; ``update`` takes the batch loss as ``value=`` for the Gauss-Newton
  curvature ``g^2 / (2 L)``): MetaOptimize's per-weight ancestors;
  ``idbd_metaoptimize`` is IDBD as MetaOptimize (SGD base, ``blocks="per_weight"``,
  ``hessian="diagonal"``, SGD meta, ``meta_step_first=True``), the same numbers.
* ``optax.<alias>`` (``optax.adafactor``, ``optax.contrib.cocob``, ...): any Optax
  optimizer as a peer, called with the entry's parameters as its own keyword
  arguments (``{name: optax.adafactor, learning_rate: 1.0e-2}``).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import metaoptimize_optax as mo
from metaoptimize_optax import _validation
from metaoptimize_optax.experiments import ancestors

Params = Any
OptState = Any


class OptimizerError(ValueError):
  """An unknown optimizer name, an unknown parameter or a bad parameter value."""


class BuiltOptimizer(NamedTuple):
  """An Optax transformation and what a training loop needs to know about it."""

  tx: optax.GradientTransformationExtraArgs
  # Whether ``tx.update`` needs ``value_fn=`` (MetaOptimize with hessian="hvp").
  needs_value_fn: bool = False
  # Whether ``tx.update`` needs ``value=``, the loss of the batch at ``params``
  # (MoMo's Polyak step).
  needs_value: bool = False
  # ``(opt_state, params) -> params`` to evaluate at, when not the params themselves.
  eval_params: Callable[[OptState, Params], Params] | None = None
  # ``(opt_state, step) -> {block: 0-d array}``: the learning rates in effect at
  # ``step`` (traceable; the state is the one before the step).
  logged_rates: Callable[[OptState, jax.Array], dict[str, jax.Array]] | None = None
  # Whether ``tx`` is a MetaOptimize transformation (its rates are learned).
  is_metaoptimize: bool = False
  # ``opt_state -> {name: 0-d array}``: the meta-parameters learned beside the
  # learning rate (``mo.meta_parameters``), logged like the rates; None: none.
  meta_parameters: Callable[[OptState], dict[str, jax.Array]] | None = None
  # ``(opt_state, step) -> {group: {name: 0-d array}}``: any other per-step values
  # of the optimizer to log (each group becomes a key of the training records).
  logged_values: Callable[[OptState, jax.Array], dict[str, dict[str, jax.Array]]] | None = None

  def update(
    self,
    grads: optax.Updates,
    opt_state: OptState,
    params: Params,
    *,
    value_fn: Callable[[Params], jax.Array],
    value: jax.Array,
  ) -> tuple[optax.Updates, OptState]:
    """``tx.update``, handed the extra arguments this optimizer needs: ``value_fn=``
    (``params -> batch loss``) and ``value=`` (the batch loss at ``params``)."""
    extra: dict[str, Any] = {}
    if self.needs_value_fn:
      extra["value_fn"] = value_fn
    if self.needs_value:
      extra["value"] = value
    return self.tx.update(grads, opt_state, params, **extra)

  def per_step_values(self, opt_state: OptState, step: jax.Array) -> dict[str, dict]:
    """Every optimizer-side value logged at ``step`` (traceable), by record key: the
    learning rates (always), the learned meta-parameters and the ``logged_values``."""
    values = {"learning_rate": self.logged_rates(opt_state, step) if self.logged_rates else {}}
    if self.meta_parameters is not None:
      values["meta_parameters"] = self.meta_parameters(opt_state)
    if self.logged_values is not None:
      values.update(self.logged_values(opt_state, step))
    return values


class OptimizerSpec(NamedTuple):
  """One registry entry."""

  build: Callable[..., BuiltOptimizer]  # build(steps, **params) -> BuiltOptimizer.
  description: str
  # ``params -> names``: the parameters accepted given the others (the
  # MetaOptimize entries accept their base's own); None: ``build``'s signature.
  parameters: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None


# ----------------------------------------------------------------------------
# Learning rates to log.


def _constant_rate(learning_rate: float):
  return lambda state, step: {"all": jnp.asarray(learning_rate, jnp.float32)}


def _schedule_rate(schedule: optax.Schedule):
  return lambda state, step: {"all": jnp.asarray(schedule(step), jnp.float32)}


def _path_name(path: tuple[Any, ...]) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/") or "all"


def metaoptimize_rates(state: OptState, step: jax.Array | None = None) -> dict[str, jax.Array]:
  """Every block's learning rate, by name, from a state holding one MetaOptimize state.

  ``blocks="scalar"`` gives ``{"all": alpha}``; label blocks give their labels
  (``"per_layer"``: '/'-joined paths, ``""`` for leaves under the root, as
  ``mo.learning_rates`` labels them);
  ``"per_leaf"`` gives each leaf's path, and ``"per_weight"`` the geometric mean
  of each leaf's rates under its path.
  """
  del step
  log_lr = mo.find_state(state).log_learning_rate
  if isinstance(log_lr, dict) and all(
    isinstance(v, jax.Array) and v.ndim == 0 for v in log_lr.values()
  ):
    return {str(k): jnp.exp(v).astype(jnp.float32) for k, v in log_lr.items()}
  return _rates_by_leaf(log_lr)


def _rates_by_leaf(log_lr: Any) -> dict[str, jax.Array]:
  """Each leaf's path -> the geometric mean of its rates (``log_lr``: their logs)."""
  leaves = jax.tree_util.tree_leaves_with_path(log_lr)
  return {_path_name(path): jnp.exp(jnp.mean(v)).astype(jnp.float32) for path, v in leaves}


# ----------------------------------------------------------------------------
# MetaOptimize.

_PRESETS: Mapping[str, Callable[..., optax.GradientTransformationExtraArgs]] = (
  types.MappingProxyType(
    {
      "adamw": mo.adamw,
      "lion": mo.lion,
      "sgdm": mo.sgdm,
      "rmsprop": mo.rmsprop,
      "sgd": mo.sgd,
    }
  )
)
# Arguments of mo.metaoptimize that a YAML config can give (a preset forwards them).
_METAOPTIMIZE_OPTIONS = (
  "gamma",
  "blocks",
  "min_learning_rate",
  "max_learning_rate",
  "meta_parameters",
  "trace_dtype",
)


def _metaoptimize_optimizer(tx, hessian: str, meta_parameters: Any) -> BuiltOptimizer:
  """The BuiltOptimizer of a MetaOptimize transformation: rates and meta-parameters logged.

  With ``hessian="diagonal"`` the curvature is the Gauss-Newton diagonal of the batch loss,
  ``g^2 / (2 L)`` (:func:`.ancestors.gauss_newton_diagonal`; IDBD's ``x^2`` for one example
  of a linear learner), computed from the gradient and the loss the runner passes."""
  needs_value = False
  if hessian == "diagonal":
    inner, needs_value = tx, True

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
      curvature = ancestors.gauss_newton_diagonal(updates, value)
      return inner.update(updates, state, params, curvature=curvature, **extra_args)

    tx = optax.GradientTransformationExtraArgs(inner.init, update_fn)
  return BuiltOptimizer(
    tx,
    needs_value_fn=hessian == "hvp",
    needs_value=needs_value,
    logged_rates=metaoptimize_rates,
    is_metaoptimize=True,
    meta_parameters=mo.meta_parameters if meta_parameters else None,
  )


def _meta(meta: Any, meta_learning_rate: float | None) -> tuple[Any, float | None]:
  """``meta`` and ``meta_learning_rate`` as the presets take them."""
  if isinstance(meta, str) and meta in mo.META_CHOICES:
    return meta, meta_learning_rate
  if isinstance(meta, str):
    meta = {"name": meta}
  if not isinstance(meta, Mapping) or "name" not in meta:
    raise OptimizerError(
      f"meta={meta!r}: expected one of {mo.META_CHOICES}, an Optax alias name or a "
      "mapping {name: <alias>, learning_rate: ..., ...}."
    )
  kwargs = dict(meta)
  name = kwargs.pop("name")
  if not isinstance(name, str):
    raise OptimizerError(f"meta: name must be an Optax alias name, got {name!r}.")
  alias = _optax_function(
    name.removeprefix(OPTAX_PREFIX),
    "meta optimizer",
  )
  kwargs.setdefault("learning_rate", 1e-3 if meta_learning_rate is None else meta_learning_rate)
  if isinstance(kwargs["learning_rate"], Mapping):
    kwargs["learning_rate"] = _schedule(kwargs["learning_rate"], "meta: learning_rate")
  return alias(**kwargs), None


def _schedule(spec: Mapping[str, Any], role: str) -> optax.Schedule:
  """``{name: <optax schedule>, <its arguments>}`` as ``optax.<name>(**arguments)``."""
  kwargs = dict(spec)
  name = kwargs.pop("name", None)
  fn = getattr(optax, name, None) if isinstance(name, str) and name.endswith("_schedule") else None
  if not callable(fn):
    raise OptimizerError(
      f"{role}: name={name!r} is not an Optax schedule; name a function of optax that ends "
      "in _schedule, e.g. {name: cosine_decay_schedule, init_value: 0.3, decay_steps: 1000}."
    )
  try:
    return fn(**kwargs)
  except TypeError as error:
    raise OptimizerError(f"{role}: optax.{name}: {error}") from None


def prefix_blocks(prefixes: Mapping[str, str]) -> Callable[[Params], Any]:
  """Blocks from a mapping '/'-joined path prefix -> label (longest prefix wins).

  For example ``{"stem": "stem", "blocks/0": "stage1", "head": "head"}``; a
  leaf no prefix matches is an error. The form a YAML config gives label blocks in.
  """
  items = sorted(
    ((str(k).strip("/"), str(v)) for k, v in prefixes.items()), key=lambda kv: -len(kv[0])
  )

  def label(path, _):
    name = _path_name(path)
    for prefix, value in items:
      if name == prefix or name.startswith(prefix + "/"):
        return value
    raise ValueError(f"blocks: no prefix in {sorted(prefixes)} matches the parameter {name!r}.")

  return lambda params: jax.tree_util.tree_map_with_path(label, params)


def _metaoptimize(
  steps: int,
  *,
  base: str = "adamw",
  meta: Any = "lion",
  meta_learning_rate: float | None = None,
  hessian: str = "free",
  **options: Any,
) -> BuiltOptimizer:
  """MetaOptimize around the preset ``base``, or around any Optax alias ``base`` at learning
  rate 1 (``optax.<base>(learning_rate=1.0, **base_options)``; see :mod:`metaoptimize_optax`)."""
  del steps
  meta, meta_learning_rate = _meta(meta, meta_learning_rate)
  if isinstance(options.get("blocks"), Mapping):
    options["blocks"] = prefix_blocks(options["blocks"])
  if base in _PRESETS:
    tx = _PRESETS[base](
      meta=meta, meta_learning_rate=meta_learning_rate, hessian=hessian, **options
    )
  else:
    base_tx = _alias_base(base, options.pop("base_options", None), options.get("meta_parameters"))
    tx = mo.metaoptimize(
      base_tx, mo.meta_optimizer(meta, meta_learning_rate), hessian=hessian, **options
    )
  return _metaoptimize_optimizer(tx, hessian, options.get("meta_parameters"))


def _hypergradient(steps: int, **params: Any) -> BuiltOptimizer:
  """Hypergradient descent: MetaOptimize with gamma 0."""
  return _metaoptimize(steps, gamma=0.0, **params)


def _recommended(
  steps: int,
  *,
  initial_learning_rate: float = 1e-4,
  hessian: str = "free",
  horizon: bool = True,
  **options: Any,
) -> BuiltOptimizer:
  """The recommended MetaOptimize (``mo.recommended``), told the run length.

  ``horizon=False`` calls ``mo.recommended()`` without ``total_steps``: the call
  for a stream, which has no end (``steps`` is then only the budget of the run).
  """
  if not isinstance(horizon, bool):
    raise OptimizerError(f"horizon must be true or false, got {horizon!r}.")
  if isinstance(options.get("blocks"), Mapping):
    options["blocks"] = prefix_blocks(options["blocks"])
  total_steps = {"total_steps": steps} if horizon else {}
  tx = mo.recommended(initial_learning_rate, hessian=hessian, **total_steps, **options)
  return _metaoptimize_optimizer(tx, hessian, options.get("meta_parameters"))


def _recommended_parameters(params: Mapping[str, Any]) -> tuple[str, ...]:
  """``mo.recommended``'s own (the run length comes from the config's steps, a mask
  only from Python), and ``horizon``."""
  del params
  own = [n for n in _keyword_names(mo.recommended) if n not in ("total_steps", "weight_decay_mask")]
  return (*own, "horizon")


def _metaoptimize_parameters(params: Mapping[str, Any], fixed: tuple[str, ...] = ()):
  base = params.get("base", "adamw")
  if isinstance(base, str) and base not in _PRESETS:  # An Optax alias as the base.
    names = ["base", "base_options", "meta", "meta_learning_rate", "hessian"]
    names += ["initial_learning_rate", "weight_decay", *_METAOPTIMIZE_OPTIONS]
    return tuple(n for n in names if n not in fixed)
  preset = _PRESETS.get(base, mo.adamw)
  own = [
    p.name
    for p in inspect.signature(preset).parameters.values()
    if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in ("meta", "meta_learning_rate")
  ]
  names = ["base", "meta", "meta_learning_rate", "hessian", *own, *_METAOPTIMIZE_OPTIONS]
  return tuple(n for n in dict.fromkeys(names) if n not in fixed)


# ----------------------------------------------------------------------------
# Peers.


def _warmup(steps: int, warmup_steps: int | None) -> int:
  return round(0.05 * steps) if warmup_steps is None else int(warmup_steps)


def _warmup_cosine(steps: int, peak: float, warmup_steps: int, end: float) -> optax.Schedule:
  if warmup_steps <= 0:
    return optax.cosine_decay_schedule(peak, max(steps, 1), alpha=end / peak if peak else 0.0)
  return optax.warmup_cosine_decay_schedule(
    0.0, peak, warmup_steps, max(steps, warmup_steps + 1), end_value=end
  )


def _clipped(tx: optax.GradientTransformation, clip_norm: float | None):
  """``tx`` after clipping the gradients' global norm to ``clip_norm`` (None: no clipping)."""
  if clip_norm is None:
    return tx
  return optax.chain(optax.clip_by_global_norm(clip_norm), tx)


def _adamw(
  steps: int,
  *,
  learning_rate: float = 1e-3,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.1,
  clip_norm: float | None = None,
) -> BuiltOptimizer:
  """AdamW at a fixed learning rate (optionally after global-norm gradient clipping)."""
  del steps
  tx = optax.adamw(learning_rate, b1, b2, eps, weight_decay=weight_decay)
  return BuiltOptimizer(_clipped(tx, clip_norm), logged_rates=_constant_rate(learning_rate))


def _adamw_cosine(
  steps: int,
  *,
  learning_rate: float = 1e-3,
  warmup_steps: int | None = None,
  end_learning_rate: float = 0.0,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.1,
  clip_norm: float | None = None,
) -> BuiltOptimizer:
  """AdamW with linear warm-up (default 5% of the run) and cosine decay to the end."""
  schedule = _warmup_cosine(steps, learning_rate, _warmup(steps, warmup_steps), end_learning_rate)
  tx = optax.adamw(schedule, b1, b2, eps, weight_decay=weight_decay)
  return BuiltOptimizer(_clipped(tx, clip_norm), logged_rates=_schedule_rate(schedule))


def _adamw_linear(
  steps: int,
  *,
  learning_rate: float = 1e-3,
  end_learning_rate: float = 0.0,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.1,
  clip_norm: float | None = None,
) -> BuiltOptimizer:
  """AdamW with the rate decayed linearly to ``end_learning_rate`` over the run (PPO's
  anneal, as in PureJaxRL's ``ANNEAL_LR``)."""
  schedule = optax.linear_schedule(learning_rate, end_learning_rate, max(steps, 1))
  tx = optax.adamw(schedule, b1, b2, eps, weight_decay=weight_decay)
  return BuiltOptimizer(_clipped(tx, clip_norm), logged_rates=_schedule_rate(schedule))


def _sgdm(
  steps: int,
  *,
  learning_rate: float = 1e-2,
  momentum: float = 0.9,
  nesterov: bool = False,
  weight_decay: float = 0.0,
) -> BuiltOptimizer:
  """SGD at a fixed learning rate, with momentum (0: plain SGD) and L2 weight decay."""
  del steps
  tx = optax.chain(
    optax.add_decayed_weights(weight_decay),
    optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov),
  )
  return BuiltOptimizer(tx, logged_rates=_constant_rate(learning_rate))


def _sgdm_cosine(
  steps: int,
  *,
  learning_rate: float = 0.1,
  momentum: float = 0.9,
  nesterov: bool = False,
  warmup_steps: int = 0,
  end_learning_rate: float = 0.0,
  weight_decay: float = 5e-4,
) -> BuiltOptimizer:
  """SGD with momentum, L2 weight decay (coupled, as in PyTorch) and cosine decay."""
  schedule = _warmup_cosine(steps, learning_rate, warmup_steps, end_learning_rate)
  tx = optax.chain(
    optax.add_decayed_weights(weight_decay),
    optax.sgd(schedule, momentum=momentum, nesterov=nesterov),
  )
  return BuiltOptimizer(tx, logged_rates=_schedule_rate(schedule))


def _lion(
  steps: int,
  *,
  learning_rate: float = 1e-4,
  b1: float = 0.9,
  b2: float = 0.99,
  weight_decay: float = 0.1,
) -> BuiltOptimizer:
  """Lion at a fixed learning rate."""
  del steps
  return BuiltOptimizer(
    optax.lion(learning_rate, b1, b2, weight_decay=weight_decay),
    logged_rates=_constant_rate(learning_rate),
  )


def _estimate_rate(learning_rate: float):
  """Prodigy's and D-Adaptation's learning rate: ``learning_rate * d``."""
  return lambda state, step: {
    "all": (learning_rate * optax.tree.get(state, "estim_lr")).astype(jnp.float32)
  }


def _prodigy(
  steps: int,
  *,
  learning_rate: float = 1.0,
  b1: float = 0.9,
  b2: float = 0.999,
  beta3: float | None = None,
  eps: float = 1e-8,
  estim_lr0: float = 1e-6,
  estim_lr_coef: float = 1.0,
  weight_decay: float = 0.0,
  safeguard_warmup: bool = False,
) -> BuiltOptimizer:
  """Prodigy (``optax.contrib.prodigy``)."""
  del steps
  tx = optax.contrib.prodigy(
    learning_rate, (b1, b2), beta3, eps, estim_lr0, estim_lr_coef, weight_decay, safeguard_warmup
  )
  return BuiltOptimizer(tx, logged_rates=_estimate_rate(learning_rate))


def _dadapt_adamw(
  steps: int,
  *,
  learning_rate: float = 1.0,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  estim_lr0: float = 1e-6,
  weight_decay: float = 0.0,
) -> BuiltOptimizer:
  """D-Adaptation AdamW (``optax.contrib.dadapt_adamw``)."""
  del steps
  tx = optax.contrib.dadapt_adamw(learning_rate, (b1, b2), eps, estim_lr0, weight_decay)
  return BuiltOptimizer(tx, logged_rates=_estimate_rate(learning_rate))


def _mechanic(
  steps: int,
  *,
  learning_rate: float = 1.0,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 1e-2,
  s_init: float = 1e-6,
  num_betas: int = 6,
) -> BuiltOptimizer:
  """Mechanic (``optax.contrib.mechanize``) around ``optax.adam(learning_rate)``."""
  del steps
  tx = optax.contrib.mechanize(
    optax.adam(learning_rate, b1, b2, eps),
    weight_decay=weight_decay,
    s_init=s_init,
    num_betas=num_betas,
  )
  rates = lambda state, step: {
    "all": (learning_rate * jnp.sum(optax.tree.get(state, "s"))).astype(jnp.float32)
  }
  return BuiltOptimizer(tx, logged_rates=rates)


def _dog(
  steps: int,
  *,
  learning_rate: float = 1.0,
  reps_rel: float = 1e-6,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
) -> BuiltOptimizer:
  """DoG (``optax.contrib.dog``), first step ``reps_rel * (1 + |x0|)`` (the paper's heuristic)."""
  del steps
  tx = optax.contrib.dog(
    learning_rate, ("heuristic", reps_rel), eps, weight_decay=weight_decay or None
  )

  def rates(state, step):
    del step
    s = next(x for x in jax.tree.leaves(state, is_leaf=_is_dog) if _is_dog(x))
    # The rate of the last step (r_bar / sqrt(sum |g|^2)); 0 before the first step.
    rate = s.max_dist / jnp.sqrt(s.sum_sq_norm_grads + eps)
    return {"all": (learning_rate * jnp.where(s.is_init_step, 0.0, rate)).astype(jnp.float32)}

  return BuiltOptimizer(tx, logged_rates=rates)


def _is_dog(x: Any) -> bool:
  return isinstance(x, optax.contrib.DoGState)


def _cocob(
  steps: int,
  *,
  learning_rate: float = 1.0,
  alpha: float = 100.0,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
) -> BuiltOptimizer:
  """COCOB-Backprop (``optax.contrib.cocob``; Orabona & Tommasi, 2017), coin betting.

  No step size: ``learning_rate`` only scales the bet (1 by default); the logged
  rate is that scale.
  """
  del steps
  tx = optax.contrib.cocob(learning_rate, alpha, eps, weight_decay)
  return BuiltOptimizer(tx, logged_rates=_constant_rate(learning_rate))


def _dowg(
  steps: int,
  *,
  learning_rate: float = 1.0,
  init_estim_sq_dist: float | None = None,
  eps: float = 1e-4,
  weight_decay: float = 0.0,
) -> BuiltOptimizer:
  """DoWG (``optax.contrib.dowg``; Khaled, Mishchenko & Jin, 2023), distance over weighted
  gradients.

  The logged rate is that of the last step, ``r^2 / sqrt(sum_t r_t^2 |g_t|^2)``.
  """
  del steps
  tx = optax.contrib.dowg(learning_rate, init_estim_sq_dist, eps, weight_decay=weight_decay or None)

  def rates(state, step):
    del step
    s = next(x for x in jax.tree.leaves(state, is_leaf=_is_dowg) if _is_dowg(x))
    rate = s.estim_sq_dist / (jnp.sqrt(s.weighted_sq_norm_grads) + eps)
    return {"all": (learning_rate * rate).astype(jnp.float32)}

  return BuiltOptimizer(tx, logged_rates=rates)


def _is_dowg(x: Any) -> bool:
  return isinstance(x, optax.contrib.DoWGState)


def _momo_adam(
  steps: int,
  *,
  learning_rate: float = 1e-2,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  lower_bound: float = 0.0,
  weight_decay: float = 0.0,
  adapt_lower_bound: bool = False,
) -> BuiltOptimizer:
  """MoMo-Adam (``optax.contrib.momo_adam``; Schaipp et al., 2023): Adam with a Polyak step
  ``min(learning_rate, (f - lower_bound) / ...)``; ``update`` takes the batch loss as
  ``value=``. The logged rate is the cap ``learning_rate``.
  """
  del steps
  tx = optax.contrib.momo_adam(
    learning_rate, b1, b2, eps, lower_bound, weight_decay, adapt_lower_bound
  )
  return BuiltOptimizer(tx, needs_value=True, logged_rates=_constant_rate(learning_rate))


def _schedule_free_adamw(
  steps: int,
  *,
  learning_rate: float = 2.5e-3,
  warmup_steps: int | None = None,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  weight_lr_power: float = 2.0,
) -> BuiltOptimizer:
  """Schedule-free AdamW, evaluated at its averaged point ``x``."""
  warmup = _warmup(steps, warmup_steps)
  tx = optax.contrib.schedule_free_adamw(
    learning_rate, warmup or None, b1, b2, eps, weight_decay, weight_lr_power
  )
  schedule = (
    optax.linear_schedule(0.0, learning_rate, warmup)
    if warmup
    else optax.constant_schedule(learning_rate)
  )
  return BuiltOptimizer(
    tx, eval_params=optax.contrib.schedule_free_eval_params, logged_rates=_schedule_rate(schedule)
  )


# ----------------------------------------------------------------------------
# The ancestors: one step size per weight.


def _idbd(
  steps: int, *, initial_learning_rate: float = 0.05, meta_learning_rate: float = 0.01
) -> BuiltOptimizer:
  """IDBD (:func:`.ancestors.idbd`), its curvature the Gauss-Newton diagonal of the batch loss."""
  del steps
  tx = ancestors.idbd(initial_learning_rate, meta_learning_rate)
  rates = lambda state, step: _rates_by_leaf(state.log_learning_rate)
  return BuiltOptimizer(tx, needs_value=True, logged_rates=rates)


def _autostep(
  steps: int,
  *,
  initial_learning_rate: float = 0.05,
  meta_learning_rate: float = 0.01,
  tau: float = 1e4,
) -> BuiltOptimizer:
  """Autostep (:func:`.ancestors.autostep`), at the paper's mu 1e-2 and tau 1e4 by default."""
  del steps
  tx = ancestors.autostep(initial_learning_rate, meta_learning_rate, tau)
  rates = lambda state, step: _rates_by_leaf(jax.tree.map(jnp.log, state.learning_rate))
  return BuiltOptimizer(tx, needs_value=True, logged_rates=rates)


def _idbd_metaoptimize(
  steps: int,
  *,
  initial_learning_rate: float = 0.05,
  meta_learning_rate: float = 0.01,
  gamma: float = 1.0,
) -> BuiltOptimizer:
  """IDBD as MetaOptimize: SGD base, per-weight rates, ``hessian="diagonal"`` (the
  Gauss-Newton curvature of the batch loss), SGD meta, the meta step first."""
  del steps
  tx = mo.metaoptimize(
    optax.sgd(1.0),
    optax.sgd(meta_learning_rate),
    initial_learning_rate=initial_learning_rate,
    blocks="per_weight",
    hessian="diagonal",
    gamma=gamma,
    meta_step_first=True,
  )
  return _metaoptimize_optimizer(tx, "diagonal", None)


# ----------------------------------------------------------------------------
# Any Optax alias: a peer named "optax.<alias>", or a MetaOptimize base.

OPTAX_PREFIX = "optax."


def _optax_function(path: str, role: str) -> Callable[..., optax.GradientTransformation]:
  """``optax.<path>`` (``"adafactor"``, ``"contrib.cocob"``), a function, or a OptimizerError."""
  fn: Any = optax
  for part in path.split("."):
    fn = getattr(fn, part, None) if part and not part.startswith("_") else None
  if not callable(fn) or inspect.isclass(fn):
    raise OptimizerError(
      f"{role} {OPTAX_PREFIX}{path} is not an Optax optimizer; name a function of optax that "
      "returns a GradientTransformation, e.g. optax.adafactor or optax.contrib.cocob."
    )
  return fn


def _keyword_names(fn: Callable[..., Any]) -> tuple[str, ...]:
  kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
  return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds)


def _checked_transformation(tx: Any, what: str) -> optax.GradientTransformation:
  if not isinstance(tx, optax.GradientTransformation):
    raise OptimizerError(f"{what} returned a {type(tx).__name__}, not an Optax transformation.")
  return tx


def _alias_base(
  base: Any, base_options: Mapping[str, Any] | None, meta_parameters: Any = None
) -> optax.GradientTransformation:
  """``optax.<base>(learning_rate=1.0, **base_options)``: an Optax alias as MetaOptimize's base.

  Built with ``optax.inject_hyperparams`` when ``meta_parameters`` name its hyperparameters.
  """
  if not isinstance(base, str):
    raise OptimizerError(f"base must be a name, got {base!r}.")
  path = base.removeprefix(OPTAX_PREFIX)
  fn = _optax_function(path, f"base={base!r} is not a MetaOptimize preset ({sorted(_PRESETS)}) and")
  if base_options is not None and not isinstance(base_options, Mapping):
    raise OptimizerError(f"base_options must be a mapping of optax.{path}'s arguments.")
  options = dict(base_options or {})
  accepted = _keyword_names(fn)
  if "learning_rate" not in accepted or "learning_rate" in options:
    raise OptimizerError(
      f"base optax.{path} is used at learning rate 1 (MetaOptimize learns the rate): it must "
      "take learning_rate, and base_options must not give it."
    )
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise OptimizerError(
      f"base_options: optax.{path} takes no {', '.join(unknown)}; its arguments: "
      f"{', '.join(accepted)}."
    )
  if meta_parameters and any(name != "weight_decay" for name in meta_parameters):
    tx = mo.base_optimizer(fn, options, meta_parameters)
    return _checked_transformation(tx, f"optax.{path}")
  return _checked_transformation(fn(learning_rate=1.0, **options), f"optax.{path}")


def _optax_spec(name: str) -> OptimizerSpec:
  """The registry entry of ``"optax.<alias>"``: the alias called with the config's parameters."""
  path = name.removeprefix(OPTAX_PREFIX)
  fn = _optax_function(path, "optimizer")

  def build(steps: int, **params: Any) -> BuiltOptimizer:
    del steps
    tx = _checked_transformation(fn(**params), name)
    default = inspect.signature(fn).parameters.get("learning_rate")
    rate = params.get("learning_rate", default.default if default is not None else None)
    numeric = isinstance(rate, int | float) and not isinstance(rate, bool)
    return BuiltOptimizer(tx, logged_rates=_constant_rate(float(rate)) if numeric else None)

  return OptimizerSpec(
    build, f"{name} (any Optax alias, its own arguments)", lambda params: _keyword_names(fn)
  )


def is_optimizer_name(name: Any) -> bool:
  """Whether ``name`` is a registry name or ``"optax.<alias>"`` (resolved when built)."""
  return isinstance(name, str) and (name in REGISTRY or name.startswith(OPTAX_PREFIX))


REGISTRY: Mapping[str, OptimizerSpec] = types.MappingProxyType(
  {
    "metaoptimize": OptimizerSpec(
      _metaoptimize,
      "MetaOptimize around a preset base (adamw, lion, sgdm, rmsprop, sgd)",
      _metaoptimize_parameters,
    ),
    "hypergradient": OptimizerSpec(
      _hypergradient,
      "hypergradient descent: MetaOptimize with gamma 0",
      lambda params: _metaoptimize_parameters(params, fixed=("gamma",)),
    ),
    "recommended": OptimizerSpec(
      _recommended,
      "MetaOptimize as recommended: AdamW base, Adam meta, horizon-aware gamma",
      _recommended_parameters,
    ),
    "adamw": OptimizerSpec(_adamw, "AdamW at a fixed learning rate"),
    "adamw_cosine": OptimizerSpec(_adamw_cosine, "AdamW, linear warm-up and cosine decay"),
    "adamw_linear": OptimizerSpec(_adamw_linear, "AdamW, rate decayed linearly to the end"),
    "sgdm": OptimizerSpec(_sgdm, "SGD (with momentum) at a fixed learning rate"),
    "sgdm_cosine": OptimizerSpec(_sgdm_cosine, "SGD with momentum and cosine decay"),
    "lion": OptimizerSpec(_lion, "Lion at a fixed learning rate"),
    "prodigy": OptimizerSpec(_prodigy, "Prodigy (optax.contrib)"),
    "mechanic": OptimizerSpec(_mechanic, "Mechanic around Adam (optax.contrib.mechanize)"),
    "dog": OptimizerSpec(_dog, "DoG (optax.contrib)"),
    "schedule_free_adamw": OptimizerSpec(
      _schedule_free_adamw, "schedule-free AdamW, evaluated at its averaged point"
    ),
    "dadapt_adamw": OptimizerSpec(_dadapt_adamw, "D-Adaptation AdamW (optax.contrib)"),
    "cocob": OptimizerSpec(_cocob, "COCOB-Backprop coin betting (optax.contrib)"),
    "dowg": OptimizerSpec(_dowg, "DoWG (optax.contrib)"),
    "momo_adam": OptimizerSpec(
      _momo_adam, "MoMo-Adam, Polyak step on the batch loss (optax.contrib)"
    ),
    "idbd": OptimizerSpec(_idbd, "IDBD (Sutton 1992): per-weight step sizes"),
    "autostep": OptimizerSpec(_autostep, "Autostep (Mahmood et al. 2012): IDBD normalised"),
    "idbd_metaoptimize": OptimizerSpec(
      _idbd_metaoptimize, "IDBD as MetaOptimize (SGD base, per-weight, diagonal curvature)"
    ),
  }
)


def optimizer_names() -> tuple[str, ...]:
  """The registry's names, sorted."""
  return tuple(sorted(REGISTRY))


def parameters(name: str, params: Mapping[str, Any] | None = None) -> tuple[str, ...]:
  """The parameters the optimizer ``name`` accepts (given ``params``, for presets)."""
  spec = _spec(name)
  if spec.parameters is not None:
    return spec.parameters(params or {})
  sig = inspect.signature(spec.build)
  return tuple(p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _spec(name: str) -> OptimizerSpec:
  if isinstance(name, str) and name.startswith(OPTAX_PREFIX) and name not in REGISTRY:
    return _optax_spec(name)
  if name not in REGISTRY:
    raise OptimizerError(
      f"unknown optimizer {name!r}; valid names: {', '.join(optimizer_names())}, or "
      "optax.<alias> (any Optax optimizer, e.g. optax.adafactor)."
    )
  return REGISTRY[name]


_POSITIVE = ("a finite number > 0", lambda x: x > 0)
_NON_NEGATIVE = ("a finite number >= 0", lambda x: x >= 0)
_DECAY = ("a number in [0, 1]", lambda x: 0 <= x <= 1)
# The accepted values of every numeric parameter of the registry's optimizers (and of
# the Optax aliases' parameters of these names), checked before anything is built.
NUMERIC_PARAMETERS: Mapping[str, tuple[str, Callable[[float], bool]]] = types.MappingProxyType(
  {
    **dict.fromkeys(
      (
        "learning_rate",
        "initial_learning_rate",
        "meta_learning_rate",
        "min_learning_rate",
        "max_learning_rate",
        "estim_lr0",
        "estim_lr_coef",
        "s_init",
        "reps_rel",
        "alpha",
        "clip_norm",
        "init_estim_sq_dist",
        "tau",
      ),
      _POSITIVE,
    ),
    **dict.fromkeys(
      ("eps", "weight_decay", "end_learning_rate", "weight_lr_power", "warmup_steps"),
      _NON_NEGATIVE,
    ),
    **dict.fromkeys(("b1", "b2", "beta3", "momentum", "decay"), _DECAY),
    "num_betas": ("an integer >= 1", lambda x: x >= 1 and float(x).is_integer()),
    "lower_bound": ("a finite number", lambda x: True),
  }
)


def _check_value(name: str, key: str, value: Any) -> None:
  """A numeric parameter's value against :data:`NUMERIC_PARAMETERS` (None: the default)."""
  if key not in NUMERIC_PARAMETERS or value is None:
    return
  if key == "learning_rate" and callable(value):  # A schedule, from Python.
    return
  accepted, ok = NUMERIC_PARAMETERS[key]
  try:
    _validation.check_number(key, value, accepted, ok)
  except (TypeError, ValueError) as e:
    raise OptimizerError(f"optimizer {name!r}: {e}") from None


def check_parameters(name: str, params: Mapping[str, Any]) -> None:
  """The name, the parameters' names and their numeric values, without building anything.

  Raises:
    OptimizerError: for an unknown name or parameter (the message lists the valid
      ones) or a numeric value out of range (:data:`NUMERIC_PARAMETERS`).
  """
  valid = parameters(name, params)
  unknown = sorted(set(params) - set(valid))
  if unknown:
    raise OptimizerError(
      f"optimizer {name!r}: unknown parameter(s) {', '.join(unknown)}; "
      f"valid parameters: {', '.join(valid)}."
    )
  for key, value in params.items():
    _check_value(name, key, value)


def build_optimizer(
  name: str, steps: int, params: Mapping[str, Any] | None = None
) -> BuiltOptimizer:
  """The optimizer ``name`` with keyword ``params``, for a run of ``steps`` steps.

  Raises:
    OptimizerError: for an unknown name or parameter (the message lists the valid
      ones) or a value the optimizer rejects.
  """
  params = dict(params or {})
  check_parameters(name, params)
  try:
    return _spec(name).build(steps, **params)
  except OptimizerError:
    raise
  except (TypeError, ValueError) as e:
    raise OptimizerError(f"optimizer {name!r}: {e}") from e
