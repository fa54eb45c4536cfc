"""Importing the package: under ``python -OO`` (no docstrings), every module; without an
optional dependency, an error that names its extra."""

import pathlib
import runpy
import subprocess
import sys

import pytest

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


def _import_graph():
  """module -> the package modules it imports (at the top or inside functions)."""
  import ast
  import pathlib

  root = pathlib.Path(__file__).resolve().parents[1] / "metaoptimize_optax"
  modules = {}
  for path in root.rglob("*.py"):
    parts = path.relative_to(root.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    modules[name] = (path, parts[-1] == "__init__")
  graph = {}
  for name, (path, is_package) in modules.items():
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets |= {a.name for a in node.names}
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
        targets |= {base} | {f"{base}.{a.name}" for a in node.names}
    graph[name] = {t for t in targets if t in modules and t != name}
  return graph


def _cycles(graph):
  """Every module that lies on a cycle of the graph (strongly connected components > 1)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = set()
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_the_import_graph_has_no_cycle():
  """Data flows one way, imports inside functions included; a package's __init__ that
  re-exports its modules is not a cycle of its own (its modules import their siblings)."""
  graph = _import_graph()
  packages = {n for n in graph if any(m.startswith(n + ".") for m in graph)}
  # An edge into a package __init__ from inside that package is the re-export's mirror.
  edges = {
    n: {t for t in ts if not (t in packages and n.startswith(t + "."))} for n, ts in graph.items()
  }
  assert _cycles(edges) == []
  assert not any(
    t.startswith("metaoptimize_optax.experiments")
    for n, ts in graph.items()
    if not n.startswith("metaoptimize_optax.experiments")
    for t in ts
  )


def test_one_version_and_typed():
  """The version is written once (pyproject.toml reads the package's), and the package
  says it is typed (PEP 561)."""
  import pathlib
  from importlib.metadata import version

  import metaoptimize_optax as mo

  assert version("metaoptimize-optax") == mo.__version__
  assert (pathlib.Path(mo.__file__).parent / "py.typed").exists()
  pyproject = (pathlib.Path(mo.__file__).parents[1] / "pyproject.toml").read_text()
  assert not any(line.startswith('version = "') for line in pyproject.splitlines())


@pytest.mark.parametrize(
  "code, message",
  [
    (
      "import metaoptimize_optax.nnx",
      "metaoptimize_optax.nnx needs 'flax', from the 'flax' extra: "
      "pip install 'metaoptimize-optax[flax]'",
    ),
    (
      "import metaoptimize_optax.linen",
      "metaoptimize_optax.linen needs 'flax', from the 'flax' extra",
    ),
    (
      "from metaoptimize_optax.experiments.__main__ import main\n"
      "raise SystemExit(main(['configs']))",
      "from the 'experiments' extra: pip install 'metaoptimize-optax[experiments]'",
    ),
  ],
)
def test_a_missing_extra_is_named_in_one_line(code, message):
  """Without an optional dependency (made unimportable), the error names the extra."""
  hide = "import sys; sys.modules.update(flax=None, yaml=None, tqdm=None, matplotlib=None); "
  done = subprocess.run(
    [sys.executable, "-c", hide + code], capture_output=True, text=True, timeout=120
  )
  assert done.returncode != 0
  assert message in done.stderr.strip().splitlines()[-1]


def test_the_typed_user_code_runs():
  """tests/typing/user_code.py, which CI type-checks with pyright, also runs as written."""
  runpy.run_path(str(pathlib.Path(__file__).parent / "typing" / "user_code.py"))
