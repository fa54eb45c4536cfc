"""MNIST-1D (Greydanus & Kobak, 2020), generated locally and cached.

The arrays come from the ``mnist1d`` package's own generator,
``mnist1d.data.make_dataset``, never from its download path: nothing is fetched.
Generating the standard 5000 examples takes a few seconds, so the result is
memoised in-process (keyed on the generator arguments) and, when a
``cache_dir`` is given, stored there as an ``.npz`` file.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import logging
import os
import random
import tempfile

import numpy as np

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Mnist1dArrays:
  """MNIST-1D splits: float32 signals ``(n, 40)`` and int32 labels ``(n,)``.

  The arrays are read-only (they are shared through the cache).
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray


def _read_only(array: np.ndarray, dtype: type) -> np.ndarray:
  array = np.ascontiguousarray(array, dtype=dtype)
  array.setflags(write=False)
  return array


def _as_arrays(x_train, y_train, x_test, y_test) -> Mnist1dArrays:
  return Mnist1dArrays(
    x_train=_read_only(x_train, np.float32),
    y_train=_read_only(y_train, np.int32),
    x_test=_read_only(x_test, np.float32),
    y_test=_read_only(y_test, np.int32),
  )


def _generate(num_samples: int, train_split: float, data_seed: int) -> Mnist1dArrays:
  """Runs the mnist1d generator, keeping the global RNG states it reseeds."""
  from mnist1d.data import get_dataset_args, make_dataset  # Slow import (scipy, matplotlib).

  args = get_dataset_args()
  args.num_samples = num_samples
  args.train_split = train_split
  args.seed = data_seed
  # make_dataset reseeds and draws from the global generators; restore them after.
  numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
  try:
    data = make_dataset(args)
  finally:
    np.random.set_state(numpy_state)  # noqa: NPY002
    random.setstate(python_state)
  return _as_arrays(data["x"], data["y"], data["x_test"], data["y_test"])


def _cache_file(cache_dir: str, num_samples: int, train_split: float, data_seed: int) -> str:
  version = importlib.metadata.version("mnist1d")
  name = f"mnist1d-{version}_n{num_samples}_split{train_split:g}_seed{data_seed}.npz"
  return os.path.join(cache_dir, name)


def load_mnist1d(
  num_samples: int = 5000,
  train_split: float = 0.8,
  data_seed: int = 42,
  cache_dir: str | os.PathLike | None = None,
) -> Mnist1dArrays:
  """The MNIST-1D dataset for these generator arguments (memoised).

  Args:
    num_samples: examples generated (rounded down to a multiple of 10); the
      standard dataset is 5000, split 4000 train / 1000 test.
    train_split: fraction of the examples in the training split.
    data_seed: the generator's seed (42 is the standard dataset).
    cache_dir: optional directory for an ``.npz`` copy of the arrays; read if
      present, written (atomically) otherwise.
  """
  if cache_dir is not None:
    cache_dir = os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
  return _load(int(num_samples), float(train_split), int(data_seed), cache_dir)


@functools.lru_cache(maxsize=8)
def _load(
  num_samples: int, train_split: float, data_seed: int, cache_dir: str | None
) -> Mnist1dArrays:
  """Reads the ``.npz`` copy in ``cache_dir`` or generates (and stores) the data."""
  path = None if cache_dir is None else _cache_file(cache_dir, num_samples, train_split, data_seed)
  if path is not None and os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      logger.info("Loaded MNIST-1D from %s", path)
      return _as_arrays(f["x_train"], f["y_train"], f["x_test"], f["y_test"])
  logger.info(
    "Generating MNIST-1D: %d examples, train split %g, seed %d", num_samples, train_split, data_seed
  )
  arrays = _generate(num_samples, train_split, data_seed)
  if path is not None:
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    try:
      with os.fdopen(fd, "wb") as f:
        np.savez(f, **{k.name: getattr(arrays, k.name) for k in dataclasses.fields(arrays)})
      os.replace(tmp, path)
    except BaseException:
      os.unlink(tmp)
      raise
    logger.info("Cached MNIST-1D at %s", path)
  return arrays
