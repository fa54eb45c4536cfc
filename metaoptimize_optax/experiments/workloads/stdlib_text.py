"""A byte-level text corpus read from the installed Python standard library.

A fixed, sorted list of standard-library source files is read at run time from
``os.path.dirname(os.__file__)``, so the corpus needs no download; files absent
from the installation are skipped (with a warning). The exact text depends on
the Python version, so runs compare only on the same interpreter.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

# Paths relative to the standard library directory; about 0.8 MB in Python 3.11.
DEFAULT_FILES = (
  "abc.py",
  "argparse.py",
  "ast.py",
  "base64.py",
  "bisect.py",
  "calendar.py",
  "collections/__init__.py",
  "contextlib.py",
  "copy.py",
  "csv.py",
  "dataclasses.py",
  "difflib.py",
  "enum.py",
  "fractions.py",
  "functools.py",
  "heapq.py",
  "inspect.py",
  "json/decoder.py",
  "json/encoder.py",
  "textwrap.py",
)


def stdlib_dir() -> str:
  """The directory of the running interpreter's standard library."""
  return os.path.dirname(os.__file__)


@dataclasses.dataclass(frozen=True)
class TextCorpus:
  """Per-file byte arrays (uint8, read-only) of the train and test splits.

  Each file contributes its first ``train_fraction`` of bytes to ``train`` and
  the rest to ``test``, so both splits sample every file.
  """

  files: tuple[str, ...]
  train: tuple[np.ndarray, ...]
  test: tuple[np.ndarray, ...]


@functools.lru_cache(maxsize=4)
def _load(files: tuple[str, ...], train_fraction: float) -> TextCorpus:
  root = stdlib_dir()
  found, train, test = [], [], []
  for name in files:
    path = os.path.join(root, name)
    if not os.path.isfile(path):
      logger.warning("Standard-library file %s not found; skipped", path)
      continue
    with open(path, "rb") as f:
      data = np.frombuffer(f.read(), dtype=np.uint8)
    cut = int(len(data) * train_fraction)
    found.append(name)
    train.append(data[:cut])
    test.append(data[cut:])
  if not found:
    raise FileNotFoundError(f"none of the standard-library files {list(files)} exist in {root}")
  return TextCorpus(files=tuple(found), train=tuple(train), test=tuple(test))


def load_stdlib_text(
  files: Sequence[str] = DEFAULT_FILES, train_fraction: float = 0.9
) -> TextCorpus:
  """Reads ``files`` (relative to the stdlib directory) and splits each file.

  Args:
    files: standard-library paths, read in sorted order.
    train_fraction: leading fraction of every file used for training.
  """
  return _load(tuple(sorted(files)), float(train_fraction))
