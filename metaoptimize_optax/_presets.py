"""Presets: MetaOptimize around Optax's standard optimizers, with the paper's defaults.

Every preset wraps the Optax optimizer of the same name at learning rate 1 in
:func:`metaoptimize`, with the paper's defaults (Tables 2, 4 and 5 of
Sharifnassab, Salehkaleybar & Sutton, ICML 2025): initial learning rate 1e-6,
gamma 1, decoupled base weight decay 0.1 and a Lion meta optimizer at 1e-3
(b1 0.9, b2 0.99). ``meta="adam"`` is Adam at the meta learning rate with
b1 0.9, b2 0.999.

Differences from the authors' PyTorch code, all deliberate (the bases are
Optax's standard optimizers, so a preset behaves like the optimizer its name
promises):

* AdamW base and Adam meta: Optax's bias-corrected, normalised first moment;
  the authors' code uses an un-normalised momentum sum (steps up to
  ``1 / (1 - b1)`` times larger) and ``eps`` inside the square root.
* SGD with momentum: Optax's heavy ball ``m = g + mu * m`` applied at once; the
  authors' code applies the normalised momentum of the previous step.
* RMSProp: Optax's ``g / (sqrt(nu) + eps)`` without bias correction; the
  authors' code bias-corrects ``nu`` and puts ``eps`` inside the square root.
* Lion base and Lion meta, and plain SGD, match the authors' code exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import optax

from metaoptimize_optax import _meta_parameters, _validation
from metaoptimize_optax._meta_parameters import WEIGHT_DECAY, Space
from metaoptimize_optax._metaoptimize import Blocks, Hessian, metaoptimize, paper_lion

META_CHOICES = ("lion", "adam")

# The Args every preset shares, appended to each preset's docstring.
_COMMON_ARGS = """\
    weight_decay: decoupled weight decay ``kappa``, scaled by the learning rate
      (paper: 0.1).
    meta: ``"lion"`` (paper: b1 0.9, b2 0.99), ``"adam"`` (b1 0.9, b2 0.999) or
      any Optax optimizer, applied to the log learning rates.
    meta_learning_rate: the meta learning rate of ``"lion"`` or ``"adam"``
      (paper: 1e-3); leave it out when ``meta`` is an optimizer.
    weight_decay_mask: the decayed weights (see :func:`metaoptimize`).
    gamma: discount of future losses, in [0, 1], or a schedule (paper: 1).
    blocks: which weights share a learning rate (see :func:`metaoptimize`).
    hessian: ``"free"`` (the paper's trace), ``"diagonal"`` (IDBD's trace; ``update``
      then takes ``curvature=``) or ``"hvp"`` (curvature-aware).
    min_learning_rate: optional lower clamp of the learned rates.
    max_learning_rate: optional upper clamp of the learned rates.
    meta_parameters: hyperparameters learned beside the learning rate, a mapping
      name -> ``"log"`` or ``"logit"``: ``"weight_decay"`` or a hyperparameter
      of this preset's base (the base is then built with
      ``optax.inject_hyperparams``, its hyperparameters in float32).
    meta_parameters_meta: the meta optimizer of the meta-parameters' ``phi``;
      None: the same as ``meta``.
    trace_dtype: dtype of the weight traces (None: the params' dtype), like
      Optax's ``mu_dtype``; ``jnp.float32`` for bfloat16 params.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (see :func:`metaoptimize`).
"""


def _documented(fn: Callable) -> Callable:
  if fn.__doc__:  # None under python -OO.
    fn.__doc__ = fn.__doc__.replace("    <common args>\n", _COMMON_ARGS)
  return fn


def meta_optimizer(
  meta: str | optax.GradientTransformation = "lion",
  meta_learning_rate: float | None = None,
) -> optax.GradientTransformation:
  """The meta optimizer named by ``meta`` (the paper's settings), or ``meta`` itself.

  Args:
    meta: ``"lion"`` (b1 0.9, b2 0.99, no weight decay), ``"adam"`` (b1 0.9, b2
      0.999) or any Optax optimizer.
    meta_learning_rate: the meta learning rate for ``"lion"`` and ``"adam"``
      (default 1e-3); must be left out when ``meta`` is an optimizer.

  Example:
    >>> import metaoptimize_optax as mo
    >>> meta = mo.meta_optimizer("adam", 1e-2)
  """
  if isinstance(meta, optax.GradientTransformation):
    if meta_learning_rate is not None:
      raise ValueError(
        "meta_learning_rate is only used with meta='lion' or meta='adam'; set the "
        "learning rate inside the optimizer passed as meta instead."
      )
    return meta
  if meta_learning_rate is not None:
    _validation.check_number(
      "meta_learning_rate", meta_learning_rate, "None or a finite number > 0", lambda x: x > 0
    )
  lr = 1e-3 if meta_learning_rate is None else meta_learning_rate
  if meta == "lion":
    return paper_lion(lr)
  if meta == "adam":
    return optax.adam(lr, b1=0.9, b2=0.999)
  raise ValueError(f"meta={meta!r} is not one of {META_CHOICES} or an Optax optimizer.")


def base_optimizer(
  factory: Callable[..., optax.GradientTransformation],
  hyperparams: Mapping[str, Any],
  meta_parameters: Mapping[str, Space] | None = None,
  static: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
  """``factory(1.0, **hyperparams)``, injected when ``meta_parameters`` name its hyperparameters.

  The injected base keeps its hyperparameters in float32 whatever the params'
  dtype (``optax.inject_hyperparams`` would follow bfloat16 params and round a
  ``b2`` of 0.999 to 1). ``static`` are arguments that are never injected.

  Example:
    >>> import optax, metaoptimize_optax as mo
    >>> base = mo.base_optimizer(optax.adam, {"b2": 0.99}, {"b2": "logit"})
  """
  static = dict(static or {})
  if not any(name != WEIGHT_DECAY for name in meta_parameters or {}):
    return factory(1.0, **hyperparams, **static)
  inject = optax.inject_hyperparams(
    factory, static_args=tuple(static), hyperparam_dtype=jnp.float32
  )
  return inject(learning_rate=1.0, **hyperparams, **static)


def _preset(
  factory: Callable[..., optax.GradientTransformation],
  hyperparams: Mapping[str, Any],
  static: Mapping[str, Any] | None,
  meta: str | optax.GradientTransformation,
  meta_learning_rate: float | None,
  **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  """The one implementation of the presets: ``kwargs`` are :func:`metaoptimize`'s."""
  learned = kwargs.get("meta_parameters")
  for name, value in hyperparams.items():
    if name == "eps":
      _validation.check_number(name, value, "a finite number >= 0", lambda x: x >= 0)
    else:  # A decay rate: b1, b2, momentum or decay.
      _validation.check_number(name, value, "a number in [0, 1]", lambda x: 0 <= x <= 1)
    # A learned one starts inside its space (b1=0 does not); a malformed meta_parameters is
    # left to metaoptimize's own check, which names the accepted forms.
    if isinstance(learned, Mapping) and learned.get(name) in _meta_parameters.SPACES:
      _meta_parameters.check_start(name, value, learned[name], f"{name}=")
  base = base_optimizer(factory, hyperparams, kwargs.get("meta_parameters"), static)
  return metaoptimize(base, meta_optimizer(meta, meta_learning_rate), **kwargs)


@_documented
def adamw(
  initial_learning_rate: float = 1e-6,
  *,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.1,
  meta: str | optax.GradientTransformation = "lion",
  meta_learning_rate: float | None = None,
  weight_decay_mask: Any = None,
  gamma: float | optax.Schedule = 1.0,
  blocks: Blocks = "scalar",
  hessian: Hessian = "free",
  min_learning_rate: float | None = None,
  max_learning_rate: float | None = None,
  meta_parameters: Mapping[str, Space] | None = None,
  meta_parameters_meta: optax.GradientTransformation | None = None,
  trace_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around AdamW: ``optax.adam(1.0, b1, b2, eps)``, decoupled weight decay.

  The paper's AdamW (Tables 2 and 4): b1 0.9, b2 0.999, weight decay 0.1, a
  Lion meta optimizer at 1e-3, gamma 1, start 1e-6. Unlike the authors' code,
  the base is Optax's Adam: a bias-corrected, normalised first moment (theirs
  is an un-normalised momentum sum, steps up to ``1 / (1 - b1)`` times larger)
  and ``eps`` outside the square root.

  Args:
    initial_learning_rate: the starting learning rate of every block (paper:
      1e-6, one to two orders of magnitude below a good fixed rate).
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    eps: Adam's denominator offset.
    <common args>

  Example:
    >>> import metaoptimize_optax as mo
    >>> tx = mo.adamw(1e-5, meta="adam", meta_parameters={"b2": "logit"})
  """
  return _preset(
    optax.adam,
    {"b1": b1, "b2": b2, "eps": eps},
    None,
    meta,
    meta_learning_rate,
    initial_learning_rate=initial_learning_rate,
    weight_decay=weight_decay,
    weight_decay_mask=weight_decay_mask,
    gamma=gamma,
    blocks=blocks,
    hessian=hessian,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    meta_parameters=meta_parameters,
    meta_parameters_meta=meta_parameters_meta,
    trace_dtype=trace_dtype,
  )


@_documented
def lion(
  initial_learning_rate: float = 1e-6,
  *,
  b1: float = 0.9,
  b2: float = 0.99,
  weight_decay: float = 0.1,
  meta: str | optax.GradientTransformation = "lion",
  meta_learning_rate: float | None = None,
  weight_decay_mask: Any = None,
  gamma: float | optax.Schedule = 1.0,
  blocks: Blocks = "scalar",
  hessian: Hessian = "free",
  min_learning_rate: float | None = None,
  max_learning_rate: float | None = None,
  meta_parameters: Mapping[str, Space] | None = None,
  meta_parameters_meta: optax.GradientTransformation | None = None,
  trace_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around Lion: ``optax.lion(1.0, b1, b2)``, decoupled weight decay.

  The paper's Lion (Table 5): b1 0.9, b2 0.99, weight decay 0.1, a Lion meta
  optimizer at 1e-3, gamma 1, start 1e-6; the same as the authors' code. Lion's
  update is a sign, so start near 1e-1 times AdamW's good rate.

  Args:
    initial_learning_rate: the starting learning rate of every block (paper:
      1e-6).
    b1: Lion's interpolation factor of the update.
    b2: Lion's momentum decay.
    <common args>

  Example:
    >>> import metaoptimize_optax as mo
    >>> tx = mo.lion(1e-6, meta_parameters={"weight_decay": "log"})
  """
  return _preset(
    optax.lion,
    {"b1": b1, "b2": b2},
    {"weight_decay": 0.0},
    meta,
    meta_learning_rate,
    initial_learning_rate=initial_learning_rate,
    weight_decay=weight_decay,
    weight_decay_mask=weight_decay_mask,
    gamma=gamma,
    blocks=blocks,
    hessian=hessian,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    meta_parameters=meta_parameters,
    meta_parameters_meta=meta_parameters_meta,
    trace_dtype=trace_dtype,
  )


@_documented
def sgdm(
  initial_learning_rate: float = 1e-6,
  *,
  momentum: float = 0.9,
  nesterov: bool = False,
  weight_decay: float = 0.1,
  meta: str | optax.GradientTransformation = "lion",
  meta_learning_rate: float | None = None,
  weight_decay_mask: Any = None,
  gamma: float | optax.Schedule = 1.0,
  blocks: Blocks = "scalar",
  hessian: Hessian = "free",
  min_learning_rate: float | None = None,
  max_learning_rate: float | None = None,
  meta_parameters: Mapping[str, Space] | None = None,
  meta_parameters_meta: optax.GradientTransformation | None = None,
  trace_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around SGD with momentum: ``optax.sgd(1.0, momentum, nesterov)``.

  The paper's SGD-with-momentum pair: momentum 0.9, weight decay 0.1, a Lion
  meta optimizer at 1e-3, gamma 1, start 1e-6. Unlike the authors' code, which
  applies the normalised momentum of the previous step, this is Optax's heavy
  ball ``m = g + momentum * m`` applied at once.

  Args:
    initial_learning_rate: the starting learning rate of every block (paper:
      1e-6).
    momentum: the heavy-ball momentum.
    nesterov: Nesterov momentum (never injected or learned).
    <common args>

  Example:
    >>> import metaoptimize_optax as mo
    >>> tx = mo.sgdm(1e-4, meta_parameters={"momentum": "logit"})
  """
  return _preset(
    optax.sgd,
    {"momentum": momentum},
    {"nesterov": nesterov},
    meta,
    meta_learning_rate,
    initial_learning_rate=initial_learning_rate,
    weight_decay=weight_decay,
    weight_decay_mask=weight_decay_mask,
    gamma=gamma,
    blocks=blocks,
    hessian=hessian,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    meta_parameters=meta_parameters,
    meta_parameters_meta=meta_parameters_meta,
    trace_dtype=trace_dtype,
  )


@_documented
def rmsprop(
  initial_learning_rate: float = 1e-6,
  *,
  decay: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.1,
  meta: str | optax.GradientTransformation = "lion",
  meta_learning_rate: float | None = None,
  weight_decay_mask: Any = None,
  gamma: float | optax.Schedule = 1.0,
  blocks: Blocks = "scalar",
  hessian: Hessian = "free",
  min_learning_rate: float | None = None,
  max_learning_rate: float | None = None,
  meta_parameters: Mapping[str, Space] | None = None,
  meta_parameters_meta: optax.GradientTransformation | None = None,
  trace_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around RMSProp: ``optax.rmsprop(1.0, decay, eps)``.

  The paper's RMSProp pair: decay 0.999, weight decay 0.1, a Lion meta
  optimizer at 1e-3, gamma 1, start 1e-6. Unlike the authors' code, which
  bias-corrects ``nu`` and puts ``eps`` inside the square root, this is
  Optax's ``g / (sqrt(nu) + eps)``.

  Args:
    initial_learning_rate: the starting learning rate of every block (paper:
      1e-6).
    decay: the second-moment decay.
    eps: the denominator offset.
    <common args>

  Example:
    >>> import metaoptimize_optax as mo
    >>> tx = mo.rmsprop(1e-5, meta_parameters={"decay": "logit"})
  """
  return _preset(
    optax.rmsprop,
    {"decay": decay, "eps": eps},
    None,
    meta,
    meta_learning_rate,
    initial_learning_rate=initial_learning_rate,
    weight_decay=weight_decay,
    weight_decay_mask=weight_decay_mask,
    gamma=gamma,
    blocks=blocks,
    hessian=hessian,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    meta_parameters=meta_parameters,
    meta_parameters_meta=meta_parameters_meta,
    trace_dtype=trace_dtype,
  )


@_documented
def sgd(
  initial_learning_rate: float = 1e-6,
  *,
  weight_decay: float = 0.1,
  meta: str | optax.GradientTransformation = "lion",
  meta_learning_rate: float | None = None,
  weight_decay_mask: Any = None,
  gamma: float | optax.Schedule = 1.0,
  blocks: Blocks = "scalar",
  hessian: Hessian = "free",
  min_learning_rate: float | None = None,
  max_learning_rate: float | None = None,
  meta_parameters: Mapping[str, Space] | None = None,
  meta_parameters_meta: optax.GradientTransformation | None = None,
  trace_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around plain SGD: ``optax.sgd(1.0)``.

  The paper's SGD: weight decay 0.1, a Lion meta optimizer at 1e-3, gamma 1,
  start 1e-6; the same as the authors' code. Only ``"weight_decay"`` can be
  learned beside the learning rate.

  Args:
    initial_learning_rate: the starting learning rate of every block (paper:
      1e-6).
    <common args>

  Example:
    >>> import metaoptimize_optax as mo
    >>> tx = mo.sgd(1e-3, meta="adam")
  """
  return _preset(
    optax.sgd,
    {},
    None,
    meta,
    meta_learning_rate,
    initial_learning_rate=initial_learning_rate,
    weight_decay=weight_decay,
    weight_decay_mask=weight_decay_mask,
    gamma=gamma,
    blocks=blocks,
    hessian=hessian,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    meta_parameters=meta_parameters,
    meta_parameters_meta=meta_parameters_meta,
    trace_dtype=trace_dtype,
  )
