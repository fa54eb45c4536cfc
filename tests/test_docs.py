"""The runnable examples in the docstrings run and hold."""

import doctest

import pytest

import metaoptimize_optax
from metaoptimize_optax import _metaoptimize, _presets, _recommended


@pytest.mark.parametrize("module", [metaoptimize_optax, _metaoptimize, _presets, _recommended])
def test_docstring_examples(module):
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0, result
