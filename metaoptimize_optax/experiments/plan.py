"""The plan: a config resolved into its workload and each optimizer, built once.

Between the config (:mod:`.config`, YAML to :mod:`.spec` types, checked by
form) and the runner (:mod:`.runner`): :func:`resolve` builds the workload and
every selected optimizer at every grid point exactly once, and initializes
each on the workload's params abstractly, so that whatever only the params can
tell (block prefixes that match no parameter, a run too short for a schedule)
fails before anything is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax

from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments import workloads
from metaoptimize_optax.experiments.spec import (
  ConfigError,
  ExperimentConfig,
  OptimizerConfig,
  WorkloadConfig,
)
from metaoptimize_optax.experiments.workloads.base import Workload


@dataclasses.dataclass(frozen=True)
class Plan:
  """What an experiment runs: its workload and each selected optimizer, built."""

  workload: Workload
  # (display name, grid point label) -> the optimizer built at that point.
  optimizers: Mapping[tuple[str, str], optimizer_lib.BuiltOptimizer]
  selected: tuple[OptimizerConfig, ...]  # The optimizers to run, in the config's order.


def build_workload(config: WorkloadConfig) -> Workload:
  """The workload a config names, or a :class:`ConfigError` saying what is wrong.

  An unknown name or option lists the valid ones; a missing data path names the
  expected format (the workload's own message).
  """
  if config.name not in workloads.WORKLOADS and ":" not in config.name:
    raise ConfigError(
      f"unknown workload {config.name!r}; valid workloads: "
      f"{', '.join(sorted(workloads.WORKLOADS))}; or 'package.module:factory' for your own."
    )
  try:
    return workloads.get_workload(config.name, **config.options)
  except (TypeError, ValueError, OSError) as e:
    raise ConfigError(f"workload {config.name!r}: {e}") from None


def resolve(
  config: ExperimentConfig,
  workload: Workload | None = None,
  names: Sequence[str] | None = None,
) -> Plan:
  """Builds the workload (unless given) and each optimizer of ``config`` (or those
  ``names``, display names) at each grid point, once.

  Raises:
    ConfigError: naming the optimizer and grid point that cannot be built or
      initialized on the workload's params.
  """
  workload = build_workload(config.workload) if workload is None else workload
  selected = tuple(o for o in config.optimizers if not names or o.display_name in names)
  params, _ = jax.eval_shape(workload.init, jax.random.PRNGKey(0))
  built = {}
  for opt in selected:
    for point in opt.points():
      where = f"optimizers[{opt.display_name!r}]" + (
        f" (grid point {point.label})" if point.label else ""
      )
      try:
        optimizer = optimizer_lib.build_optimizer(opt.name, config.steps, point.params)
        jax.eval_shape(optimizer.tx.init, params)
      except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None
      built[opt.display_name, point.label] = optimizer
  return Plan(workload=workload, optimizers=built, selected=selected)
