"""Checks of workload options, with errors that name the offending option."""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any


def positive_int(name: str, value: Any) -> int:
  """``value`` as an int, or ValueError unless it is a positive integer."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ValueError(f"option {name} must be a positive integer, got {value!r}")
  return int(value)


def non_negative_int(name: str, value: Any) -> int:
  """``value`` as an int, or ValueError unless it is an integer >= 0."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
    raise ValueError(f"option {name} must be an integer >= 0, got {value!r}")
  return int(value)


def non_negative_float(name: str, value: Any) -> float:
  """``value`` as a float, or ValueError unless it is a number >= 0."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
    raise ValueError(f"option {name} must be a number >= 0, got {value!r}")
  return float(value)


def fraction(name: str, value: Any) -> float:
  """``value`` as a float, or ValueError unless ``0 < value < 1``."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
    raise ValueError(f"option {name} must be a number strictly between 0 and 1, got {value!r}")
  return float(value)


def positive_ints(name: str, value: Any) -> tuple[int, ...]:
  """A sequence of positive integers (a YAML list, say) as a tuple."""
  if isinstance(value, str) or not isinstance(value, Sequence):
    raise ValueError(f"option {name} must be a list of positive integers, got {value!r}")
  return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def one_of(name: str, value: Any, choices: Sequence[str]) -> str:
  """``value``, or ValueError unless it is one of ``choices``."""
  if value not in choices:
    raise ValueError(f"option {name} must be one of {list(choices)}, got {value!r}")
  return value


def path_or_none(name: str, value: Any) -> str | None:
  """A filesystem path option (expanded) or ``None``."""
  if value is None:
    return None
  if not isinstance(value, str | os.PathLike):
    raise ValueError(f"option {name} must be a path, got {value!r}")
  return os.path.abspath(os.path.expanduser(os.fspath(value)))
