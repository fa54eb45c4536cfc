"""Shared fixtures."""

import os

# XLA:CPU's concurrency-optimized scheduler can stall a vmapped scan at 0% CPU (a vmapped PPO
# compare in test_rl did, once; docs/rl.md). The flag is read when the backend starts, before
# any test computes; the CLI sets the same (metaoptimize_optax.experiments.cli).
_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
if "xla_cpu_enable_concurrency_optimized_scheduler" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
  """Runs a test with 64-bit floats enabled (exactness checks)."""
  with jax.enable_x64(True):
    yield
