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
from metaoptimize_optax.experiments.workloads.base import AgentWorkload, Workload


@dataclasses.dataclass(frozen=True)
class Plan:
  """What an experiment runs: its workload and each selected optimizer, built."""

  workload: Workload | AgentWorkload
  # (display name, grid point label) -> the optimizer built at that point.
  optimizers: Mapping[tuple[str, str], optimizer_lib.BuiltOptimizer]
  selected: tuple[OptimizerConfig, ...]  # The optimizers to run, in the config's order.


def build_workload(config: WorkloadConfig) -> Workload | AgentWorkload:
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
  workload: Workload | AgentWorkload | None = None,
  names: Sequence[str] | None = None,
) -> Plan:
  """Builds the workload (unless given) and each optimizer of ``config`` (or those
  ``names``, display names) at each grid point, once.

  Raises:
    ConfigError: naming the optimizer and grid point that cannot be built or
      initialized on the workload's params.
  """
  workload = build_workload(config.workload) if workload is None else workload
  if isinstance(workload, AgentWorkload):
    _check_agent_config(config, workload)
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


def _check_agent_config(config: ExperimentConfig, workload: AgentWorkload) -> None:
  """What an agent workload's runs cannot do: part of an iteration, evaluations between
  iterations, checkpoints (its seeds run together, in chunks of iterations)."""
  per_iteration = workload.updates_per_iteration
  if config.steps % per_iteration:
    whole = config.steps // per_iteration * per_iteration
    raise ConfigError(
      f"steps={config.steps} must be a multiple of the {per_iteration} optimizer updates of one "
      f"iteration of workload {workload.name!r}, e.g. {whole}"
    )
  for key in ("eval_every", "checkpoint_every"):
    if getattr(config, key):
      raise ConfigError(
        f"{key}={getattr(config, key)} is not supported by workload {workload.name!r} "
        "(an agent's returns are scored as it trains); set it to 0"
      )
