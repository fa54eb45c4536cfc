"""Experiment workloads: data, model and loss of each training task.

Use ``get_workload(name, **options)``; ``WORKLOADS`` maps every name to its
factory, whose keyword-only arguments are the accepted options. Both are
imported on first use, so importing ``workloads.base`` alone stays cheap (no
Flax, no models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaoptimize_optax.experiments.workloads.base import Agent, AgentWorkload, Workload

if TYPE_CHECKING:
  from metaoptimize_optax.experiments.workloads.registry import (
    WORKLOADS,
    get_workload,
    workload_options,
  )

_REGISTRY_NAMES = frozenset({"WORKLOADS", "get_workload", "workload_options"})


def __getattr__(name: str) -> Any:
  if name in _REGISTRY_NAMES:
    from metaoptimize_optax.experiments.workloads import registry

    return getattr(registry, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["WORKLOADS", "Agent", "AgentWorkload", "Workload", "get_workload", "workload_options"]
