"""Sphinx configuration of the metaoptimize-optax documentation site.

Build it (``pip install -e ".[docs]"``) with warnings as errors, as CI does::

  sphinx-build -W --keep-going docs docs/_build/html

The pages are Markdown (MyST); the notebooks are the committed sources in ``notebooks/``,
copied here at build time and executed by myst-nb (their outputs are not committed); the
API reference is generated from the docstrings (autodoc, autosummary, napoleon).
"""

from __future__ import annotations

import pathlib
import shutil

import metaoptimize_optax

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent

# The notebooks live in notebooks/ (their own sources, tested there); the site renders copies.
_copies = DOCS / "notebooks"
_copies.mkdir(exist_ok=True)
for _source in sorted((ROOT / "notebooks").glob("*.ipynb")):
  shutil.copyfile(_source, _copies / _source.name)

project = "metaoptimize-optax"
author = "metaoptimize-optax developers"
copyright = "2026, metaoptimize-optax developers"  # noqa: A001
release = version = metaoptimize_optax.__version__

extensions = [
  "myst_nb",  # Markdown pages (MyST) and notebooks.
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
]

root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
# The bench writes docs/bench.md with H3 sections under its H1 title.
suppress_warnings = ["myst.header"]

# Notebooks: executed at build time in a temporary directory; an error fails the build.
nb_execution_mode = "force"
nb_execution_in_temp = True
nb_execution_timeout = 600
nb_execution_raise_on_error = True

autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_title = f"metaoptimize-optax {version}"
html_theme_options = {"show_toc_level": 2}
