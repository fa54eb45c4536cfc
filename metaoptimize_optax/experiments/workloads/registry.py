"""The workload registry: names to factories, and option checking.

A workload name is one of :data:`WORKLOADS`, or ``"package.module:factory"``: a user's
factory, imported (from the current directory or the environment, as ``python -m`` would) and
called with the config's options as keyword arguments; it must return a
:class:`~metaoptimize_optax.experiments.workloads.base.Workload`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from metaoptimize_optax.experiments.workloads.base import AgentWorkload, Workload
from metaoptimize_optax.experiments.workloads.charlm import charlm
from metaoptimize_optax.experiments.workloads.cifar10_resnet import cifar10_resnet18
from metaoptimize_optax.experiments.workloads.continual_mnist1d import continual_mnist1d
from metaoptimize_optax.experiments.workloads.drifting_regression import drifting_regression
from metaoptimize_optax.experiments.workloads.input_permuted_mnist1d import input_permuted_mnist1d
from metaoptimize_optax.experiments.workloads.mnist1d_classification import (
  mnist1d_cnn,
  mnist1d_mlp,
)
from metaoptimize_optax.experiments.workloads.noisy_quadratic import noisy_quadratic
from metaoptimize_optax.experiments.workloads.ppo import ppo
from metaoptimize_optax.experiments.workloads.slowly_changing_regression import (
  slowly_changing_regression,
)
from metaoptimize_optax.experiments.workloads.tinystories import tinystories_llama
from metaoptimize_optax.experiments.workloads.tracking import tracking

# Read-only: workload name -> factory taking keyword-only options.
WORKLOADS: Mapping[str, Callable[..., Workload | AgentWorkload]] = types.MappingProxyType(
  {
    "noisy_quadratic": noisy_quadratic,
    "tracking": tracking,
    "mnist1d_mlp": mnist1d_mlp,
    "mnist1d_cnn": mnist1d_cnn,
    "continual_mnist1d": continual_mnist1d,
    "input_permuted_mnist1d": input_permuted_mnist1d,
    "slowly_changing_regression": slowly_changing_regression,
    "drifting_regression": drifting_regression,
    "charlm": charlm,
    "cifar10_resnet18": cifar10_resnet18,
    "tinystories_llama": tinystories_llama,
    "ppo": ppo,
  }
)


def workload_options(name: str) -> dict[str, Any]:
  """The options of workload ``name``: option -> default (``inspect.Parameter.empty``
  for a required option)."""
  factory = _factory(name)
  return {
    p.name: p.default
    for p in inspect.signature(factory).parameters.values()
    if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
  }


def is_user_workload(name: str) -> bool:
  """Whether ``name`` names a user's factory, ``"package.module:factory"``."""
  return ":" in name


@contextlib.contextmanager
def _cwd_on_path() -> Iterator[None]:
  """The current directory on ``sys.path`` (as ``python -m`` puts it), for one import."""
  cwd = os.getcwd()
  added = cwd not in sys.path and "" not in sys.path
  if added:
    sys.path.insert(0, cwd)
  try:
    yield
  finally:
    if added and cwd in sys.path:
      sys.path.remove(cwd)


def import_factory(name: str) -> Callable[..., Workload | AgentWorkload]:
  """The factory that ``name`` (``"package.module:factory"``) names.

  Raises:
    ValueError: for a malformed name, a module that cannot be imported, or a missing or
      non-callable factory.
  """
  module_name, _, attr = name.partition(":")
  if not module_name or not attr:
    raise ValueError(f"{name!r} is not 'package.module:factory' (e.g. 'my_workloads:digits')")
  try:
    with _cwd_on_path():
      module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(
      f"cannot import {module_name!r} ({e}); a workload module must be importable from the "
      "current directory or the Python environment"
    ) from e
  factory: Any = module
  for part in attr.split("."):
    factory = getattr(factory, part, None)
  if not callable(factory):
    raise ValueError(f"module {module_name!r} has no callable {attr!r}")
  return factory


def _factory(name: str) -> Callable[..., Workload | AgentWorkload]:
  if is_user_workload(name):
    return import_factory(name)
  if name not in WORKLOADS:
    raise ValueError(
      f"unknown workload {name!r}; valid names: {', '.join(sorted(WORKLOADS))}, or "
      "'package.module:factory' for your own"
    )
  return WORKLOADS[name]


def get_workload(name: str, **kwargs: Any) -> Workload | AgentWorkload:
  """Builds workload ``name`` with the given options.

  Raises:
    ValueError: for an unknown name (listing the valid ones) or a bad option value.
    TypeError: for an unknown option or a missing required one (listing the
      accepted options), or a user's factory that returns no ``Workload``.
  """
  factory = _factory(name)
  accepted = workload_options(name)
  listing = ", ".join(
    k if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in accepted.items()
  )
  takes_any = any(
    p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()
  )
  unknown = [] if takes_any else sorted(set(kwargs) - set(accepted))
  if unknown:
    raise TypeError(
      f"unknown option(s) {', '.join(unknown)} for workload {name!r}; accepted options: {listing}"
    )
  missing = [k for k, v in accepted.items() if v is inspect.Parameter.empty and k not in kwargs]
  if missing:
    raise TypeError(
      f"workload {name!r} requires option(s) {', '.join(missing)}; accepted options: {listing}"
    )
  workload = factory(**kwargs)
  if not isinstance(workload, Workload | AgentWorkload):
    raise TypeError(
      f"the factory of workload {name!r} returned a {type(workload).__name__}, not a "
      "metaoptimize_optax.experiments.workloads.Workload or AgentWorkload"
    )
  return workload
