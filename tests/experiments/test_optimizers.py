"""The optimizer registry builds every name, and rejects what it cannot build."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo
from metaoptimize_optax.experiments import optimizers as optimizer_lib

PARAMS = {"l1": {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}, "out": jnp.full((2,), 0.5)}


def _loss(p):
  return sum(jnp.sum((x - 0.3) ** 2) for x in jax.tree.leaves(p))


def _step(opt, params, state, step):
  grads = jax.grad(_loss)(params)
  extra = {"value_fn": _loss} if opt.needs_value_fn else {}
  if opt.needs_value:
    extra["value"] = _loss(params)
  rates = opt.logged_rates(state, step)
  updates, state = opt.tx.update(grads, state, params, **extra)
  return optax.apply_updates(params, updates), state, rates


MO_VARIANTS = [{"base": base} for base in ("adamw", "lion", "sgdm", "rmsprop", "sgd")] + [
  {"meta": "adam", "gamma": 0.99, "blocks": "per_leaf"},
  {"meta": "sgd", "meta_learning_rate": 1e-2, "blocks": "per_weight"},
  {"meta": {"name": "adamw", "learning_rate": 1e-3, "b1": 0.8}, "blocks": "per_layer"},
  {"hessian": "hvp", "blocks": "per_layer", "base": "lion", "b2": 0.98},
  {"min_learning_rate": 1e-8, "max_learning_rate": 1.0, "weight_decay": 0.0},
]


@pytest.mark.parametrize("name", optimizer_lib.optimizer_names())
def test_every_name_builds_and_steps(name):
  opt = optimizer_lib.build_optimizer(name, 100, {})
  assert isinstance(opt.tx, optax.GradientTransformationExtraArgs | optax.GradientTransformation)
  params = PARAMS
  state = opt.tx.init(params)
  for t in range(3):
    params, state, rates = _step(opt, params, state, jnp.int32(t))
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
  assert rates and all(np.isfinite(float(v)) and float(v) >= 0 for v in rates.values())
  assert opt.is_metaoptimize == (
    name in ("metaoptimize", "hypergradient", "recommended", "idbd_metaoptimize")
  )
  assert (opt.eval_params is not None) == (name == "schedule_free_adamw")


@pytest.mark.parametrize("params", MO_VARIANTS, ids=str)
def test_metaoptimize_variants(params):
  opt = optimizer_lib.build_optimizer("metaoptimize", 10, params)
  assert opt.needs_value_fn == (params.get("hessian") == "hvp")
  p, state = PARAMS, opt.tx.init(PARAMS)
  for t in range(2):
    p, state, _ = _step(opt, p, state, t)
  assert isinstance(mo.find_state(state), mo.MetaOptimizeState)
  rates = optimizer_lib.metaoptimize_rates(state)
  blocks = params.get("blocks", "scalar")
  expected = {
    "scalar": {"all"},
    "per_layer": {"l1", ""},  # the root's label, as mo.learning_rates has it
    "per_leaf": {"l1/w", "l1/b", "out"},
    "per_weight": {"l1/w", "l1/b", "out"},
  }[blocks]
  assert set(rates) == expected


def test_hypergradient_is_metaoptimize_with_gamma_zero():
  """Same trajectory as metaoptimize(gamma=0), different from gamma=1 (SGD meta)."""

  def run(name, **params):
    opt = optimizer_lib.build_optimizer(
      name, 10, {"initial_learning_rate": 1e-2, "meta": "sgd", "meta_learning_rate": 10.0, **params}
    )
    p, state = PARAMS, opt.tx.init(PARAMS)
    for t in range(4):
      p, state, _ = _step(opt, p, state, t)
    return float(mo.learning_rates(state))

  assert run("hypergradient") == run("metaoptimize", gamma=0.0)
  assert run("hypergradient") != run("metaoptimize", gamma=1.0)


def test_schedules_report_their_rate():
  opt = optimizer_lib.build_optimizer(
    "adamw_cosine", 100, {"learning_rate": 1.0, "warmup_steps": 10}
  )
  state = opt.tx.init(PARAMS)
  assert float(opt.logged_rates(state, 5)["all"]) == pytest.approx(0.5)
  assert float(opt.logged_rates(state, 10)["all"]) == pytest.approx(1.0)
  assert float(opt.logged_rates(state, 100)["all"]) == pytest.approx(0.0, abs=1e-6)


def test_schedule_free_evaluates_at_the_average():
  opt = optimizer_lib.build_optimizer("schedule_free_adamw", 10, {"learning_rate": 0.1})
  p, state = PARAMS, opt.tx.init(PARAMS)
  for t in range(3):
    p, state, _ = _step(opt, p, state, t)
  x = opt.eval_params(state, p)
  expected = optax.contrib.schedule_free_eval_params(state, p)
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), x, expected))
  assert not jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), x, p))


@pytest.mark.parametrize(
  "name, params, message",
  [
    ("nadam", {}, "valid names: adamw, adamw_cosine"),
    ("adamw", {"lr": 1e-3}, "unknown parameter(s) lr; valid parameters: learning_rate, b1"),
    ("metaoptimize", {"momentum": 0.9}, "valid parameters: base, meta"),
    ("metaoptimize", {"base": "no_such_base"}, "not a MetaOptimize preset"),
    ("metaoptimize", {"meta": "no_such_optimizer"}, "is not an Optax optimizer"),
    ("metaoptimize", {"gamma": 1.5}, "gamma"),
    ("metaoptimize", {"hessian": "exact"}, "hessian"),
    ("hypergradient", {"gamma": 0.5}, "unknown parameter(s) gamma"),
    ("metaoptimize", {"meta": {"name": "adam", "learning_rate": {"name": "adam"}}}, "schedule"),
    (
      "metaoptimize",
      {"meta": {"name": "adam", "learning_rate": {"name": "constant_schedule", "v": 1}}},
      "optax.constant_schedule: ",
    ),
  ],
)
def test_bad_optimizers_are_rejected(name, params, message):
  with pytest.raises(optimizer_lib.OptimizerError, match=None) as info:
    optimizer_lib.build_optimizer(name, 10, params)
  assert message in str(info.value)


def test_meta_learning_rate_may_be_an_optax_schedule():
  """``meta: {name: adam, learning_rate: {name: <schedule>, ...}}`` is optax.adam(schedule)."""
  spec = {"name": "cosine_decay_schedule", "init_value": 0.3, "decay_steps": 2, "alpha": 0.1}
  opt = optimizer_lib.build_optimizer(
    "metaoptimize", 10, {"base": "sgd", "meta": {"name": "adam", "learning_rate": spec}}
  )

  def rates(tx):
    p, state = PARAMS, tx.init(PARAMS)
    for _ in range(4):
      updates, state = tx.update(jax.grad(_loss)(p), state, p)
      p = optax.apply_updates(p, updates)
    return np.asarray(mo.learning_rates(state))

  scheduled = optax.cosine_decay_schedule(0.3, 2, alpha=0.1)
  np.testing.assert_allclose(rates(opt.tx), rates(mo.sgd(meta=optax.adam(scheduled))), rtol=1e-6)
  assert not np.allclose(rates(opt.tx), rates(mo.sgd(meta=optax.adam(0.03))), rtol=1e-3)


def test_metaoptimize_accepts_its_base_parameters():
  assert "momentum" in optimizer_lib.parameters("metaoptimize", {"base": "sgdm"})
  assert "momentum" not in optimizer_lib.parameters("metaoptimize", {"base": "adamw"})
  optimizer_lib.build_optimizer("metaoptimize", 10, {"base": "sgdm", "momentum": 0.8})
