"""The notebooks are stored stripped, install the project when it is missing, and run.

The committed ``.ipynb`` files are the sources (edited in Jupyter or Colab, as
Optax's examples are): they must be stripped of outputs and pass ``ruff check``
and ``ruff format --check`` like the package, so a review reads clean code.
Each notebook is executed top to bottom in a fresh kernel running this
interpreter (``sys.executable``, so the kernel sees the same packages as pytest),
with the notebooks directory as working directory; any error fails the test.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600
KERNEL_NAME = "python3"
# Hosts of package registries: the install cell names the project's source, not a registry.
REGISTRY_HOSTS = ("pypi.org", "pythonhosted.org", "test.pypi", "anaconda.org", "conda.anaconda")

nbformat = pytest.importorskip("nbformat")


def _ids(paths: list[pathlib.Path]) -> list[str]:
  return [p.stem for p in paths]


def test_notebooks_exist():
  names = {p.name for p in NOTEBOOKS}
  assert {
    "01_quickstart.ipynb",
    "02_flax_linen_trainstate.ipynb",
    "03_blocks_and_curvature.ipynb",
    "04_continual_learning.ipynb",
    "05_meta_parameters.ipynb",
    "06_reinforcement_learning.ipynb",
  } <= names, names


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_notebooks_are_lint_and_format_clean(command):
  ruff = shutil.which("ruff") or str(pathlib.Path(sys.executable).with_name("ruff"))
  if not pathlib.Path(ruff).exists():
    pytest.skip("ruff is not installed")
  out = subprocess.run(
    [ruff, *command, *map(str, NOTEBOOKS)],
    cwd=NOTEBOOKS_DIR.parent,
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stripped(path):
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == "code":
      assert cell.outputs == [], f"{path.name}: cell {i} has outputs"
      assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"
    assert "attachments" not in cell or not cell.attachments, f"{path.name}: cell {i}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_code_cell_installs_when_missing(path):
  nb = nbformat.read(path, as_version=4)
  first = nb.cells[0]
  assert first.cell_type == "code", f"{path.name}: the first cell must be the install cell"
  src = first.source
  lines = src.splitlines()
  # The install is guarded by the import: it runs only where the package is missing.
  try_at = lines.index("try:")
  assert lines[try_at + 1].strip() == "import metaoptimize_optax  # noqa: F401"
  assert lines[try_at + 2] == "except ImportError:"
  pip = [line for line in lines[try_at + 3 :] if line.strip().startswith("%pip")]
  # The extras the notebook needs: the experiments, and PPO's environments for the RL one.
  extra = "rl" if path.name == "06_reinforcement_learning.ipynb" else "experiments"
  assert pip == [f'  %pip install -q "{{source}}[{extra}]"'], pip
  lowered = src.lower()
  assert not any(host in lowered for host in REGISTRY_HOSTS), src
  assert "<" not in src and "git+" not in src, "no placeholder: the cell works as written"


def _install_source(path: pathlib.Path, cwd: pathlib.Path) -> str:
  """What the install cell of ``path`` would install, run in ``cwd`` with the package
  missing (the ``%pip`` line replaced by recording its source)."""
  src = nbformat.read(path, as_version=4).cells[0].source
  code = src.replace('%pip install -q "{source}[experiments]"', "print(source)")
  hide = "import sys; sys.modules['metaoptimize_optax'] = None\n"
  done = subprocess.run(
    [sys.executable, "-c", hide + code], cwd=cwd, capture_output=True, text=True, check=True
  )
  return done.stdout.strip()


def test_install_cell_finds_the_clone_or_a_wheel(tmp_path):
  """As written: in the repository's notebooks/ it installs the clone; beside a wheel (an
  upload to Colab's working directory), that wheel."""
  path = NOTEBOOKS[0]
  assert _install_source(path, NOTEBOOKS_DIR) == str(NOTEBOOKS_DIR.parent)
  assert (NOTEBOOKS_DIR.parent / "pyproject.toml").exists()
  (tmp_path / "metaoptimize_optax-0.2.0-py3-none-any.whl").write_bytes(b"")
  assert _install_source(path, tmp_path) == "metaoptimize_optax-0.2.0-py3-none-any.whl"


@pytest.fixture(scope="session")
def kernel_spec_manager(tmp_path_factory):
  """A kernel spec ``python3`` that runs ``sys.executable``, the interpreter of pytest."""
  jupyter_client = pytest.importorskip("jupyter_client.kernelspec")
  pytest.importorskip("ipykernel")
  kernels = tmp_path_factory.mktemp("kernels")
  spec_dir = kernels / KERNEL_NAME
  spec_dir.mkdir()
  spec = {
    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "Python 3 (pytest)",
    "language": "python",
  }
  (spec_dir / "kernel.json").write_text(json.dumps(spec))
  return jupyter_client.KernelSpecManager(kernel_dirs=[str(kernels)])


# Executed in the default suite: the quickstart and the stream notebook; the others (20-60 s
# each) under -m slow. The documentation build executes all of them too.
FAST_NOTEBOOKS = ("01_quickstart.ipynb", "04_continual_learning.ipynb")


@pytest.mark.parametrize(
  "path",
  [p if p.name in FAST_NOTEBOOKS else pytest.param(p, marks=pytest.mark.slow) for p in NOTEBOOKS],
  ids=_ids(NOTEBOOKS),
)
def test_notebook_runs(path, kernel_spec_manager, capsys):
  nbclient = pytest.importorskip("nbclient")
  from jupyter_client.manager import KernelManager

  nb = nbformat.read(path, as_version=4)
  km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_spec_manager)
  assert km.kernel_spec.argv[0] == sys.executable
  client = nbclient.NotebookClient(
    nb,
    km=km,
    kernel_name=KERNEL_NAME,
    timeout=CELL_TIMEOUT_S,
    resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
  )
  start = time.perf_counter()
  client.execute()  # Raises CellExecutionError on the first failing cell.
  with capsys.disabled():
    print(f"\n{path.name}: executed in {time.perf_counter() - start:.1f} s")
