"""The runnable examples in the docstrings and every Python snippet of the README run and hold."""

import doctest
import importlib
import pathlib
import re

import pytest

import metaoptimize_optax
from metaoptimize_optax import _metaoptimize, _presets, _recommended


@pytest.mark.parametrize("module", [metaoptimize_optax, _metaoptimize, _presets, _recommended])
def test_docstring_examples(module):
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0, result


README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
# Names the README leaves to the reader (a run length), given here; every other name a
# snippet uses is defined by the snippets before it, in order, as in one notebook.
README_SETUP = {"num_steps": 100}


def readme_python_blocks(text: str) -> list[tuple[int, str]]:
  """The README's ```python blocks, each with the line number of its first line of code."""
  blocks = []
  for match in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
    blocks.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
  return blocks


def test_readme_python_snippets_run_as_written():
  blocks = readme_python_blocks(README.read_text())
  assert len(blocks) >= 8
  namespace = dict(README_SETUP)
  for line, code in blocks:
    # Compiled with the README's line numbers, so a failure points at the snippet.
    exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)


@pytest.mark.parametrize("name", ["metaoptimize_optax.nnx", "metaoptimize_optax.linen"])
def test_flax_helper_examples(name):
  result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0, result
