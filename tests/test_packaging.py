"""The distributions: the wheel runs the README's Quickstart by name from an empty directory,
and the sdist holds what its tests read."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytest.importorskip("build")


def _build(kind: str, out: pathlib.Path) -> pathlib.Path:
  """Builds the ``--wheel`` or ``--sdist`` of this checkout into ``out`` (no network)."""
  subprocess.run(
    [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "--outdir", str(out), str(ROOT)],
    check=True,
    capture_output=True,
    timeout=600,
  )
  (path,) = out.glob("*.whl" if kind == "wheel" else "*.tar.gz")
  return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  return _build("wheel", tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_the_configs_and_the_types(wheel):
  names = set(zipfile.ZipFile(wheel).namelist())
  assert "metaoptimize_optax/py.typed" in names
  assert "metaoptimize_optax/experiments/configs/quickstart.yaml" in names
  assert "metaoptimize_optax/experiments/configs/meta_parameters/charlm.yaml" in names
  assert not any(n.startswith(("tests/", "docs/", "notebooks/")) for n in names)


@pytest.mark.parametrize(
  "overrides",
  [
    ["--set", "steps=20", "--set", "seeds=1", "--set", "log_every=10", "--set", "eval_every=20"],
    pytest.param([], marks=pytest.mark.slow),  # The README's Quickstart as written.
  ],
  ids=["short", "as-written"],
)
def test_the_wheel_runs_the_quickstart_by_name_from_an_empty_directory(
  wheel, tmp_path, overrides, capsys
):
  """``metaoptimize-optax compare quickstart`` with the package installed from the wheel
  (its dependencies from this environment), in a directory that holds nothing."""
  site = tmp_path / "site"
  subprocess.run(
    [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
    check=True,
    capture_output=True,
    timeout=300,
  )
  empty = tmp_path / "empty"
  empty.mkdir()
  env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu"}
  start = time.perf_counter()
  done = subprocess.run(
    [
      str(site / "bin" / "metaoptimize-optax"),
      "compare",
      "quickstart",
      "--no-progress",
      *overrides,
    ],
    cwd=empty,
    env=env,
    capture_output=True,
    text=True,
    timeout=1200,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert (empty / "results" / "quickstart" / "summary.md").exists()
  assert "AdamW warm-up + cosine" in done.stdout
  where = subprocess.run(
    [sys.executable, "-c", "import metaoptimize_optax as m; print(m.__file__)"],
    cwd=empty,
    env=env,
    capture_output=True,
    text=True,
    check=True,
  )
  assert where.stdout.startswith(str(site))  # The wheel's copy ran, not the checkout.
  with capsys.disabled():
    print(
      f"\nquickstart from the wheel ({overrides or 'as written'}): "
      f"{time.perf_counter() - start:.0f} s"
    )


def test_the_sdist_holds_what_its_tests_read(tmp_path):
  sdist = _build("sdist", tmp_path)
  with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
  for needed in (
    "tests/conftest.py",
    "tests/experiments/conftest.py",
    "tests/experiments/exp_helpers.py",
    "tests/typing/user_code.py",
    "notebooks/01_quickstart.ipynb",
    "docs/conf.py",
    "docs/getting_started.md",
    "README.md",
    "CHANGELOG.md",
    "pyrightconfig.json",
    "metaoptimize_optax/experiments/configs/quickstart.yaml",
  ):
    assert needed in names, needed
  assert not any(n.startswith("docs/_build/") for n in names)
