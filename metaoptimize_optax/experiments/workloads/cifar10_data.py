"""CIFAR-10 from the python-pickle batches, and its standard augmentation.

The data is read from a user-given directory holding the "CIFAR-10 python
version" files (``cifar-10-python.tar.gz`` unpacked: ``cifar-10-batches-py/``);
nothing is downloaded. Images are kept as uint8 NHWC; normalisation happens in
the model's forward pass.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pickle

import numpy as np

logger = logging.getLogger(__name__)

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
# Per-channel statistics of the CIFAR-10 training images (on the 0..1 scale).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

FORMAT = (
  "the CIFAR-10 python version (cifar-10-python.tar.gz from "
  "https://www.cs.toronto.edu/~kriz/cifar.html, unpacked): a directory, usually named "
  "'cifar-10-batches-py', holding the pickle files data_batch_1 ... data_batch_5 and "
  "test_batch, each a dict with b'data' (uint8 array (N, 3072): 1024 red, 1024 green, "
  "1024 blue values of a 32x32 image, row-major) and b'labels' (N ints in 0..9)"
)


@dataclasses.dataclass(frozen=True)
class Cifar10Arrays:
  """uint8 images ``(n, 32, 32, 3)`` and int32 labels ``(n,)``, read-only."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles only plain containers and NumPy arrays, never arbitrary code."""

  _ALLOWED = frozenset(
    {
      ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3.
      ("numpy.core.multiarray", "_reconstruct"),
      ("numpy._core.multiarray", "_reconstruct"),
      ("numpy.core.multiarray", "scalar"),
      ("numpy._core.multiarray", "scalar"),
      ("numpy.core.numeric", "_frombuffer"),
      ("numpy._core.numeric", "_frombuffer"),
      ("numpy", "ndarray"),
      ("numpy", "dtype"),
    }
  )

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}; expected {FORMAT}")
    return super().find_class(module, name)


def find_cifar10(data_path: str | os.PathLike) -> str:
  """The directory holding the CIFAR-10 batches: ``data_path`` or its
  ``cifar-10-batches-py`` subdirectory. FileNotFoundError if neither does."""
  root = os.path.abspath(os.path.expanduser(os.fspath(data_path)))
  needed = (*TRAIN_FILES, TEST_FILE)
  for directory in (root, os.path.join(root, "cifar-10-batches-py")):
    if all(os.path.isfile(os.path.join(directory, f)) for f in needed):
      return directory
  if not os.path.isdir(root):
    raise FileNotFoundError(f"CIFAR-10 data_path {root} does not exist; expected {FORMAT}")
  missing = [f for f in needed if not os.path.isfile(os.path.join(root, f))]
  raise FileNotFoundError(f"CIFAR-10 files {missing} missing from {root}; expected {FORMAT}")


def _read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
  with open(path, "rb") as f:
    batch = _ArrayUnpickler(f, encoding="bytes").load()
  try:
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int32)
  except (KeyError, TypeError) as e:
    raise ValueError(f"{path} is not a CIFAR-10 batch ({e!r}); expected {FORMAT}") from e
  if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
    raise ValueError(
      f"{path}: data {data.shape} and labels {labels.shape} do not match; expected {FORMAT}"
    )
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, labels


def _stack(parts: list[np.ndarray]) -> np.ndarray:
  array = np.ascontiguousarray(np.concatenate(parts))
  array.setflags(write=False)
  return array


@functools.lru_cache(maxsize=2)
def load_cifar10(directory: str) -> Cifar10Arrays:
  """Reads all batches in ``directory`` (see :func:`find_cifar10`); memoised."""
  logger.info("Loading CIFAR-10 from %s", directory)
  train = [_read_batch(os.path.join(directory, f)) for f in TRAIN_FILES]
  x_test, y_test = _read_batch(os.path.join(directory, TEST_FILE))
  return Cifar10Arrays(
    x_train=_stack([x for x, _ in train]),
    y_train=_stack([y for _, y in train]),
    x_test=_stack([x_test]),
    y_test=_stack([y_test]),
  )


def random_crop_flip(images: np.ndarray, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
  """Standard CIFAR augmentation of uint8 NHWC ``images``.

  Each image is zero-padded by ``padding`` pixels, cropped back to its size at
  a uniformly random offset, and mirrored left-right with probability 1/2.
  """
  n, height, width, _ = images.shape
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  dy, dx = rng.integers(0, 2 * padding + 1, size=(2, n))
  flip = rng.random(n) < 0.5
  rows = dy[:, None] + np.arange(height)
  cols = dx[:, None] + np.arange(width)
  cols = np.where(flip[:, None], cols[:, ::-1], cols)
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
