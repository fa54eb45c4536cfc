"""Importing the package: under ``python -OO`` (no docstrings), every module."""

import subprocess
import sys

IMPORT_ALL = """
import importlib, pkgutil
import metaoptimize_optax as mo
names = [m.name for m in pkgutil.walk_packages(mo.__path__, "metaoptimize_optax.")]
for name in names:
  importlib.import_module(name)
assert mo.adamw.__doc__ is None  # docstrings are stripped, and that is no error
print(len(names))
"""


def test_every_module_imports_under_python_OO():
  out = subprocess.run(
    [sys.executable, "-OO", "-c", IMPORT_ALL], capture_output=True, text=True, check=False
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert int(out.stdout.split()[-1]) > 20  # the library and the experiments
