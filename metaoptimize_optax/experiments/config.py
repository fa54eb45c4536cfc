"""Experiment configs: YAML in, a validated, frozen :class:`ExperimentConfig` out.

A config names one workload, a training budget and the optimizers to compare::

  description: MetaOptimize against tuned peers on MNIST-1D.
  workload: {name: mnist1d_mlp, options: {}}   # options go to get_workload; or a user's
                                               # factory: {name: "my_module:factory", ...}
  steps: 2000              # the budget of every run; default: the workload's default_steps
  seeds: 3                 # a count (0, 1, 2) or a list of seeds; default 1
  log_every: 50            # training metrics (mean over the interval); default steps // 100
  eval_every: 500          # evaluation; 0 = only at the end; default steps // 10
  checkpoint_every: 0      # Orbax checkpoints for --resume; 0 = none; a multiple of log_every
  output_dir: results/quickstart   # default results/<config file stem>
  target_loss: 0.5         # for "steps to target" (training loss); optional
  data_parallel: true      # split the batch over all visible devices
  optimizers:              # display name -> registry name and parameters
    MetaOptimize: {name: metaoptimize, base: adamw, meta: lion, initial_learning_rate: 1.0e-4}
    Adafactor: {name: optax.adafactor, learning_rate: 1.0e-2}   # any Optax alias
    AdamW (tuned):
      name: adamw
      grid: {learning_rate: [1.0e-3, 3.0e-3, 1.0e-2]}   # every point, same budget

Every problem is a :class:`ConfigError` with one clear message: unknown keys
list the valid ones, unknown optimizers and parameters list the valid ones
(see :mod:`metaoptimize_optax.experiments.optimizers`). Numbers such as ``1e-3``
are read as floats (plain YAML 1.1 would read them as strings).
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments import plan
from metaoptimize_optax.experiments.spec import (
  TOP_LEVEL_KEYS,
  WORKLOAD_KEYS,
  ConfigError,
  ExperimentConfig,
  GridPoint,
  OptimizerConfig,
  WorkloadConfig,
  format_value,
  slugify,
)

__all__ = [
  "ConfigError",
  "ExperimentConfig",
  "GridPoint",
  "OptimizerConfig",
  "WorkloadConfig",
  "format_value",
  "from_dict",
  "load_config",
  "parse_yaml",
  "slugify",
]


class _Loader(yaml.SafeLoader):
  """SafeLoader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
  "tag:yaml.org,2002:float",
  re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""",
    re.X,
  ),
  list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
  """YAML text as Python data, ``1e-3`` read as a float."""
  return yaml.load(text, Loader=_Loader)  # A SafeLoader.


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
  """``raw`` with ``KEY.PATH=VALUE`` overrides applied (values parsed as YAML)."""
  raw = dict(raw)
  for item in overrides:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set steps=100.")
    *parents, leaf = key.split(".")
    node = raw
    for i, part in enumerate(parents):
      child = node.get(part)
      if child is None:
        child = {}
      elif not isinstance(child, dict):
        raise ConfigError(f"--set {item!r}: {'.'.join(parents[: i + 1])} is not a mapping.")
      node[part] = child = dict(child)
      node = child
    node[leaf] = parse_yaml(value)
  return raw


def effective_description(path: str | pathlib.Path, overrides: Sequence[str]) -> str:
  """The description of a config file run with ``--set`` overrides."""
  sets = " ".join(f"--set {item}" for item in overrides)
  return f"{path} with {sets} (the file's description is left out: it describes the file's values)."


BUILTIN_DIR = pathlib.Path(__file__).resolve().parent / "configs"  # Shipped in the wheel.


def builtin_configs() -> dict[str, pathlib.Path]:
  """The built-in configs by name (``"quickstart"``, ``"meta_parameters/charlm"``, ...)."""
  return {
    p.relative_to(BUILTIN_DIR).with_suffix("").as_posix(): p
    for p in sorted(BUILTIN_DIR.rglob("*.yaml"))
  }


def config_path(path_or_name: str | pathlib.Path) -> pathlib.Path:
  """The file of a config given by path or by built-in name (a file that exists wins).

  Raises:
    ConfigError: when it is neither an existing file nor a built-in name (the message lists
      the built-in names).
  """
  path = pathlib.Path(path_or_name)
  if path.exists():
    return path
  builtin = builtin_configs()
  name = path.as_posix().removesuffix(".yaml")
  if name in builtin:
    return builtin[name]
  raise ConfigError(
    f"cannot read config {str(path_or_name)!r}: no such file, and not a built-in config; "
    f"the built-in ones: {', '.join(builtin)}."
  )


def load_config(path: str | pathlib.Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
  """Reads and validates a YAML config, by path or built-in name, with ``--set`` overrides.

  The config describes what runs: when an override changes anything but ``output_dir`` and
  none sets ``description``, the file's description (written for the file's values) is
  replaced by one naming the file and the overrides.

  Raises:
    ConfigError: for a missing or unreadable file, bad YAML or an invalid config.
  """
  file = config_path(path)  # ``path`` names the config in messages, as the user gave it.
  try:
    text = file.read_text()
  except OSError as e:
    raise ConfigError(f"cannot read config {str(path)!r}: {e.strerror or e}.") from e
  try:
    raw = parse_yaml(text)
  except yaml.YAMLError as e:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    raise ConfigError(f"{path}: not valid YAML{where}: {problem}.") from e
  if raw is None:
    raw = {}
  if not isinstance(raw, dict):
    raise ConfigError(
      f"{path}: expected a mapping of config keys at the top level, got {type(raw).__name__}."
    )
  raw = apply_overrides(raw, overrides)
  keys = [item.partition("=")[0] for item in overrides]
  if any(k != "output_dir" for k in keys) and "description" not in keys:
    raw["description"] = effective_description(path, overrides)
  try:
    return from_dict(raw, str(pathlib.Path("results") / file.stem))
  except ConfigError as e:
    raise ConfigError(f"{path}: {e}") from None


def _check_keys(where: str, got: Mapping[str, Any], valid: Sequence[str]) -> None:
  unknown = [str(k) for k in got if k not in valid]
  if unknown:
    raise ConfigError(
      f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; valid keys: {', '.join(valid)}."
    )


def _int(name: str, value: Any, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  return value


def _seeds(value: Any) -> tuple[int, ...]:
  if isinstance(value, int) and not isinstance(value, bool):
    if value < 1:
      raise ConfigError(f"seeds must be a count >= 1 or a list of integers, got {value!r}.")
    return tuple(range(value))
  if (
    isinstance(value, list)
    and value
    and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
  ):
    if len(set(value)) != len(value):
      raise ConfigError(f"seeds must not repeat, got {value!r}.")
    return tuple(value)
  raise ConfigError(
    f"seeds must be a count >= 1 or a non-empty list of integers >= 0, got {value!r}."
  )


def _optimizer(display_name: Any, raw: Any) -> OptimizerConfig:
  where = f"optimizers[{display_name!r}]"
  if not isinstance(display_name, str) or not display_name.strip():
    raise ConfigError(f"optimizer display names must be non-empty strings, got {display_name!r}.")
  if not isinstance(raw, dict) or "name" not in raw:
    raise ConfigError(
      f"{where} must be a mapping with a 'name' (one of "
      f"{', '.join(optimizer_lib.optimizer_names())}) and its parameters."
    )
  params = dict(raw)
  name = params.pop("name")
  grid = params.pop("grid", None) or {}
  if not optimizer_lib.is_optimizer_name(name):
    raise ConfigError(
      f"{where}: unknown optimizer {name!r}; valid names: "
      f"{', '.join(optimizer_lib.optimizer_names())}"
      ", or optax.<alias> (any Optax optimizer, e.g. optax.adafactor)."
    )
  if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
    raise ConfigError(
      f"{where}.grid must map parameter names to non-empty lists of values, "
      f"e.g. grid: {{learning_rate: [1.0e-3, 3.0e-3]}}; got {grid!r}."
    )
  overlap = sorted(set(grid) & set(params))
  if overlap:
    raise ConfigError(f"{where}: {', '.join(overlap)} given both as a parameter and in grid.")
  config = OptimizerConfig(display_name, name, params, {k: tuple(v) for k, v in grid.items()})
  for point in config.points():  # Checked by name and value; built once, by the plan.
    try:
      optimizer_lib.check_parameters(name, point.params)
    except optimizer_lib.OptimizerError as e:
      at = f" (grid point {point.label})" if point.label else ""
      raise ConfigError(f"{where}{at}: {e}") from None
  return config


def from_dict(raw: Mapping[str, Any], default_output_dir: str = "results") -> ExperimentConfig:
  """Validates plain config data (the YAML schema) into an :class:`ExperimentConfig`.

  Each optimizer is checked by its name, its parameters' names and their
  numeric values; it is built once, by :func:`.plan.resolve`.

  The workload's name and options are checked when the workload is built
  (:func:`metaoptimize_optax.experiments.plan.build_workload`), before any run.

  Raises:
    ConfigError: for any invalid key or value.
  """
  if not isinstance(raw, Mapping):
    raise ConfigError("expected a mapping of config keys at the top level.")
  _check_keys("the config", raw, TOP_LEVEL_KEYS)
  for key in ("workload", "optimizers"):  # "steps" is checked below.
    if key not in raw:
      raise ConfigError(f"missing required key {key!r}.")

  workload = raw["workload"]
  if isinstance(workload, str):
    workload = {"name": workload}
  if not isinstance(workload, dict) or "name" not in workload:
    raise ConfigError("workload must be a mapping {name: <workload>, options: {...}}.")
  _check_keys("workload", workload, WORKLOAD_KEYS)
  options = workload.get("options") or {}
  if not isinstance(options, dict):
    raise ConfigError(f"workload.options must be a mapping, got {options!r}.")
  if not isinstance(workload["name"], str):
    raise ConfigError(f"workload.name must be a string, got {workload['name']!r}.")
  workload_config = WorkloadConfig(workload["name"], options)

  if "steps" in raw:
    steps = _int("steps", raw["steps"], 1)
  else:  # The workload's suggested run length (a stream: its tasks times their length).
    steps = plan.build_workload(workload_config).default_steps
  log_every = _int("log_every", raw.get("log_every", max(1, steps // 100)), 1)
  eval_every = _int("eval_every", raw.get("eval_every", max(1, steps // 10)) or 0, 0)
  checkpoint_every = _int("checkpoint_every", raw.get("checkpoint_every") or 0, 0)
  if checkpoint_every and checkpoint_every % log_every:
    raise ConfigError(
      f"checkpoint_every ({checkpoint_every}) must be a multiple of log_every "
      f"({log_every}), so that a resumed run logs exactly what an "
      "uninterrupted one does."
    )
  seeds = _seeds(raw.get("seeds", 1))

  target_loss = raw.get("target_loss")
  if target_loss is not None and not (
    isinstance(target_loss, int | float)
    and not isinstance(target_loss, bool)
    and math.isfinite(target_loss)
  ):
    raise ConfigError(f"target_loss must be a finite number, got {target_loss!r}.")
  output_dir = raw.get("output_dir") or default_output_dir
  if not isinstance(output_dir, str):
    raise ConfigError(f"output_dir must be a path, got {output_dir!r}.")
  data_parallel = raw.get("data_parallel", True)
  if not isinstance(data_parallel, bool):
    raise ConfigError(f"data_parallel must be true or false, got {data_parallel!r}.")
  description = raw.get("description") or ""

  optimizers = raw["optimizers"]
  if not isinstance(optimizers, dict) or not optimizers:
    raise ConfigError(
      "optimizers must be a non-empty mapping display name -> "
      "{name: <registry name>, ...parameters}; valid registry names: "
      f"{', '.join(optimizer_lib.optimizer_names())}."
    )
  opts = tuple(_optimizer(k, v) for k, v in optimizers.items())
  slugs = [o.slug for o in opts]
  clash = sorted({s for s in slugs if slugs.count(s) > 1})
  if clash:
    raise ConfigError(
      f"optimizer display names map to the same directory name(s) {clash}; rename them."
    )

  return ExperimentConfig(
    workload=workload_config,
    optimizers=opts,
    steps=steps,
    seeds=seeds,
    log_every=log_every,
    eval_every=eval_every,
    checkpoint_every=checkpoint_every,
    output_dir=output_dir,
    target_loss=None if target_loss is None else float(target_loss),
    data_parallel=data_parallel,
    description=str(description),
  )
