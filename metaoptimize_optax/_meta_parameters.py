"""Meta-parameters beyond the learning rate: spaces, checks, and where their values live.

A learned meta-parameter ``theta`` is kept as an unconstrained ``phi``:

* ``"log"``: ``theta = exp(phi)``, for values > 0 (``eps``, ``weight_decay``);
* ``"logit"``: ``theta = sigmoid(phi)``, for values in (0, 1) (``b1``, ``b2``,
  ``momentum``, ``decay``).

The name ``"weight_decay"`` is MetaOptimize's own decoupled weight decay; any
other name is a numeric hyperparameter of a base built with
``optax.inject_hyperparams``, whose state holds the hyperparameters by name:
:func:`inject` writes the learned values there before each base step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, TypeAlias, cast

import jax
import jax.numpy as jnp
import optax

from metaoptimize_optax import _traces, _validation


class MetaParametersState(NamedTuple):
  """The meta-parameters learned beside the learning rates (``meta_parameters=``)."""

  phi: dict[str, jax.Array]  # name -> unconstrained phi (log or logit of the value).
  value: dict[str, jax.Array]  # name -> the value now, exp(phi) or sigmoid(phi).
  meta_state: optax.OptState  # State of the meta optimizer, over phi.
  # X^w = d w / d phi: one params-shaped column per name (sorted), on a leading axis.
  trace: optax.Updates
  # X^s = d s / d phi for each inexact leaf of the base state (same leading axis).
  base_state_trace: tuple


Space: TypeAlias = Literal["log", "logit"]
SPACES: tuple[str, ...] = ("log", "logit")
WEIGHT_DECAY = "weight_decay"  # MetaOptimize's own decoupled weight decay.

_IN_SPACE = {"log": (lambda x: x > 0, "> 0"), "logit": (lambda x: 0 < x < 1, "in (0, 1)")}
# phi is kept in these bounds, so that the value stays representable in float32
# and strictly inside its space: sigmoid(16) = 1 - 1.1e-7 (a b2 of exactly 1 would
# divide Adam's bias correction by zero), exp(+-80) = 5.5e34 and 1.8e-35.
PHI_BOUNDS = {"log": (-80.0, 80.0), "logit": (-16.0, 16.0)}


def to_value(phi: jax.Array, space: Space) -> jax.Array:
  """``theta`` from its unconstrained ``phi``."""
  return jnp.exp(phi) if space == "log" else jax.nn.sigmoid(phi)


def to_phi(value: jax.Array, space: Space) -> jax.Array:
  """The unconstrained ``phi`` of ``theta``."""
  return jnp.log(value) if space == "log" else jnp.log(value) - jnp.log1p(-value)


def clip(phi: Mapping[str, jax.Array], spaces: Mapping[str, Space]) -> dict[str, jax.Array]:
  """``phi`` within :data:`PHI_BOUNDS` of its space."""
  return {name: jnp.clip(p, *PHI_BOUNDS[spaces[name]]).astype(p.dtype) for name, p in phi.items()}


def values(phi: Mapping[str, jax.Array], spaces: Mapping[str, Space]) -> dict[str, jax.Array]:
  """``{name: theta}`` from ``{name: phi}``."""
  return {name: to_value(p, spaces[name]) for name, p in phi.items()}


def check_spaces(meta_parameters: Any, weight_decay: Any) -> dict[str, Space]:
  """Validates the ``meta_parameters`` argument at construction; returns it sorted by name."""
  if meta_parameters is None:
    return {}
  if not isinstance(meta_parameters, Mapping):
    raise TypeError(
      f"meta_parameters={meta_parameters!r} is not a mapping; expected a dict name -> space, "
      f"a space one of {SPACES}, e.g. {{'b2': 'logit', 'weight_decay': 'log'}}."
    )
  for name, space in meta_parameters.items():
    if not isinstance(name, str):
      raise TypeError(f"meta_parameters: the key {name!r} is not a hyperparameter name (a str).")
    if name == "learning_rate":
      raise ValueError(
        "meta_parameters: 'learning_rate' cannot be learned as a meta-parameter: the "
        "learning rate is MetaOptimize's own (initial_learning_rate=, blocks=); build the "
        "base at learning rate 1."
      )
    if not isinstance(space, str) or space not in SPACES:
      raise ValueError(
        f"meta_parameters[{name!r}]={space!r} is not a known space; expected one of {SPACES} "
        "('log': the value stays > 0; 'logit': the value stays in (0, 1))."
      )
  if WEIGHT_DECAY in meta_parameters:
    check_start(WEIGHT_DECAY, weight_decay, meta_parameters[WEIGHT_DECAY], "weight_decay=")
  return {name: meta_parameters[name] for name in sorted(meta_parameters)}


def check_start(name: str, value: Any, space: Space, source: str) -> None:
  """Rejects a starting value outside its space (when it is known, i.e. not traced)."""
  ok, accepted = _IN_SPACE[space]
  x = _validation.concrete(value)
  if x is not None and not ok(x):
    raise ValueError(
      f"meta_parameters[{name!r}]: its start {source}{x!r} lies outside the {space!r} space; "
      f"expected a value {accepted}"
      + (" (use 'log' for values >= 1)" if space == "logit" else "")
      + "."
    )


def _is_injected(x: Any) -> bool:
  """Whether ``x`` is the state of an ``optax.inject_hyperparams`` transformation."""
  return isinstance(x, tuple) and hasattr(x, "hyperparams") and hasattr(x, "inner_state")


def _injected_states(base_state: optax.OptState) -> list[Any]:
  leaves = jax.tree.leaves(base_state, is_leaf=_is_injected)
  return [x for x in leaves if _is_injected(x)]


def _numeric_names(state: Any) -> list[str]:
  schedules = getattr(state, "hyperparams_states", {})
  return sorted(
    k
    for k, v in state.hyperparams.items()
    if k not in schedules and jnp.issubdtype(jnp.result_type(v), jnp.floating)
  )


def start_values(spaces: Mapping[str, Space], base_state: optax.OptState) -> dict[str, jax.Array]:
  """The base's values of the learned hyperparameters, checked; at init.

  Raises:
    ValueError: for a base not built with ``optax.inject_hyperparams``, an unknown
      name, a schedule-valued or non-float hyperparameter, one stored narrower
      than float32, or a start outside its space.
  """
  names = [n for n in spaces if n != WEIGHT_DECAY]
  if not names:
    return {}
  states = _injected_states(base_state)
  if not states:
    raise ValueError(
      f"meta_parameters {names}: the base was not built with optax.inject_hyperparams, so "
      "its hyperparameters cannot be learned; build it as e.g. "
      "optax.inject_hyperparams(optax.adam)(learning_rate=1.0, b1=0.9, b2=0.999), or learn "
      "only 'weight_decay'."
    )
  out = {}
  for name in names:
    holders = [s for s in states if name in s.hyperparams]
    if not holders:
      available = sorted({n for s in states for n in _numeric_names(s)} - {"learning_rate"})
      raise ValueError(
        f"meta_parameters: {name!r} is not a hyperparameter of the base; its injected numeric "
        f"hyperparameters are {available}, and 'weight_decay' is MetaOptimize's own."
      )
    if len(holders) > 1:
      raise ValueError(
        f"meta_parameters: {name!r} is a hyperparameter of {len(holders)} injected "
        "transformations in the base; it must name exactly one."
      )
    (state,) = holders
    if name in getattr(state, "hyperparams_states", {}):
      raise ValueError(
        f"meta_parameters: the base's {name!r} is a schedule; a learned hyperparameter "
        "must be built as a number."
      )
    value = state.hyperparams[name]
    dtype = jnp.result_type(value)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(
        f"meta_parameters: the base's {name!r} is {dtype}, not a real-valued hyperparameter."
      )
    if jnp.finfo(dtype).bits < 32:
      raise ValueError(
        f"meta_parameters: the base stores {name!r} in {dtype} (optax.inject_hyperparams "
        "follows the params' dtype), which rounds it (0.999 is 1.0 in bfloat16); build the "
        "base with optax.inject_hyperparams(..., hyperparam_dtype=jnp.float32)."
      )
    check_start(name, value, spaces[name], "")
    out[name] = value
  return out


def inject(base_state: optax.OptState, values: Mapping[str, jax.Array]) -> optax.OptState:
  """``base_state`` with the injected hyperparameters named in ``values`` replaced."""
  if not values:
    return base_state

  def replace(x):
    if not _is_injected(x):
      return x
    hyperparams = dict(x.hyperparams)
    hyperparams.update({k: v for k, v in values.items() if k in hyperparams})
    return x._replace(hyperparams=hyperparams)

  return jax.tree.map(replace, base_state, is_leaf=_is_injected)


def init_state(
  spaces: Mapping[str, Space],
  weight_decay: Any,
  params: optax.Params,
  base_state: optax.OptState,
  dtype: Any,
  rule: _traces.TraceRule,
  meta_parameters_meta: optax.GradientTransformation,
  trace_dtype: Any,
) -> MetaParametersState:
  """The state at init: ``phi`` in ``dtype`` of the starts (the base's values, checked by
  :func:`start_values`, and ``weight_decay``), zero tangents."""
  start = {WEIGHT_DECAY: weight_decay, **start_values(spaces, base_state)}
  phi = {name: to_phi(jnp.asarray(start[name], dtype), space) for name, space in spaces.items()}
  trace, base_state_trace = rule.init(params, base_state, phi)
  return MetaParametersState(
    phi=phi,
    value=values(phi, spaces),
    meta_state=meta_parameters_meta.init(phi),
    trace=_traces.cast(trace, trace_dtype),
    base_state_trace=base_state_trace,
  )


def advance(
  state: MetaParametersState,
  spaces: Mapping[str, Space],
  rule: _traces.TraceRule,
  meta_parameters_meta: optax.GradientTransformation,
  step: _traces.Step,
  grads: list[jax.Array],
  gamma: Any,
) -> MetaParametersState:
  """One step: ``z_phi = <X^w, g>`` from the old tangents, the tangents' step, the meta step."""
  z = rule.meta_gradient(step.layout, state.trace, grads, state.phi)
  # The old tangents are overwritten once z has read them: see _traces.after.
  old_trace = _traces.after(state.trace, jax.tree.leaves(z))
  trace, base_state_trace = rule.next(step, old_trace, state.base_state_trace, gamma)
  meta_updates, meta_state = meta_parameters_meta.update(z, state.meta_state, state.phi)
  phi = clip(cast(dict[str, jax.Array], optax.apply_updates(state.phi, meta_updates)), spaces)
  return MetaParametersState(
    phi=phi,
    value=values(phi, spaces),
    meta_state=meta_state,
    trace=trace,
    base_state_trace=base_state_trace,
  )
