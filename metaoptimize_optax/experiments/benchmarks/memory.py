"""Optimizer state sizes, from shapes alone (nothing is allocated)."""

from __future__ import annotations

import jax
import optax

from metaoptimize_optax.experiments.benchmarks import trees


def state_bytes(tx: optax.GradientTransformation, params) -> int:
  """The bytes of ``tx.init(params)``, computed with ``jax.eval_shape``."""
  return trees.nbytes(jax.eval_shape(tx.init, params))


def extra_text(extra: int, params_bytes: int) -> str:
  """``extra`` bytes in params-sized units plus a remainder: ``"+1P +12 B"``.

  ``P`` is the size of the params, so MetaOptimize's Hessian-free state over
  AdamW's reads ``+1P`` (the trace) plus the bytes of its per-block scalars.
  """
  units = round(extra / params_bytes) if params_bytes else 0
  rest = extra - units * params_bytes
  text = f"{units:+d}P" if units else ""
  if rest or not text:
    text = f"{text} {rest:+,d} B".strip()
  return text
