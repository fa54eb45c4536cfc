"""The runner: trains every (optimizer, grid point, seed) of a config.

Each optimizer gets one jitted, pure train step
``(params, model_state, opt_state, batch, step) -> (params, model_state,
opt_state, metrics)`` that donates the training state; MetaOptimize with
``hessian="hvp"`` is handed ``value_fn``, the loss of the current batch as a
function of the params, and MoMo ``value``, that loss at the params. The host
only dispatches steps, and every ``log_every`` steps fetches the interval's
losses, checks them for divergence and writes one record to the run's
``metrics.jsonl`` (see :mod:`.results`).

The training metrics are *online*: the loss (and accuracy) of each batch at the
params before the update on that batch, i.e. on data the learner has not yet
trained on, the score of a learner on a stream. Each ``train`` record holds
their mean over the interval, so the step-weighted mean of the records is the
mean online loss of the whole run, exactly.

Evaluation runs every ``eval_every`` steps and at the end; Orbax checkpoints
every ``checkpoint_every`` steps let ``resume=True`` continue a run to exactly
the metrics of an uninterrupted one.

When several devices are visible the batch is split over a 1-D mesh of them
(``jax.sharding``), params and optimizer state replicated; the result is the
one-device result up to floating-point summation order.

A run whose training loss is not finite stops, with a ``diverged`` record
saying at which step; the other runs go on.

An agent workload (:class:`.workloads.base.AgentWorkload`, reinforcement learning)
collects its own data, so it takes its own path (:func:`train_agent_runs`): the seeds of
a grid point train together under ``jax.vmap`` in jitted chunks of iterations, each
seed writing its own records, scored by ``final_return`` and ``online_return``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import pathlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
import yaml
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments import plan as plan_lib
from metaoptimize_optax.experiments import results
from metaoptimize_optax.experiments.checkpoints import RunCheckpointer
from metaoptimize_optax.experiments.config import (
  ConfigError,
  ExperimentConfig,
  GridPoint,
  OptimizerConfig,
)
from metaoptimize_optax.experiments.workloads.base import (
  FINAL_RETURN_SHARE,
  AgentWorkload,
  Workload,
)

logger = logging.getLogger(__name__)

TrainStep = Callable[..., tuple[Any, Any, Any, dict[str, Any]]]
# The key of a train step's metrics under which the optimizer's per-step values travel.
OPTIMIZER_VALUES = "optimizer_values"


@dataclasses.dataclass(frozen=True)
class RunResult:
  """How one run ended."""

  optimizer: str  # Display name.
  grid_point: str  # "" without a grid.
  seed: int
  status: str  # "finished", "diverged" or "stopped" (stop_after reached).
  step: int  # Updates done.
  reason: str = ""  # Why it diverged.
  final_loss: float | None = None  # results.final_train_loss of the run.


# ----------------------------------------------------------------------------
# Workload and devices.


def data_mesh(batch_size: int, data_parallel: bool = True) -> Mesh:
  """A 1-D mesh (axis ``"data"``) over the devices that split ``batch_size`` evenly.

  All visible devices when they divide the batch; otherwise the largest count
  that does (with a warning); one device when ``data_parallel`` is false.
  """
  devices = jax.devices()
  n = len(devices) if data_parallel else 1
  while batch_size % n:
    n -= 1
  if n < len(devices) and data_parallel:
    logger.warning(
      "batch size %d is not divisible by %d devices; using %d.", batch_size, len(devices), n
    )
  return Mesh(np.asarray(devices[:n]), ("data",))


def _batch_sharding(mesh: Mesh, batch: Mapping[str, np.ndarray]) -> NamedSharding:
  sizes = {np.shape(x)[0] for x in jax.tree.leaves(batch)}
  n = mesh.devices.size
  split = len(sizes) == 1 and sizes.pop() % n == 0
  return NamedSharding(mesh, P("data") if split else P())


def _batch_size(batch: Mapping[str, np.ndarray]) -> int:
  return int(np.shape(jax.tree.leaves(batch)[0])[0])


# ----------------------------------------------------------------------------
# Pure train and eval steps.


def make_train_step(workload: Workload, optimizer: optimizer_lib.BuiltOptimizer) -> TrainStep:
  """The pure train step of ``workload`` under ``optimizer`` (not yet jitted).

  ``train_step(params, model_state, opt_state, batch, step)`` returns the new
  ``(params, model_state, opt_state)`` and the step's metrics: the workload's
  (``loss``, ``accuracy``, ...) of ``batch`` at the params *before* the update,
  i.e. the online metrics, and under :data:`OPTIMIZER_VALUES` the optimizer's
  values in effect at this step (:meth:`.optimizers.BuiltOptimizer.per_step_values`:
  ``learning_rate``, ``meta_parameters``, ...).
  """

  def train_step(params, model_state, opt_state, batch, step):
    def loss_fn(p):
      return workload.loss(p, model_state, batch, True)

    (loss, (metrics, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    values = optimizer.per_step_values(opt_state, step)  # Before the step, like the loss.
    updates, opt_state = optimizer.update(
      grads, opt_state, params, value_fn=lambda p: loss_fn(p)[0], value=loss
    )
    params = optax.apply_updates(params, updates)
    metrics = {**metrics, "loss": loss, OPTIMIZER_VALUES: values}
    return params, new_model_state, opt_state, metrics

  return train_step


def make_eval_step(workload: Workload) -> Callable[..., dict[str, jax.Array]]:
  """``eval_step(params, model_state, batch) -> metrics`` (batch means), not yet jitted."""

  def eval_step(params, model_state, batch):
    _, (metrics, _) = workload.loss(params, model_state, batch, False)
    return metrics

  return eval_step


@dataclasses.dataclass(frozen=True)
class WorkloadFunctions:
  """The jitted functions of a workload on a mesh, shared by every optimizer."""

  workload: Workload
  mesh: Mesh
  init: Callable[[jax.Array], tuple[Any, Any]]  # key -> (params, model_state), replicated.
  eval_step: Callable[..., dict[str, jax.Array]]


def compile_workload(workload: Workload, mesh: Mesh) -> WorkloadFunctions:
  """Jits the workload's init and evaluation on ``mesh`` (compiled on first use)."""
  replicated = NamedSharding(mesh, P())
  return WorkloadFunctions(
    workload,
    mesh,
    jax.jit(workload.init, out_shardings=replicated),
    jax.jit(make_eval_step(workload)),
  )


@dataclasses.dataclass(frozen=True)
class Trainer:
  """The compiled functions of one (workload, optimizer) pair, shared by its seeds."""

  fns: WorkloadFunctions
  optimizer: optimizer_lib.BuiltOptimizer
  train_step: TrainStep
  init_opt_state: Callable[[Any], Any]
  eval_params: Callable[[Any, Any], Any] | None  # (params, opt_state) -> params.

  @property
  def workload(self) -> Workload:
    return self.fns.workload

  @property
  def mesh(self) -> Mesh:
    return self.fns.mesh

  def init(self, key: jax.Array) -> tuple[Any, Any, Any]:
    """The initial ``(params, model_state, opt_state)`` of the seed of ``key``.

    Every buffer is distinct, as the train step (which donates them) needs,
    also where the optimizer state holds the params themselves (``x0`` of
    Mechanic and DoG).
    """
    params, model_state = self.fns.init(key)
    opt_state = self.init_opt_state(params)
    seen = {id(x) for x in jax.tree.leaves(params)}
    opt_state = jax.tree.map(lambda x: jnp.copy(x) if id(x) in seen else x, opt_state)
    return params, model_state, opt_state


def make_trainer(fns: WorkloadFunctions, optimizer: optimizer_lib.BuiltOptimizer) -> Trainer:
  """Jits the train step (state donated, batch split over the mesh) and the optimizer's init."""
  replicated = NamedSharding(fns.mesh, P())
  data = NamedSharding(fns.mesh, P("data"))
  train_step = jax.jit(
    make_train_step(fns.workload, optimizer),
    donate_argnums=(0, 1, 2),
    in_shardings=(replicated, replicated, replicated, data, replicated),
    out_shardings=replicated,
  )
  eval_params = None
  if optimizer.eval_params is not None:
    eval_params = jax.jit(lambda params, opt_state: optimizer.eval_params(opt_state, params))
  return Trainer(
    fns, optimizer, train_step, jax.jit(optimizer.tx.init, out_shardings=replicated), eval_params
  )


def evaluate(
  trainer: Trainer, params: Any, model_state: Any, opt_state: Any, seed: int, step: int
) -> dict[str, float]:
  """The workload's evaluation metrics for training step ``step`` (0-based), as
  ``{"<split>_<metric>": mean}``."""
  point = params if trainer.eval_params is None else trainer.eval_params(params, opt_state)
  out: dict[str, float] = {}
  for split, batches in trainer.workload.eval_batches(seed, step).items():
    sums: dict[str, Any] = {}
    total = 0
    for batch in batches:
      n = _batch_size(batch)
      batch = jax.device_put(batch, _batch_sharding(trainer.mesh, batch))
      metrics = trainer.fns.eval_step(point, model_state, batch)
      for k, v in metrics.items():
        sums[k] = sums.get(k, 0.0) + v * n
      total += n
    for k, v in jax.device_get(sums).items():
      out[f"{split}_{k}"] = float(v) / max(total, 1)
  return out


# ----------------------------------------------------------------------------
# One run.


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """What one run trains and where it writes."""

  optimizer: OptimizerConfig
  point: GridPoint
  seed: int
  directory: pathlib.Path


def _first_nonfinite(losses: np.ndarray) -> int | None:
  bad = np.flatnonzero(~np.isfinite(losses))
  return int(bad[0]) if bad.size else None


def _interval_record(
  step: int,
  pending: list[dict[str, Any]],
  values: dict[str, dict[str, Any]],
  step_time: float | None,
) -> dict[str, Any]:
  """The train record of an interval: its metrics' means, the optimizer's values at its end."""
  record: dict[str, Any] = {"event": "train", "step": step}
  for key in pending[0]:
    record[key] = float(np.mean([m[key] for m in pending]))
  for group, named in values.items():
    if named or group == "learning_rate":
      record[group] = {k: float(v) for k, v in named.items()}
  record["step_time"] = step_time
  return record


def _start_record(
  workload: Workload | AgentWorkload,
  optimizer: optimizer_lib.BuiltOptimizer,
  devices: int,
  spec: RunSpec,
  config: ExperimentConfig,
) -> dict[str, Any]:
  """The first record of a run: what it trains, with what, on which workload."""
  return {
    "event": "start",
    "optimizer": spec.optimizer.display_name,
    "name": spec.optimizer.name,
    "metaoptimize": optimizer.is_metaoptimize,
    "params": dict(spec.point.params),
    "grid_point": spec.point.label,
    "seed": spec.seed,
    "steps": config.steps,
    "devices": devices,
    "workload": workload.name,
    "primary_metric": workload.primary_metric,
    "stream": workload.stream,
  }


def _log_interval(
  stream: Any,
  done: int,
  pending: list[dict[str, Any]],
  values: dict[str, dict[str, Any]],
  step_time: float | None,
) -> tuple[dict[str, Any] | None, int, str]:
  """Writes the records of the interval ending at step ``done``.

  Returns ``(record, 0, "")``, or ``(None, step, reason)`` when a training loss of
  the interval is not finite: then the steps before it, a ``diverged`` and an
  ``end`` record are written instead.
  """
  host = jax.device_get(pending)
  values = jax.device_get(values)
  bad = _first_nonfinite(np.asarray([m["loss"] for m in host]))
  if bad is None:
    record = _interval_record(done, host, values, step_time)
    results.write_record(stream, record)
    return record, 0, ""
  diverged_at = done - len(host) + bad + 1
  if bad:
    results.write_record(stream, _interval_record(diverged_at - 1, host[:bad], values, step_time))
  reason = f"non-finite training loss ({host[bad]['loss']}) at step {diverged_at}"
  results.write_record(stream, {"event": "diverged", "step": diverged_at, "reason": reason})
  results.write_record(
    stream, {"event": "end", "status": "diverged", "step": diverged_at, "reason": reason}
  )
  return None, diverged_at, reason


def train_run(
  trainer: Trainer,
  spec: RunSpec,
  config: ExperimentConfig,
  *,
  resume: bool = False,
  progress: bool = True,
  stop_after: int | None = None,
  counter: str = "",
) -> RunResult:
  """Trains one run, streaming its metrics to ``spec.directory/metrics.jsonl``.

  Args:
    trainer: the compiled functions of the run's optimizer.
    spec: the optimizer, grid point, seed and directory of the run.
    config: the experiment (budget, intervals).
    resume: continue from the run's latest checkpoint (a finished run is left
      as it is); otherwise start from step 0, replacing earlier files.
    progress: show a tqdm progress bar.
    stop_after: stop (as if interrupted) once this many steps are done.
    counter: shown before the progress bar's name, e.g. ``"run 3 of 8"``.

  Returns:
    How the run ended.
  """
  name = spec.optimizer.display_name + (f" [{spec.point.label}]" if spec.point.label else "")
  spec.directory.mkdir(parents=True, exist_ok=True)
  metrics_path = spec.directory / results.METRICS_FILE
  if resume:
    end = results.end_record(results.read_records(metrics_path))
    if end is not None:
      logger.info("%s seed %d: already %s at step %d.", name, spec.seed, end["status"], end["step"])
      return _result(spec, end["status"], end["step"], end.get("reason", ""), metrics_path)
  elif (spec.directory / results.CHECKPOINT_DIR).exists():
    shutil.rmtree(spec.directory / results.CHECKPOINT_DIR)

  params, model_state, opt_state = trainer.init(jax.random.PRNGKey(spec.seed))
  start = 0
  with contextlib.ExitStack() as stack:
    ckpt = None
    if config.checkpoint_every:
      ckpt = stack.enter_context(RunCheckpointer(spec.directory / results.CHECKPOINT_DIR))
    if resume and ckpt is not None and ckpt.latest_step() is not None:
      start = ckpt.latest_step()
      state = ckpt.restore(
        start, {"params": params, "model_state": model_state, "opt_state": opt_state}
      )
      params, model_state, opt_state = state["params"], state["model_state"], state["opt_state"]
      results.truncate_records(metrics_path, start)
      logger.info("%s seed %d: resuming at step %d.", name, spec.seed, start)
    else:
      metrics_path.write_text("")
    stream = stack.enter_context(metrics_path.open("a"))
    if start == 0:
      start_record = _start_record(
        trainer.workload, trainer.optimizer, int(trainer.mesh.devices.size), spec, config
      )
      results.write_record(stream, start_record)
    bar = stack.enter_context(
      tqdm.tqdm(
        total=config.steps,
        initial=start,
        desc=f"{counter}: {name} seed {spec.seed}" if counter else f"{name} seed {spec.seed}",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
      )
    )
    batch_sharding = NamedSharding(trainer.mesh, P("data"))

    pending: list[dict[str, Any]] = []
    # Timing: steps since the clock started, its start, and the seconds spent
    # since then on evaluation and checkpoints (left out).
    timed_steps, clock, paused = 0, None, 0.0
    last_loss = None
    for step in range(start, config.steps):
      batch = jax.device_put(trainer.workload.train_batch(spec.seed, step), batch_sharding)
      params, model_state, opt_state, metrics = trainer.train_step(
        params, model_state, opt_state, batch, np.int32(step)
      )
      values = metrics.pop(OPTIMIZER_VALUES)
      pending.append(metrics)
      done = step + 1
      if clock is None:  # Leave the first (compiling) step out of the timing.
        jax.block_until_ready(metrics["loss"])
        clock = time.perf_counter()
      else:
        timed_steps += 1

      if done % config.log_every == 0 or done == config.steps:
        step_time = (time.perf_counter() - clock - paused) / timed_steps if timed_steps else None
        record, diverged_at, reason = _log_interval(stream, done, pending, values, step_time)
        if record is None:
          logger.warning("%s seed %d diverged: %s.", name, spec.seed, reason)
          return _result(spec, "diverged", diverged_at, reason, metrics_path)
        last_loss = record["loss"]
        bar.update(len(pending))
        bar.set_postfix(loss=f"{last_loss:.4g}", lr=_rate_text(record["learning_rate"]))
        pending, timed_steps, clock, paused = [], 0, time.perf_counter(), 0.0

      begin = time.perf_counter()
      if (config.eval_every and done % config.eval_every == 0) or done == config.steps:
        # Evaluate on the task the last step trained on (step index done - 1): a
        # non-stationary workload may switch tasks exactly at step `done`.
        metrics = evaluate(trainer, params, model_state, opt_state, spec.seed, done - 1)
        results.write_record(stream, {"event": "eval", "step": done, **metrics})
      if ckpt is not None and (done % config.checkpoint_every == 0 or done == config.steps):
        ckpt.save(done, {"params": params, "model_state": model_state, "opt_state": opt_state})
      if stop_after is not None and stop_after <= done < config.steps:
        logger.info("%s seed %d: stopped at step %d.", name, spec.seed, done)
        return _result(spec, "stopped", done, "", metrics_path)
      paused += time.perf_counter() - begin

    results.write_record(stream, {"event": "end", "status": "finished", "step": config.steps})
  logger.info("%s seed %d: finished, training loss %.4g.", name, spec.seed, last_loss or math.nan)
  return _result(spec, "finished", config.steps, "", metrics_path)


def _rate_text(rates: Mapping[str, float]) -> str:
  values = [v for v in rates.values() if v and v > 0]
  if not values:
    return "-"
  if len(values) == 1:
    return f"{values[0]:.3g}"
  return f"{min(values):.2g}..{max(values):.2g}"


def _result(
  spec: RunSpec, status: str, step: int, reason: str, metrics_path: pathlib.Path
) -> RunResult:
  return RunResult(
    optimizer=spec.optimizer.display_name,
    grid_point=spec.point.label,
    seed=spec.seed,
    status=status,
    step=step,
    reason=reason,
    final_loss=results.final_train_loss(results.read_records(metrics_path)),
  )


# ----------------------------------------------------------------------------
# Agent workloads: the policy collects the data; the seeds run together (vmapped).


@dataclasses.dataclass(frozen=True)
class AgentTrainer:
  """The jitted functions of one (agent workload, optimizer) pair, all seeds at once.

  ``start(keys) -> carry`` and ``chunk(carry, step) -> (carry, metrics, values)``,
  which runs ``iterations`` iterations of every seed; ``metrics`` holds each
  iteration's ``loss`` and ``return`` (shaped ``(iterations, seeds)``) and ``values``
  the optimizer's logged values after the chunk (:meth:`.BuiltOptimizer.per_step_values`).
  """

  workload: AgentWorkload
  optimizer: optimizer_lib.BuiltOptimizer
  start: Callable[[jax.Array], Any]
  chunk: Callable[[int], Callable[..., tuple[Any, dict[str, Any], dict[str, Any]]]]


# The agent's programs are compiled without XLA:CPU's concurrency-optimized scheduler, the first
# workaround for a stall of vmapped PPO runs at 0% CPU (docs/rl.md). The stall's cause, found
# later with gdb, is the batched LAPACK deadlock that start_seeds below avoids; the option is
# kept (per program, not in XLA_FLAGS, which would change every program's memory schedule).
XLA_CPU_AGENT_OPTIONS = {"xla_cpu_enable_concurrency_optimized_scheduler": False}


def agent_jit(fn: Callable, **kwargs: Any) -> Callable:
  """``jax.jit`` with :data:`XLA_CPU_AGENT_OPTIONS` on the CPU."""
  options = XLA_CPU_AGENT_OPTIONS if jax.default_backend() == "cpu" else None
  return jax.jit(fn, compiler_options=options, **kwargs)


def make_agent_trainer(
  workload: AgentWorkload, optimizer: optimizer_lib.BuiltOptimizer
) -> AgentTrainer:
  """Jits the agent's start and its chunks of iterations (one compile per chunk length)."""
  agent = workload.agent(optimizer.tx.init, optimizer.update)
  per_iteration = workload.updates_per_iteration

  @functools.cache
  def chunk(iterations: int):
    def run(carry, step):
      carry, metrics = jax.lax.scan(
        lambda c, _: jax.vmap(agent.iterate)(c), carry, None, length=iterations
      )
      done = step + iterations * per_iteration
      values = jax.vmap(lambda c: optimizer.per_step_values(agent.optimizer_state(c), done))(carry)
      return carry, metrics, values

    return agent_jit(run, donate_argnums=0)

  start = agent_jit(agent.start)

  def start_seeds(keys: jax.Array) -> Any:
    # One seed at a time, stacked: a vmapped start batches the agent's LAPACK calls (PPO's
    # orthogonal init is a QR per layer), and jaxlib's batched CPU LAPACK kernels wait on
    # XLA:CPU's intra-op thread pool from inside it, so that several of them at once can
    # deadlock the pool (all its threads waiting; seen with gdb on 2 cores). The carries equal
    # a vmapped start's, value for value.
    return jax.tree.map(lambda *xs: jnp.stack(xs), *(start(k) for k in keys))

  return AgentTrainer(workload, optimizer, start_seeds, chunk)


def train_agent_runs(
  trainer: AgentTrainer,
  specs: Sequence[RunSpec],
  config: ExperimentConfig,
  *,
  resume: bool = False,
  progress: bool = True,
  counter: str = "",
) -> list[RunResult]:
  """Trains the runs of one optimizer and grid point, one per seed, together.

  Each run's ``metrics.jsonl`` gets a train record every ``log_every`` updates
  (rounded to whole iterations): the mean ``loss`` and ``return`` of its
  iterations, the optimizer's values at its end, and ``step_time``, the wall time
  per update divided by the number of seeds. The ``eval`` record at the end holds
  ``final_return``, the mean return of the last 10% of the iterations. A seed
  whose loss is not finite ends there, ``diverged``; the others go on. With
  ``resume``, runs that all ended are left as they are; otherwise all start again.
  """
  paths = [s.directory / results.METRICS_FILE for s in specs]
  ends = [results.end_record(results.read_records(p)) if resume else None for p in paths]
  if all(ends):
    return [
      _result(s, e["status"], e["step"], e.get("reason", ""), p)
      for s, e, p in zip(specs, ends, paths, strict=True)
    ]
  per_iteration = trainer.workload.updates_per_iteration
  total = config.steps // per_iteration
  every = max(1, config.log_every // per_iteration)
  name = specs[0].optimizer.display_name + (
    f" [{specs[0].point.label}]" if specs[0].point.label else ""
  )
  streams, returns, live = [], [[] for _ in specs], [True] * len(specs)
  with contextlib.ExitStack() as stack:
    for spec, path in zip(specs, paths, strict=True):
      spec.directory.mkdir(parents=True, exist_ok=True)
      streams.append(stack.enter_context(path.open("w")))
      start = _start_record(trainer.workload, trainer.optimizer, 1, spec, config)
      results.write_record(streams[-1], start)
    bar = stack.enter_context(
      tqdm.tqdm(
        total=config.steps,
        desc=f"{counter}: {name} seeds {len(specs)}" if counter else f"{name}",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
      )
    )
    carry = trainer.start(jnp.stack([jax.random.PRNGKey(s.seed) for s in specs]))
    done, compiled = 0, set()  # Chunk lengths compiled: a chunk that compiles is not timed.
    while done < config.steps:
      iterations = min(every, total - done // per_iteration)
      clock = time.perf_counter()
      carry, metrics, values = trainer.chunk(iterations)(carry, np.int32(done))
      metrics, values = jax.device_get((metrics, values))
      elapsed = time.perf_counter() - clock
      step_time = None
      if iterations in compiled:
        step_time = elapsed / (iterations * per_iteration * len(specs))
      compiled.add(iterations)
      for i, stream in enumerate(streams):
        if live[i]:
          seed_values = jax.tree.map(lambda v, i=i: v[i], values)
          live[i] = _log_agent_interval(
            stream,
            done,
            per_iteration,
            metrics["loss"][:, i],
            metrics["return"][:, i],
            seed_values,
            step_time,
            returns[i],
          )
      done += iterations * per_iteration
      bar.update(iterations * per_iteration)
      latest = metrics["return"][-1]
      if np.isfinite(latest).any():
        bar.set_postfix(ret=f"{np.nanmean(latest):.4g}")
    last = max(1, math.ceil(FINAL_RETURN_SHARE * total))
    for i, stream in enumerate(streams):
      if live[i]:
        final = np.asarray(returns[i][-last:], np.float64)
        final_return = float(np.nanmean(final)) if np.isfinite(final).any() else None
        results.write_record(
          stream, {"event": "eval", "step": config.steps, "final_return": final_return}
        )
        results.write_record(stream, {"event": "end", "status": "finished", "step": config.steps})
  outcomes = []
  for spec, path in zip(specs, paths, strict=True):
    end = results.end_record(results.read_records(path)) or {}
    outcomes.append(_result(spec, end["status"], end["step"], end.get("reason", ""), path))
  logger.info("%s: %s.", name, ", ".join(f"seed {o.seed} {o.status}" for o in outcomes))
  return outcomes


def _log_agent_interval(
  stream: Any,
  done: int,
  per_iteration: int,
  losses: np.ndarray,
  returns: np.ndarray,
  values: dict[str, dict[str, Any]],
  step_time: float | None,
  history: list[float],
) -> bool:
  """Writes one seed's record of the iterations after update ``done`` (appending their
  returns to ``history``); False, with ``diverged`` and ``end`` records, when a loss
  is not finite."""
  bad = _first_nonfinite(losses)
  n = len(losses) if bad is None else bad
  history.extend(returns[:n].tolist())
  if n:
    shown = returns[:n][np.isfinite(returns[:n])]
    record: dict[str, Any] = {
      "event": "train",
      "step": done + n * per_iteration,
      "loss": float(np.mean(losses[:n])),
      "return": float(np.mean(shown)) if shown.size else None,
    }
    for group, named in values.items():
      if named or group == "learning_rate":
        record[group] = {k: float(v) for k, v in named.items()}
    record["step_time"] = step_time
    results.write_record(stream, record)
  if bad is None:
    return True
  step = done + (bad + 1) * per_iteration
  reason = f"non-finite training loss ({losses[bad]}) at step {step}"
  for event in ({"event": "diverged"}, {"event": "end", "status": "diverged"}):
    results.write_record(stream, {**event, "step": step, "reason": reason})
  return False


# ----------------------------------------------------------------------------
# A whole experiment.


def prepare_output_dir(
  config: ExperimentConfig, *, resume: bool = False, overwrite: bool = False
) -> pathlib.Path:
  """Checks that ``config.output_dir`` may be written (nothing is written yet).

  Raises:
    ConfigError: if the directory holds results and neither ``resume`` nor
      ``overwrite`` is set, or if ``resume`` finds a different config there.
  """
  out = pathlib.Path(config.output_dir)
  if out.exists() and not out.is_dir():
    raise ConfigError(f"output_dir {str(out)!r} exists and is not a directory.")
  if not out.exists() or not any(out.iterdir()) or overwrite:
    return out
  if not resume:
    raise ConfigError(
      f"output_dir {str(out)!r} already holds results; pass --resume to "
      "continue them or --overwrite to start again."
    )
  saved = out / results.CONFIG_FILE
  if saved.exists():
    before = config_lib.parse_yaml(saved.read_text()) or {}
    now = config.to_dict()
    changed = sorted(
      k for k in now if k not in ("output_dir", "optimizers") and before.get(k) != now[k]
    )
    changed += sorted(
      k
      for k, v in now["optimizers"].items()
      if k in before.get("optimizers", {}) and before["optimizers"][k] != v
    )
    if changed:
      raise ConfigError(
        f"--resume: the config differs from the one in {str(out)!r} in "
        f"{', '.join(changed)}; use another output_dir or --overwrite."
      )
  return out


def write_config(config: ExperimentConfig, out: pathlib.Path, overwrite: bool = False) -> None:
  """Creates ``out`` (emptied first when ``overwrite``) and writes the resolved config."""
  if overwrite and out.exists():
    shutil.rmtree(out)
  out.mkdir(parents=True, exist_ok=True)
  (out / results.CONFIG_FILE).write_text(
    yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)
  )


def run_experiment(
  config: ExperimentConfig,
  workload: Workload | plan_lib.Plan,
  *,
  optimizers: Sequence[str] | None = None,
  resume: bool = False,
  overwrite: bool = False,
  progress: bool = True,
  stop_after: int | None = None,
  out: pathlib.Path | None = None,
  on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
  """Trains every optimizer (or those named), grid point and seed of ``config``.

  ``workload`` is the plan (:func:`.plan.resolve`), or the workload to resolve
  one for. ``out`` is the output directory as :func:`prepare_output_dir`
  returned it (None: it is checked here). ``on_result`` is called with each run's
  result as the run ends. Every run sees the same data and initial weights for a
  given seed. Writes ``config.yaml`` and each run's files.
  """
  plan = (
    workload
    if isinstance(workload, plan_lib.Plan)
    else plan_lib.resolve(config, workload, optimizers)
  )
  if out is None:
    out = prepare_output_dir(config, resume=resume, overwrite=overwrite)
  if isinstance(plan.workload, AgentWorkload):
    if stop_after is not None:
      raise ConfigError("stop_after is not supported by an agent workload (its seeds run together)")
    write_config(config, out, overwrite=overwrite)
    return _run_agents(plan, config, out, resume=resume, progress=progress, on_result=on_result)
  mesh = data_mesh(_batch_size(plan.workload.train_batch(config.seeds[0], 0)), config.data_parallel)
  if mesh.devices.size > 1:
    logger.info("data parallel over %d devices", mesh.devices.size)
  write_config(config, out, overwrite=overwrite)
  fns = compile_workload(plan.workload, mesh)
  outcomes = []
  total = sum(len(opt.points()) for opt in plan.selected) * len(config.seeds)
  for opt in plan.selected:
    for point in opt.points():
      trainer = make_trainer(fns, plan.optimizers[opt.display_name, point.label])
      for seed in config.seeds:
        spec = RunSpec(opt, point, seed, results.run_dir(out, opt, point, seed))
        result = train_run(
          trainer,
          spec,
          config,
          resume=resume,
          progress=progress,
          stop_after=stop_after,
          counter=f"run {len(outcomes) + 1} of {total}",
        )
        outcomes.append(result)
        if on_result is not None:
          on_result(result)
  return outcomes


def _run_agents(
  plan: plan_lib.Plan,
  config: ExperimentConfig,
  out: pathlib.Path,
  *,
  resume: bool,
  progress: bool,
  on_result: Callable[[RunResult], None] | None,
) -> list[RunResult]:
  """:func:`run_experiment` of an agent workload: each grid point's seeds together."""
  assert isinstance(plan.workload, AgentWorkload)
  outcomes: list[RunResult] = []
  points = [(opt, point) for opt in plan.selected for point in opt.points()]
  for k, (opt, point) in enumerate(points):
    trainer = make_agent_trainer(plan.workload, plan.optimizers[opt.display_name, point.label])
    specs = [
      RunSpec(opt, point, seed, results.run_dir(out, opt, point, seed)) for seed in config.seeds
    ]
    found = train_agent_runs(
      trainer,
      specs,
      config,
      resume=resume,
      progress=progress,
      counter=f"point {k + 1} of {len(points)}",
    )
    for result in found:
      outcomes.append(result)
      if on_result is not None:
        on_result(result)
  return outcomes
