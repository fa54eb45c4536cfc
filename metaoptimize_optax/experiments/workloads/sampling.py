"""Deterministic data sampling: every draw is a pure function of its indices.

Each random draw of a workload comes from its own NumPy generator seeded with
``[seed, stream, index]``: ``seed`` is the run's data seed, ``stream`` a constant
naming what is drawn (minibatch order, augmentation, ...), and ``index`` the
epoch, step or task. A run resumed at any step therefore sees exactly the data
an uninterrupted run would have seen, and distinct streams never share draws.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np


class Stream(enum.IntEnum):
  """What a generator draws; part of its seed so the streams are independent."""

  EPOCH_ORDER = 0
  STEP = 1
  AUGMENT = 2
  TASK = 3
  TARGET = 4
  EVAL = 5
  INIT = 6


def _non_negative_int(name: str, value: int) -> int:
  if isinstance(value, bool) or int(value) != value or value < 0:
    raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
  return int(value)


def stream_rng(seed: int, stream: Stream, index: int = 0) -> np.random.Generator:
  """The generator of draw ``index`` of ``stream`` for data seed ``seed``."""
  return np.random.default_rng(
    [_non_negative_int("seed", seed), int(stream), _non_negative_int("index", index)]
  )


def epoch_batch_indices(seed: int, step: int, num_examples: int, batch_size: int) -> np.ndarray:
  """Example indices of minibatch ``step``: epochs of shuffled, disjoint batches.

  Epoch ``e`` visits the examples in the order of a random permutation drawn
  from ``stream_rng(seed, EPOCH_ORDER, e)``, ``num_examples // batch_size``
  batches per epoch (the remainder of each permutation is skipped).
  """
  step = _non_negative_int("step", step)
  steps_per_epoch = num_examples // batch_size
  if steps_per_epoch < 1:
    raise ValueError(f"batch_size {batch_size} exceeds the {num_examples} training examples")
  epoch, position = divmod(step, steps_per_epoch)
  order = stream_rng(seed, Stream.EPOCH_ORDER, epoch).permutation(num_examples)
  return order[position * batch_size : (position + 1) * batch_size]


def consecutive_slices(num_examples: int, batch_size: int) -> list[slice]:
  """Consecutive slices of at most ``batch_size`` covering ``range(num_examples)``."""
  return [slice(i, min(i + batch_size, num_examples)) for i in range(0, num_examples, batch_size)]


def _window_counts(segments: Sequence[np.ndarray], length: int, stride: int) -> np.ndarray:
  sizes = np.array([len(s) for s in segments], dtype=np.int64)
  return np.maximum((sizes - length) // stride + 1, 0)


def _gather_windows(
  segments: Sequence[np.ndarray], window_ids: np.ndarray, length: int, stride: int
) -> np.ndarray:
  """Windows ``window_ids`` (counted across segments) as an int32 array."""
  counts = _window_counts(segments, length, stride)
  bounds = np.cumsum(counts)
  which = np.searchsorted(bounds, window_ids, side="right")
  starts = (window_ids - (bounds[which] - counts[which])) * stride
  windows = [segments[s][o : o + length] for s, o in zip(which, starts, strict=True)]
  return np.stack(windows).astype(np.int32)


def num_windows(segments: Sequence[np.ndarray], length: int, stride: int = 1) -> int:
  """How many ``length``-long windows at multiples of ``stride`` fit in ``segments``."""
  return int(_window_counts(segments, length, stride).sum())


def sample_windows(
  segments: Sequence[np.ndarray], rng: np.random.Generator, count: int, length: int
) -> np.ndarray:
  """``count`` windows of ``length`` tokens, uniform over all start positions.

  ``segments`` are 1-D token arrays (in-memory or memory-mapped); a window never
  straddles two segments. Returns int32 ``(count, length)``.
  """
  total = num_windows(segments, length)
  if total < 1:
    raise ValueError(f"no segment holds a window of {length} tokens")
  return _gather_windows(segments, rng.integers(0, total, size=count), length, 1)


def spaced_windows(segments: Sequence[np.ndarray], count: int, length: int) -> np.ndarray:
  """Up to ``count`` disjoint windows, evenly spread over ``segments``.

  The candidates are the non-overlapping windows ``[k * length, (k + 1) *
  length)`` of each segment; ``count`` of them at evenly spaced ranks are taken
  (all of them when there are fewer). Returns int32 ``(n, length)``.
  """
  total = num_windows(segments, length, stride=length)
  if total < 1:
    raise ValueError(f"no segment holds a window of {length} tokens")
  ids = np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(np.int64))
  return _gather_windows(segments, ids, length, length)
