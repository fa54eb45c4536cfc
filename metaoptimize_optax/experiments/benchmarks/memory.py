"""Optimizer state sizes, from shapes alone (nothing is allocated), and memory release."""

from __future__ import annotations

import ctypes
import gc

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


def release() -> bool:
  """Hands the memory freed by the last timings back to the system; returns whether it could.

  XLA:CPU allocates its buffers with ``malloc``; glibc keeps the freed pages of
  buffers under its mmap threshold (32 MB at most) for reuse, so a process
  that times one group of optimizers after another grows by what each group
  left behind (a bench of 1M-50M values reached 24 GB). ``malloc_trim`` returns
  them. Elsewhere (no glibc) this only collects garbage and returns False.
  """
  gc.collect()
  try:
    trim = ctypes.CDLL(None).malloc_trim
  except (AttributeError, OSError, TypeError):  # No glibc, or no C library to open.
    return False
  trim(0)
  return True
