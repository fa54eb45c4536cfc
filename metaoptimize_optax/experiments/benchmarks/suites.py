"""The benchmark suites: the optimizer update alone, and whole train steps.

Every optimizer comes from the experiment registry (the same transformations
the ``run`` and ``compare`` commands train), and every timing is a ratio to
``optax.adamw`` measured alternately with it in the same process (see
:mod:`.timing`). Steps are jitted with params and optimizer state donated, as
the runner's train step is (``donate=False`` times them without donation).
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments.benchmarks import memory, timing, trees
from metaoptimize_optax.experiments.workloads.base import Workload

BASELINE = "AdamW"
_STEPS = 1000  # Run length given to the builders (only schedules use it).


class Candidate(NamedTuple):
  """One optimizer of a suite: a label, a registry entry and its target ratio."""

  label: str
  name: str  # Registry name.
  params: Mapping[str, Any] = types.MappingProxyType({})
  target: float | None = None  # Highest acceptable time ratio to AdamW, if any.


def metaoptimize_candidate(
  blocks: str,
  meta: str,
  hessian: str = "free",
  target: float | None = None,
  *,
  meta_parameters: Mapping[str, str] | None = None,
  trace_dtype: str | None = None,
) -> Candidate:
  """MetaOptimize around AdamW with the given blocks, meta optimizer and trace.

  ``meta_parameters`` (name -> space) are learned beside the learning rate;
  ``trace_dtype`` (e.g. ``"float32"``) is the dtype of the trace.
  """
  label = f"MetaOptimize {hessian} {blocks} ({meta.capitalize()} meta)"
  params: dict[str, Any] = {"base": "adamw", "meta": meta, "blocks": blocks, "hessian": hessian}
  if meta_parameters:
    label += f" learning {', '.join(meta_parameters)}"
    params["meta_parameters"] = dict(meta_parameters)
  if trace_dtype is not None:
    label += f" ({trace_dtype} trace)"
    params["trace_dtype"] = trace_dtype
  return Candidate(label, "metaoptimize", params, target)


ADAMW = Candidate(BASELINE, "adamw", {"learning_rate": 1e-3, "weight_decay": 0.1})

# The learning-rate-free peers (optax.contrib, at the registry's defaults).
PEERS: tuple[Candidate, ...] = (
  Candidate("Prodigy", "prodigy"),
  Candidate("Mechanic", "mechanic"),
  Candidate("COCOB", "cocob"),
  Candidate("DoWG", "dowg"),
  Candidate("MoMo-Adam", "momo_adam"),
  Candidate("Schedule-free AdamW", "schedule_free_adamw"),
  Candidate("DoG", "dog"),
)

# The stream call (mo.recommended() without total_steps) and its per-weight form.
STREAM_CALLS: tuple[Candidate, ...] = (
  Candidate("mo.recommended() (stream call)", "recommended", {"horizon": False}),
  Candidate(
    "mo.recommended(blocks='per_weight') (stream)",
    "recommended",
    {"horizon": False, "blocks": "per_weight"},
  ),
)

# The meta-parameters' traces (forward-mode tangents): their cost over AdamW.
META_PARAMETER_CANDIDATES: tuple[Candidate, ...] = tuple(
  metaoptimize_candidate("scalar", "lion", meta_parameters=learned)
  for learned in (
    {"b2": "logit"},
    {"weight_decay": "log"},
    {"b1": "logit", "b2": "logit", "weight_decay": "log"},
  )
)

# bfloat16 params: the trace in the params' dtype, or in float32 (trace_dtype).
BF16_CANDIDATES: tuple[Candidate, ...] = (
  ADAMW,
  metaoptimize_candidate("scalar", "lion"),
  metaoptimize_candidate("scalar", "lion", trace_dtype="float32"),
)

# The update alone: target 1.3 for the Hessian-free scalar and per-layer
# blocks (one read and one write of a params-sized trace on top of AdamW's
# seven array passes); per-weight blocks add params-sized log learning rates
# and meta state, so they have no target.
UPDATE_CANDIDATES: tuple[Candidate, ...] = (
  ADAMW,
  metaoptimize_candidate("scalar", "lion", target=1.3),
  metaoptimize_candidate("scalar", "adam", target=1.3),
  metaoptimize_candidate("per_layer", "lion", target=1.3),
  metaoptimize_candidate("per_layer", "adam", target=1.3),
  metaoptimize_candidate("per_weight", "lion"),
  metaoptimize_candidate("per_weight", "adam"),
  *STREAM_CALLS,
  *PEERS,
)


# Without donation: AdamW, the targets and schedule-free AdamW.
UNDONATED_CANDIDATES: tuple[Candidate, ...] = (
  *(c for c in UPDATE_CANDIDATES if c.label == BASELINE or c.target is not None),
  *(c for c in PEERS if c.name == "schedule_free_adamw"),
)


def step_candidates(workload: str) -> tuple[Candidate, ...]:
  """The whole-step candidates; targets: Hessian-free 1.05 on charlm, hvp 3."""
  free = 1.05 if workload == "charlm" else None
  return (
    ADAMW,
    metaoptimize_candidate("scalar", "lion", target=free),
    metaoptimize_candidate("scalar", "adam", target=free),
    metaoptimize_candidate("per_layer", "lion", target=free),
    metaoptimize_candidate("per_layer", "adam", target=free),
    metaoptimize_candidate("per_weight", "lion"),
    metaoptimize_candidate("per_weight", "adam"),
    metaoptimize_candidate("scalar", "lion", "hvp", target=3.0),
    metaoptimize_candidate("per_layer", "lion", "hvp", target=3.0),
    *STREAM_CALLS,
    *PEERS,
  )


def build(candidate: Candidate) -> optimizer_lib.BuiltOptimizer:
  """The registry's optimizer for ``candidate``."""
  return optimizer_lib.build_optimizer(candidate.name, _STEPS, dict(candidate.params))


def fresh_copy(tree: Any) -> Any:
  """A copy of ``tree`` in new buffers, so it can be donated."""
  return jax.tree.map(jnp.copy, tree)


# ----------------------------------------------------------------------------
# Steps.


def update_step(
  tx: optax.GradientTransformation, *, needs_value: bool = False, donate: bool = True
) -> Callable:
  """``step(params, opt_state, grads)``: the update and ``apply_updates``, jitted.

  Params and state donated unless ``donate`` is false; ``value=`` (a constant
  loss) is passed to optimizers that need it (MoMo).
  """

  def step(params, opt_state, grads):
    extra = {"value": jnp.ones((), jnp.float32)} if needs_value else {}
    updates, opt_state = tx.update(grads, opt_state, params, **extra)
    return optax.apply_updates(params, updates), opt_state

  return jax.jit(step, donate_argnums=(0, 1) if donate else ())


def train_step(
  loss_fn: Callable, optimizer: optimizer_lib.BuiltOptimizer, *, donate: bool = True
) -> Callable:
  """``step(params, model_state, opt_state, batch)``: forward, backward and update.

  Jitted with the training state donated (unless ``donate`` is false);
  ``value_fn`` is passed to optimizers that need it (MetaOptimize with
  ``hessian="hvp"``), ``value=`` (the batch loss) to those that take it (MoMo).
  """

  def step(params, model_state, opt_state, batch):
    def loss(p):
      return loss_fn(p, model_state, batch, True)

    (value, (_, new_model_state)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = optimizer.update(
      grads, opt_state, params, value_fn=lambda p: loss(p)[0], value=value
    )
    return optax.apply_updates(params, updates), new_model_state, opt_state

  return jax.jit(step, donate_argnums=(0, 1, 2) if donate else ())


# ----------------------------------------------------------------------------
# Suites.


def xla_costs(compiled: Any) -> dict[str, float]:
  """XLA's static estimate of a compiled step: ``{"flops": ..., "bytes": ...}``.

  ``bytes`` counts every array read and written by the compiled program (after
  fusion and copy insertion), so its ratio to AdamW's is the memory traffic
  ratio, free of timing noise.
  """
  costs = compiled.cost_analysis()
  if isinstance(costs, (list, tuple)):  # Older jax: one dict per device.
    costs = costs[0] if costs else {}
  costs = costs or {}
  return {
    "flops": float(costs.get("flops", float("nan"))),
    "bytes": float(costs.get("bytes accessed", float("nan"))),
  }


def compile_stepper(step: Callable, carry: tuple, args: tuple) -> tuple[timing.Stepper, dict]:
  """Compiles ``step`` for ``carry`` and ``args``: the stepper, XLA's cost estimate and
  the seconds the tracing, lowering and compiling took (``"compile_seconds"``)."""
  start = time.perf_counter()
  compiled = step.lower(*carry, *args).compile()
  seconds = time.perf_counter() - start
  return timing.Stepper(compiled, carry, args), {**xla_costs(compiled), "compile_seconds": seconds}


def _row(
  section: str,
  setting: str,
  candidate: Candidate,
  t: timing.Timing,
  state: int,
  base_state: int,
  params_bytes: int,
  costs: Mapping[str, float],
  base_costs: Mapping[str, float],
  *,
  donated: bool = True,
  dtype: str = "float32",
) -> dict[str, Any]:
  q1, q3 = t.ratio_quartiles
  ratio = lambda key: costs[key] / base_costs[key] if base_costs[key] else float("nan")
  return {
    "section": section,
    "setting": setting,
    "donated": donated,
    "dtype": dtype,
    "optimizer": candidate.label,
    "registry": {"name": candidate.name, **candidate.params},
    "ms_per_step": 1e3 * t.median_seconds,
    "ratio": t.ratio,
    "ratio_q1": q1,
    "ratio_q3": q3,
    "ratios": list(t.ratios),
    "state_bytes": state,
    "state_ratio": state / base_state if base_state else float("nan"),
    "extra_state_bytes": state - base_state,
    "extra_state": memory.extra_text(state - base_state, params_bytes),
    "params_bytes": params_bytes,
    "xla_bytes": costs["bytes"],
    "xla_flops": costs["flops"],
    "xla_bytes_ratio": ratio("bytes"),
    "xla_flops_ratio": ratio("flops"),
    "compile_seconds": costs["compile_seconds"],
    "target": candidate.target,
    "met": None if candidate.target is None else bool(t.ratio <= candidate.target),
  }


def _check(candidates: Sequence[Candidate]) -> None:
  if not candidates or candidates[0].label != BASELINE:
    raise ValueError(f"the first candidate must be the baseline {BASELINE!r}")
  labels = [c.label for c in candidates]
  if len(set(labels)) != len(labels):
    raise ValueError(f"candidate labels must be distinct, got {labels}")


def update_suite(
  num_params: int,
  candidates: Sequence[Candidate] = UPDATE_CANDIDATES,
  *,
  rounds: int = 7,
  min_seconds: float = 0.2,
  memory_budget: int = 3 << 30,
  seed: int = 0,
  dtype: Any = jnp.float32,
  donate: bool = True,
) -> list[dict[str, Any]]:
  """Times ``tx.update`` + ``apply_updates`` on a synthetic tree of ``num_params`` values.

  Candidates are timed in groups that fit ``memory_budget`` bytes (params and
  state of each, the baseline in every group). ``dtype`` is the params' (and
  gradients') dtype; ``donate=False`` times the step without donation (its
  rows are in the section ``"update_undonated"``).
  """
  _check(candidates)
  params = trees.synthetic_params(num_params, seed, dtype)
  grads = trees.synthetic_grads(params, seed + 1)
  params_bytes = trees.nbytes(params)
  optimizers = {c.label: build(c) for c in candidates}
  states = {label: memory.state_bytes(o.tx, params) for label, o in optimizers.items()}
  sizes = {label: params_bytes + s for label, s in states.items()}
  timings: dict[str, timing.Timing] = {}
  costs: dict[str, dict[str, float]] = {}
  for group in timing.pack(sizes, BASELINE, memory_budget):
    steppers = {}
    for label in group:
      p = fresh_copy(params)
      tx = optimizers[label].tx
      steppers[label], costs[label] = compile_stepper(
        update_step(tx, needs_value=optimizers[label].needs_value, donate=donate),
        (p, fresh_copy(tx.init(p))),
        (grads,),
      )
    timings = timing.merge(
      [timings, timing.time_alternately(steppers, BASELINE, rounds=rounds, min_seconds=min_seconds)]
    )
    del steppers
    memory.release()
  name = jnp.dtype(dtype).name
  kind = "" if name == "float32" else f" {name}"
  setting = f"{trees.describe(trees.count(params))}{kind} in {len(jax.tree.leaves(params))} leaves"
  return [
    _row(
      "update" if donate else "update_undonated",
      setting,
      c,
      timings[c.label],
      states[c.label],
      states[BASELINE],
      params_bytes,
      costs[c.label],
      costs[BASELINE],
      donated=donate,
      dtype=name,
    )
    for c in candidates
  ]


def step_suite(
  workload: str | Workload,
  candidates: Sequence[Candidate] | None = None,
  *,
  rounds: int = 7,
  min_seconds: float = 0.2,
  seed: int = 0,
  workload_options: Mapping[str, Any] | None = None,
  setting_label: str | None = None,
) -> list[dict[str, Any]]:
  """Times one whole jitted train step of a workload under every candidate.

  Args:
    workload: a workload name (built with ``workload_options``) or a workload.
    candidates: the optimizers, the baseline first; default
      :func:`step_candidates` of the workload's name.
    rounds: rounds of alternating measurements.
    min_seconds: least time of one measurement.
    seed: seed of the initial params and of the (fixed) batch.
    workload_options: options of a workload given by name.
    setting_label: the setting's name in the table; default the workload's name.
  """
  if isinstance(workload, str):
    from metaoptimize_optax.experiments.workloads import get_workload

    workload = get_workload(workload, **dict(workload_options or {}))
  candidates = step_candidates(workload.name) if candidates is None else candidates
  _check(candidates)
  params, model_state = jax.jit(workload.init)(jax.random.PRNGKey(seed))
  batch = jax.tree.map(jnp.asarray, workload.train_batch(seed, 0))
  params_bytes = trees.nbytes(params)
  optimizers = {c.label: build(c) for c in candidates}
  states = {label: memory.state_bytes(o.tx, params) for label, o in optimizers.items()}
  steppers, costs = {}, {}
  for label, optimizer in optimizers.items():
    p = fresh_copy(params)
    carry = (p, fresh_copy(model_state), fresh_copy(optimizer.tx.init(p)))
    steppers[label], costs[label] = compile_stepper(
      train_step(workload.loss, optimizer), carry, (batch,)
    )
  dtype = jnp.result_type(*jax.tree.leaves(params)).name
  timings = timing.time_alternately(steppers, BASELINE, rounds=rounds, min_seconds=min_seconds)
  del steppers
  memory.release()
  setting = f"{setting_label or workload.name} ({trees.describe(trees.count(params))} params)"
  return [
    _row(
      "step",
      setting,
      c,
      timings[c.label],
      states[c.label],
      states[BASELINE],
      params_bytes,
      costs[c.label],
      costs[BASELINE],
      dtype=dtype,
    )
    for c in candidates
  ]
