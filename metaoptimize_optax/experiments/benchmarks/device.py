"""The device suite: sizes for one accelerator (``metaoptimize-optax bench --suite device``).

The update alone at 10M, 100M and 1B values in float32 and bfloat16, and the
whole training step of a ~100M-parameter transformer on the built-in text
corpus (the ``charlm`` workload at width 1024, 8 blocks), for AdamW,
MetaOptimize (Hessian-free scalar and per-layer, curvature-aware scalar) and the
learning-rate-free peers. Sized to finish in about 8 minutes on one
accelerator; ``scale`` shrinks every size (the tree sizes by ``scale``, the
model's width, batch and sequence by its square root) so that the same suite
runs in seconds on a CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from metaoptimize_optax.experiments.benchmarks import suites, trees

logger = logging.getLogger("metaoptimize_optax")

SIZES = (10_000_000, 100_000_000, 1_000_000_000)
DTYPES = ("float32", "bfloat16")
# charlm at width 1024, 8 blocks (SwiGLU 2752): about 101M parameters.
MODEL = {"dim": 1024, "n_layers": 8, "n_heads": 16, "batch_size": 32, "seq_len": 256}
ROUNDS = 5
MIN_SECONDS = 0.05
MEMORY_BUDGET = 64 << 30  # Params and state held at once (one accelerator of 80 GB or more).

UPDATE_CANDIDATES: tuple[suites.Candidate, ...] = (
  suites.ADAMW,
  suites.metaoptimize_candidate("scalar", "lion", target=1.3),
  suites.metaoptimize_candidate("per_layer", "lion", target=1.3),
  *suites.PEERS,
)
STEP_CANDIDATES: tuple[suites.Candidate, ...] = (
  suites.ADAMW,
  suites.metaoptimize_candidate("scalar", "lion", target=1.05),
  suites.metaoptimize_candidate("per_layer", "lion", target=1.05),
  suites.metaoptimize_candidate("scalar", "lion", "hvp", target=3.0),
  *suites.PEERS,
)


def scaled_sizes(scale: float) -> tuple[int, ...]:
  """The update-alone tree sizes times ``scale`` (at least 1,000 values each)."""
  return tuple(max(1_000, round(n * scale)) for n in SIZES)


def scaled_model(scale: float) -> dict[str, int]:
  """The transformer's options, its width, batch and sequence times ``sqrt(scale)``."""
  if scale >= 1:
    return dict(MODEL)
  root = math.sqrt(scale)
  dim = max(32, 32 * round(MODEL["dim"] * root / 32))
  return {
    "dim": dim,
    "n_layers": MODEL["n_layers"] if scale >= 0.01 else 2,
    "n_heads": max(1, min(MODEL["n_heads"], dim // 64)),
    "batch_size": max(2, round(MODEL["batch_size"] * root)),
    "seq_len": max(16, round(MODEL["seq_len"] * root)),
  }


def run(
  *,
  scale: float = 1.0,
  rounds: int = ROUNDS,
  min_seconds: float = MIN_SECONDS,
  memory_budget: int = MEMORY_BUDGET,
  dtypes: tuple[str, ...] = DTYPES,
) -> list[dict[str, Any]]:
  """The device suite's rows (the update alone, then the transformer's whole step)."""
  rows: list[dict[str, Any]] = []
  for n in scaled_sizes(scale):
    for dtype in dtypes:
      logger.info("device suite: update alone, %s values, %s", trees.describe(n), dtype)
      rows += suites.update_suite(
        n,
        UPDATE_CANDIDATES,
        rounds=rounds,
        min_seconds=min_seconds,
        memory_budget=memory_budget,
        dtype=jnp.dtype(dtype),
      )
  model: Mapping[str, int] = scaled_model(scale)
  logger.info("device suite: whole step, transformer %s", dict(model))
  rows += suites.step_suite(
    "charlm",
    STEP_CANDIDATES,
    rounds=rounds,
    min_seconds=min_seconds,
    workload_options=model,
    setting_label=f"transformer d{model['dim']} x{model['n_layers']} on charlm text",
  )
  return rows
