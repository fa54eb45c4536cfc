"""Fixtures of the experiment tests."""

import pytest
from exp_helpers import tiny_classifier

from metaoptimize_optax.experiments.workloads.base import Workload


@pytest.fixture
def workload() -> Workload:
  """A tiny classifier (see exp_helpers.tiny_classifier)."""
  return tiny_classifier()
