"""The workload registry: names to factories, and option checking."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any

from metaoptimize_optax.experiments.workloads.base import Workload
from metaoptimize_optax.experiments.workloads.charlm import charlm
from metaoptimize_optax.experiments.workloads.cifar10_resnet import cifar10_resnet18
from metaoptimize_optax.experiments.workloads.continual_mnist1d import continual_mnist1d
from metaoptimize_optax.experiments.workloads.mnist1d_classification import (
  mnist1d_cnn,
  mnist1d_mlp,
)
from metaoptimize_optax.experiments.workloads.noisy_quadratic import noisy_quadratic
from metaoptimize_optax.experiments.workloads.tinystories import tinystories_llama
from metaoptimize_optax.experiments.workloads.tracking import tracking

# Read-only: workload name -> factory taking keyword-only options.
WORKLOADS: Mapping[str, Callable[..., Workload]] = types.MappingProxyType(
  {
    "noisy_quadratic": noisy_quadratic,
    "tracking": tracking,
    "mnist1d_mlp": mnist1d_mlp,
    "mnist1d_cnn": mnist1d_cnn,
    "continual_mnist1d": continual_mnist1d,
    "charlm": charlm,
    "cifar10_resnet18": cifar10_resnet18,
    "tinystories_llama": tinystories_llama,
  }
)


def workload_options(name: str) -> dict[str, Any]:
  """The options of workload ``name``: option -> default (``inspect.Parameter.empty``
  for a required option)."""
  factory = _factory(name)
  return {
    p.name: p.default
    for p in inspect.signature(factory).parameters.values()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
  }


def _factory(name: str) -> Callable[..., Workload]:
  if name not in WORKLOADS:
    raise ValueError(f"unknown workload {name!r}; valid names: {', '.join(sorted(WORKLOADS))}")
  return WORKLOADS[name]


def get_workload(name: str, **kwargs: Any) -> Workload:
  """Builds workload ``name`` with the given options.

  Raises:
    ValueError: for an unknown name (listing the valid ones) or a bad option value.
    TypeError: for an unknown option or a missing required one (listing the
      accepted options).
  """
  factory = _factory(name)
  accepted = workload_options(name)
  listing = ", ".join(
    k if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in accepted.items()
  )
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise TypeError(
      f"unknown option(s) {', '.join(unknown)} for workload {name!r}; accepted options: {listing}"
    )
  missing = [k for k, v in accepted.items() if v is inspect.Parameter.empty and k not in kwargs]
  if missing:
    raise TypeError(
      f"workload {name!r} requires option(s) {', '.join(missing)}; accepted options: {listing}"
    )
  return factory(**kwargs)
