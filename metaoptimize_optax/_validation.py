"""Argument checks of :func:`metaoptimize`, run once at construction.

Every check raises a ``ValueError`` or ``TypeError`` that names the argument, the
value given and what is accepted. Values traced under ``optax.inject_hyperparams``
are not known at construction and are let through.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax
from jax import core as jax_core


def is_traced(value: Any) -> bool:
  """Whether ``value`` is traced (under ``jit`` or ``optax.inject_hyperparams``)."""
  return isinstance(value, jax_core.Tracer)


def concrete(value: Any) -> float | None:
  """``float(value)``, or None when ``value`` is traced (under inject_hyperparams)."""
  if is_traced(value):
    return None
  return float(value)


def check_number(name: str, value: Any, accepted: str, ok: Callable[[float], bool]) -> None:
  """Rejects a non-real, non-finite or out-of-range scalar ``value``.

  Strings and booleans are refused although ``float`` would read them.
  """
  not_real = TypeError(f"{name}={value!r} is not a real scalar; expected {accepted}.")
  if isinstance(value, str | bytes | bool | np.bool_):
    raise not_real
  try:
    x = concrete(value)
  except (TypeError, ValueError) as err:
    raise not_real from err
  if x is not None and not (math.isfinite(x) and ok(x)):
    raise ValueError(f"{name}={value!r} is invalid; expected {accepted}.")


def check_transformation(name: str, tx: Any) -> None:
  """Rejects anything but a GradientTransformation, with a hint for an uncalled factory."""
  if isinstance(tx, optax.GradientTransformation):
    return
  hint = ""
  if callable(tx) and getattr(tx, "__module__", "").startswith("optax"):
    hint = f" (did you mean {getattr(tx, '__name__', 'it')}(...), called?)"
  elif isinstance(tx, optax.MultiSteps):
    hint = (
      " (gradient accumulation goes outside: optax.MultiSteps(metaoptimize(base), k) tunes the"
      " learning rate once per accumulated step)"
    )
  raise TypeError(
    f"{name} must be an optax.GradientTransformation such as optax.adam(1.0), got {tx!r}{hint}."
  )


def check_gamma(gamma: Any) -> None:
  """A number in [0, 1], or a schedule whose value at count 0 is one."""
  name, value = ("gamma(0)", gamma(0)) if callable(gamma) else ("gamma", gamma)
  check_number(
    name, value, "a number in [0, 1] or a schedule count -> [0, 1]", lambda x: 0 <= x <= 1
  )


def check_learning_rate_range(
  initial_learning_rate: Any, min_learning_rate: Any, max_learning_rate: Any
) -> None:
  """Positive bounds, ``min <= max``, and a start inside them."""
  check_number(
    "initial_learning_rate", initial_learning_rate, "a finite number > 0", lambda x: x > 0
  )
  for name, value in (
    ("min_learning_rate", min_learning_rate),
    ("max_learning_rate", max_learning_rate),
  ):
    if value is not None:
      check_number(name, value, "None or a finite number > 0", lambda x: x > 0)
  if min_learning_rate is not None and max_learning_rate is not None:
    lo, hi = concrete(min_learning_rate), concrete(max_learning_rate)
    if lo is not None and hi is not None and lo > hi:
      raise ValueError(
        f"min_learning_rate={min_learning_rate!r} is larger than "
        f"max_learning_rate={max_learning_rate!r}; expected min <= max."
      )
  lr0 = concrete(initial_learning_rate)
  if lr0 is not None and not (
    (min_learning_rate is None or lr0 >= float(min_learning_rate))
    and (max_learning_rate is None or lr0 <= float(max_learning_rate))
  ):
    raise ValueError(
      f"initial_learning_rate={initial_learning_rate!r} lies outside "
      f"[min_learning_rate, max_learning_rate] = [{min_learning_rate}, {max_learning_rate}]."
    )


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
  """Rejects a value that is not one of the strings ``choices``."""
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"{name}={value!r} is not one of {choices}.")


def check_float_dtype(name: str, dtype: Any) -> None:
  """None, or a floating-point dtype."""
  try:
    ok = dtype is None or jnp.issubdtype(dtype, jnp.floating)
  except TypeError:
    ok = False
  if not ok:
    raise ValueError(f"{name}={dtype!r} is invalid; expected None or a float dtype (jnp.float32).")
