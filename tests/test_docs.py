"""The runnable examples in the docstrings and every Python snippet of the README and of the
documentation site's pages run and hold."""

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


ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The guides of the documentation site: each page's snippets run in order, in their own
# namespace, as in one notebook.
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if "```python" in p.read_text())
# Names the pages leave to the reader (a run length), given here; every other name a
# snippet uses is defined by the snippets before it on the same page.
SETUP = {"num_steps": 100}


def python_blocks(text: str) -> list[tuple[int, str]]:
  """The ```python blocks of a Markdown text, each with the line number of its first line."""
  blocks = []
  for match in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
    blocks.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
  return blocks


def run_snippets(path: pathlib.Path) -> int:
  """Runs the page's snippets in order in one namespace; returns how many ran."""
  namespace = dict(SETUP)
  blocks = python_blocks(path.read_text())
  for line, code in blocks:
    # Compiled with the page's line numbers, so a failure points at the snippet.
    exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
  return len(blocks)


def test_readme_python_snippets_run_as_written():
  assert run_snippets(README) >= 2


def test_every_guide_with_snippets_is_tested():
  names = {p.stem for p in PAGES}
  assert {"getting_started", "flax", "choosing", "streams", "meta_parameters", "api"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_documentation_snippets_run_as_written(page):
  assert run_snippets(page) >= 1


@pytest.mark.parametrize("name", ["metaoptimize_optax.nnx", "metaoptimize_optax.linen"])
def test_flax_helper_examples(name):
  result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0, result
