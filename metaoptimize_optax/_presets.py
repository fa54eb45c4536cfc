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

from typing import Any

import optax

from metaoptimize_optax._metaoptimize import metaoptimize

META_CHOICES = ("lion", "adam")


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
  """
  if isinstance(meta, optax.GradientTransformation):
    if meta_learning_rate is not None:
      raise ValueError(
          "meta_learning_rate is only used with meta='lion' or meta='adam'; set the "
          "learning rate inside the optimizer passed as meta instead."
      )
    return meta
  lr = 1e-3 if meta_learning_rate is None else meta_learning_rate
  if meta == "lion":
    return optax.lion(lr, b1=0.9, b2=0.99, weight_decay=0.0)
  if meta == "adam":
    return optax.adam(lr, b1=0.9, b2=0.999)
  raise ValueError(f"meta={meta!r} is not one of {META_CHOICES} or an Optax optimizer.")


def _preset(base, meta, meta_learning_rate, **kwargs: Any) -> optax.GradientTransformationExtraArgs:
  return metaoptimize(base, meta_optimizer(meta, meta_learning_rate), **kwargs)


def adamw(
    initial_learning_rate: float = 1e-6,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.1,
    meta: str | optax.GradientTransformation = "lion",
    meta_learning_rate: float | None = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around AdamW: ``optax.adam(1.0)`` with decoupled weight decay.

  Example:
    >>> import metaoptimize_optax as mo
    >>> tx = mo.adamw(1e-5, meta="adam")

  ``**kwargs`` are the other arguments of :func:`metaoptimize` (``gamma``,
  ``blocks``, ``hessian``, ``weight_decay_mask``, ``min_learning_rate``,
  ``max_learning_rate``).
  """
  return _preset(optax.adam(1.0, b1=b1, b2=b2, eps=eps), meta, meta_learning_rate,
                 initial_learning_rate=initial_learning_rate, weight_decay=weight_decay,
                 **kwargs)


def lion(
    initial_learning_rate: float = 1e-6,
    *,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 0.1,
    meta: str | optax.GradientTransformation = "lion",
    meta_learning_rate: float | None = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around Lion: ``optax.lion(1.0)`` with decoupled weight decay."""
  return _preset(optax.lion(1.0, b1=b1, b2=b2, weight_decay=0.0), meta, meta_learning_rate,
                 initial_learning_rate=initial_learning_rate, weight_decay=weight_decay,
                 **kwargs)


def sgdm(
    initial_learning_rate: float = 1e-6,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.1,
    meta: str | optax.GradientTransformation = "lion",
    meta_learning_rate: float | None = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around SGD with momentum: ``optax.sgd(1.0, momentum)``."""
  return _preset(optax.sgd(1.0, momentum=momentum, nesterov=nesterov), meta,
                 meta_learning_rate, initial_learning_rate=initial_learning_rate,
                 weight_decay=weight_decay, **kwargs)


def rmsprop(
    initial_learning_rate: float = 1e-6,
    *,
    decay: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.1,
    meta: str | optax.GradientTransformation = "lion",
    meta_learning_rate: float | None = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around RMSProp: ``optax.rmsprop(1.0, decay, eps)``."""
  return _preset(optax.rmsprop(1.0, decay=decay, eps=eps), meta, meta_learning_rate,
                 initial_learning_rate=initial_learning_rate, weight_decay=weight_decay,
                 **kwargs)


def sgd(
    initial_learning_rate: float = 1e-6,
    *,
    weight_decay: float = 0.1,
    meta: str | optax.GradientTransformation = "lion",
    meta_learning_rate: float | None = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  """MetaOptimize around plain SGD: ``optax.sgd(1.0)``."""
  return _preset(optax.sgd(1.0), meta, meta_learning_rate,
                 initial_learning_rate=initial_learning_rate, weight_decay=weight_decay,
                 **kwargs)
