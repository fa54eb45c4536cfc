"""MetaOptimize behaves like any Optax transformation inside Optax's wrappers."""

import functools

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo


def params_and_grads(dtype=jnp.float32):
  params = {
    "dense": {"kernel": jnp.ones((3, 2), dtype), "bias": jnp.zeros(2, dtype)},
    "scale": jnp.full((4,), 0.5, dtype),
  }
  grads = jax.tree.map(
    lambda p: (jnp.arange(p.size).reshape(p.shape) % 3 - 1.0).astype(dtype), params
  )
  return params, grads


def run(tx, params, grads, steps=3, fixed_params=False, **extra):
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params, **extra)
    if not fixed_params:
      params = optax.apply_updates(params, updates)
  return params, state


def test_chain_matches_standalone():
  params, grads = params_and_grads()
  inner = mo.adamw(1e-2, meta_learning_rate=0.1)
  p1, s1 = run(inner, params, grads)
  p2, s2 = run(optax.chain(optax.identity(), inner), params, grads)
  chex.assert_trees_all_close(p1, p2)
  chex.assert_trees_all_close(mo.learning_rates(s1), mo.learning_rates(s2))


def test_chain_with_clipping():
  params, grads = params_and_grads()
  tx = optax.chain(optax.clip_by_global_norm(1.0), mo.adamw(1e-2))
  p, s = run(tx, params, grads)
  assert jnp.all(jnp.isfinite(jax.flatten_util.ravel_pytree(p)[0]))
  assert mo.learning_rates(s).shape == ()


@pytest.mark.parametrize("hessian", ["free", "hvp"])
def test_multi_transform_tunes_its_part_alone(hessian):
  """Inside ``optax.multi_transform`` MetaOptimize sees its part of the params.

  The other parts are ``optax.MaskedNode``; ``value_fn`` receives that masked
  tree too, and closes over the frozen part.
  """
  params, _ = params_and_grads()
  loss = lambda p: jnp.sum(p["dense"]["kernel"] ** 2 * p["scale"][:2]) + jnp.sum(p["scale"])
  grads = jax.grad(loss)(params)
  kwargs = dict(blocks="per_layer", hessian=hessian, initial_learning_rate=1e-2)
  inner = mo.metaoptimize(optax.adam(1.0), optax.adam(0.1), **kwargs)
  tx = optax.multi_transform(
    {"tuned": inner, "frozen": optax.set_to_zero()}, {"dense": "tuned", "scale": "frozen"}
  )
  # The masked tree and the part alone both hold "dense": one value_fn serves both.
  value_fn = lambda q: loss({**params, "dense": q["dense"]})
  extra = {"value_fn": value_fn} if hessian == "hvp" else {}
  p1, s1 = run(tx, params, grads, **extra)

  sub = {"dense": params["dense"]}
  p2, s2 = run(inner, sub, {"dense": grads["dense"]}, **extra)
  chex.assert_trees_all_close(p1["dense"], p2["dense"], rtol=1e-6)
  chex.assert_trees_all_equal(p1["scale"], params["scale"])
  chex.assert_trees_all_close(mo.learning_rates(s1), mo.learning_rates(s2), rtol=1e-6)
  assert mo.learning_rates(s1)["dense"] != pytest.approx(1e-2, rel=1e-3)


def test_multisteps_first_update_is_zero():
  params, grads = params_and_grads()
  tx = optax.MultiSteps(mo.adamw(1e-2), every_k_schedule=3)
  state = tx.init(params)
  updates, state = tx.update(grads, state, params)
  for u in jax.tree.leaves(updates):
    assert jnp.all(u == 0)
  for _ in range(2):
    updates, state = tx.update(grads, state, params)
  assert any(bool(jnp.any(u != 0)) for u in jax.tree.leaves(updates))
  assert float(mo.learning_rates(state)) == pytest.approx(1e-2, rel=1e-5)


def test_inject_hyperparams_same_updates_and_state():
  params, grads = params_and_grads()
  kwargs = dict(initial_learning_rate=1e-2, gamma=0.9, weight_decay=0.1)
  plain = mo.metaoptimize(optax.adam(1.0), **kwargs)
  injected = optax.inject_hyperparams(
    mo.metaoptimize, static_args=("blocks", "hessian", "initial_learning_rate")
  )(optax.adam(1.0), **kwargs)
  s1, s2 = plain.init(params), injected.init(params)
  update = jax.jit(injected.update)
  for _ in range(4):
    u1, s1 = plain.update(grads, s1, params)
    u2, s2 = update(grads, s2, params)
    chex.assert_trees_all_close(u1, u2, rtol=1e-6)
    params = optax.apply_updates(params, u1)
  chex.assert_trees_all_close(s1, s2.inner_state, rtol=1e-6)
  chex.assert_trees_all_close(mo.learning_rates(s1), mo.learning_rates(s2))
  # A changed hyperparameter takes effect.
  s2.hyperparams["gamma"] = jnp.asarray(0.0)
  _, s3 = update(grads, s2, params)
  assert not np.allclose(s3.inner_state.trace["scale"], s1.trace["scale"])


def test_apply_if_finite_skips_nan_steps():
  params, grads = params_and_grads()
  tx = optax.apply_if_finite(mo.adamw(1e-2), max_consecutive_errors=5)
  state = tx.init(params)
  bad = jax.tree.map(lambda g: g * jnp.nan, grads)
  updates, state = tx.update(bad, state, params)
  assert all(bool(jnp.all(u == 0)) for u in jax.tree.leaves(updates))
  assert int(state.notfinite_count) == 1
  updates, state = tx.update(grads, state, params)
  assert int(state.notfinite_count) == 0
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


def test_jit_with_unknown_extra_arg_does_not_recompile():
  params, grads = params_and_grads()
  seen = []

  def base_update(updates, state, params=None, *, note=None, **extra_args):
    del extra_args
    seen.append(note)  # Runs only while tracing.
    return jax.tree.map(jnp.negative, updates), state

  base = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), base_update)
  tx = mo.metaoptimize(base, initial_learning_rate=0.1)
  update = jax.jit(tx.update)
  state = tx.init(params)
  _, state = update(grads, state, params, note=jnp.ones(()), unused=jnp.zeros(3))
  _, state = update(grads, state, params, note=2 * jnp.ones(()), unused=jnp.ones(3))
  assert len(seen) == 1 and seen[0] is not None  # forwarded to the base, traced once
  assert update._cache_size() == 1


def test_map_params():
  params, grads = params_and_grads()
  tx = mo.adamw(1e-2)
  state = tx.init(params)
  doubled = optax.tree.map_params(tx.init, lambda p: 2 * p, state)
  chex.assert_trees_all_close(doubled.trace, jax.tree.map(jnp.zeros_like, params))
  chex.assert_trees_all_equal_structs(doubled, state)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_update_dtype_is_params_dtype(dtype):
  params, grads = params_and_grads(dtype)
  tx = mo.adamw(1e-2)
  state = tx.init(params)
  updates, state = tx.update(grads, state, params)
  for u in jax.tree.leaves(updates):
    assert u.dtype == dtype
  assert mo.learning_rates(state).dtype == jnp.float32  # never narrower than float32


@pytest.mark.parametrize("hessian", ["free", "hvp"])
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_state_dtypes_stable_under_cond(dtype, hessian):
  with jax.enable_x64(dtype == jnp.float64):
    params, grads = params_and_grads(dtype)
    value_fn = lambda p: sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(p))
    tx = mo.adamw(1e-2, blocks="per_layer", hessian=hessian)
    state = tx.init(params)
    extra = {"value_fn": value_fn} if hessian == "hvp" else {}

    @jax.jit
    def maybe_update(flag, state):
      return jax.lax.cond(
        flag, lambda s: tx.update(grads, s, params, **extra)[1], lambda s: s, state
      )

    new_state = maybe_update(True, state)
    chex.assert_trees_all_equal_dtypes(new_state, state)
    chex.assert_trees_all_equal_shapes(new_state, state)
    want = jnp.float64 if dtype == jnp.float64 else jnp.float32
    assert all(v.dtype == want for v in mo.learning_rates(new_state).values())
    assert all(t.dtype == dtype for t in jax.tree.leaves(new_state.trace))


@pytest.mark.parametrize("blocks", ["scalar", "per_layer", "per_leaf", "per_weight"])
def test_init_under_eval_shape(blocks):
  params, _ = params_and_grads()
  tx = mo.adamw(blocks=blocks)
  shapes = jax.eval_shape(tx.init, params)
  chex.assert_trees_all_equal_shapes_and_dtypes(shapes, tx.init(params))


def test_learning_rates_found_in_nested_states():
  params, grads = params_and_grads()
  injected = optax.inject_hyperparams(mo.metaoptimize, static_args=("initial_learning_rate",))
  tx = optax.MultiSteps(
    optax.chain(optax.clip(1.0), injected(optax.adam(1.0), initial_learning_rate=3e-3)),
    every_k_schedule=2,
  )
  state = tx.init(params)
  assert float(mo.learning_rates(state)) == pytest.approx(3e-3, rel=1e-5)
  with pytest.raises(ValueError, match="exactly one MetaOptimizeState"):
    mo.learning_rates(optax.adam(1.0).init(params))
  two = optax.multi_transform({"a": mo.adamw(), "b": mo.lion()}, {"dense": "a", "scale": "b"}).init(
    params
  )
  with pytest.raises(ValueError, match="found 2"):
    mo.learning_rates(two)
  assert float(mo.learning_rates(two.inner_states["b"])) == pytest.approx(1e-6, rel=1e-5)


def test_meta_optimizer_composes_with_partition():
  """Per-block meta settings through optax.partition over the label dict."""
  params, grads = params_and_grads()
  meta = optax.partition(
    {"fast": optax.sgd(1.0), "frozen": optax.set_to_zero()}, {"dense": "fast", "": "frozen"}
  )
  tx = mo.metaoptimize(optax.sgd(1.0), meta, blocks="per_layer", initial_learning_rate=0.1)
  _, state = run(tx, params, grads, steps=4)
  lrs = mo.learning_rates(state)
  assert set(lrs) == {"dense", ""}
  assert float(lrs[""]) == pytest.approx(0.1, rel=1e-6)
  assert float(lrs["dense"]) != pytest.approx(0.1, rel=1e-3)


@pytest.mark.parametrize("blocks", ["scalar", "per_layer", "per_leaf", "per_weight"])
def test_state_can_be_donated(blocks):
  """No two state leaves share a buffer, so `donate_argnums` works."""
  params, grads = params_and_grads()
  tx = optax.chain(optax.clip(1.0), mo.adamw(1e-2, blocks=blocks))

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, state):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params, state = jax.tree.map(jnp.copy, params), tx.init(params)
  for _ in range(3):
    params, state = step(params, state)
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


FACTORIES = {
  "metaoptimize": lambda: functools.partial(mo.metaoptimize, optax.adam(1.0)),
  "adamw": lambda: mo.adamw,
  "lion": lambda: mo.lion,
  "sgdm": lambda: mo.sgdm,
  "rmsprop": lambda: mo.rmsprop,
  "sgd": lambda: mo.sgd,
  "recommended": lambda: mo.recommended,
}


@pytest.mark.parametrize("name", [n for n in FACTORIES if n != "metaoptimize"])
def test_every_factory_under_inject_hyperparams(name):
  """Same updates as the plain call, and a changed hyperparameter takes effect."""
  factory = FACTORIES[name]()
  kwargs = {"total_steps": 100} if name == "recommended" else {"gamma": 0.9}
  static = (
    ("initial_learning_rate", "total_steps")
    if name == "recommended"
    else ("initial_learning_rate",)
  )
  params, grads = params_and_grads()
  plain = factory(1e-2, weight_decay=0.1, **kwargs)
  injected = optax.inject_hyperparams(factory, static_args=static)(1e-2, weight_decay=0.1, **kwargs)
  p1, s1 = run(plain, params, grads)
  p2, s2 = run(injected, params, grads)
  chex.assert_trees_all_close(p1, p2, rtol=1e-4)  # float32 hyperparameters vs Python floats
  assert "weight_decay" in s2.hyperparams
  s2.hyperparams["weight_decay"] = jnp.asarray(0.0)
  u_changed, _ = injected.update(grads, s2, p2)
  u_same, _ = plain.update(grads, s1, p1)
  assert not np.allclose(u_changed["dense"]["kernel"], u_same["dense"]["kernel"])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_injected_initial_learning_rate_sets_the_start_only(name):
  """Init-only, as Optax's init-only hyperparameters: used at init, a later change is not."""
  factory = FACTORIES[name]()
  kwargs = {"total_steps": 100} if name == "recommended" else {}
  tx = optax.inject_hyperparams(factory)(initial_learning_rate=1e-3, **kwargs)
  params, grads = params_and_grads()
  state = tx.init(params)
  assert float(mo.learning_rates(state)) == pytest.approx(1e-3, rel=1e-6)
  changed = optax.tree.set(state, hyperparams={**state.hyperparams, "initial_learning_rate": 0.5})
  _, s1 = tx.update(grads, state, params)
  _, s2 = tx.update(grads, changed, params)
  chex.assert_trees_all_equal(mo.learning_rates(s1), mo.learning_rates(s2))
  # Restarting the rate on purpose, as the docstring says.
  lr = mo.find_state(s2).log_learning_rate
  s3 = optax.tree.set(
    s2, log_learning_rate=jax.tree.map(lambda b: jnp.full_like(b, jnp.log(0.5)), lr)
  )
  assert float(mo.learning_rates(s3)) == pytest.approx(0.5, rel=1e-6)


def test_injected_start_of_a_learned_weight_decay():
  tx = optax.inject_hyperparams(mo.adamw)(
    1e-3, weight_decay=0.05, meta_parameters={"weight_decay": "log"}
  )
  params, grads = params_and_grads()
  assert float(mo.meta_parameters(tx.init(params))["weight_decay"]) == pytest.approx(0.05, 1e-6)
  _, state = run(tx, params, grads)
  assert float(mo.meta_parameters(state)["weight_decay"]) != pytest.approx(0.05, rel=1e-6)


def test_injected_total_steps_takes_effect():
  """The discount schedule and meta learning rate follow an injected run length."""
  params, grads = params_and_grads()
  tx = optax.inject_hyperparams(mo.recommended)(1e-2, total_steps=100)
  state = tx.init(params)
  assert state.hyperparams["total_steps"].dtype == jnp.int32
  shorter = optax.tree.set(state, hyperparams={**state.hyperparams, "total_steps": 20})
  update = jax.jit(tx.update)
  long_run, short_run = state, shorter
  for _ in range(3):
    _, long_run = update(grads, long_run, params)
    _, short_run = update(grads, short_run, params)
  _, plain = run(mo.recommended(1e-2, total_steps=20), params, grads, steps=3, fixed_params=True)
  # float32 hyperparameters (b2, ...) vs Python floats.
  chex.assert_trees_all_close(short_run.inner_state, plain, rtol=1e-4)
  assert float(mo.learning_rates(long_run)) != float(mo.learning_rates(short_run))


def test_total_steps_as_an_integral_float():
  params, grads = params_and_grads()
  u1, _ = run(mo.recommended(1e-2, total_steps=400), params, grads)
  u2, _ = run(mo.recommended(1e-2, total_steps=400.0), params, grads)
  chex.assert_trees_all_equal(u1, u2)
  with pytest.raises(
    ValueError, match=r"total_steps=400.5 is invalid; expected None or an integer"
  ):
    mo.recommended(total_steps=400.5)


def test_lookahead_as_base_is_refused_and_around_works():
  params = optax.LookaheadParams.init_synced({"w": jnp.ones(3)})
  grads = {"w": jnp.ones(3)}
  inside = mo.metaoptimize(optax.lookahead(optax.adam(1.0), 2, 0.5))
  with pytest.raises(ValueError, match=r"optax.lookahead\(mo.adamw\(...\), ...\)"):
    inside.update(grads, inside.init(params), params)
  around = optax.lookahead(mo.adamw(1e-2), sync_period=2, slow_step_size=0.5)
  state = around.init(params)
  for _ in range(3):
    updates, state = around.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert float(params.fast["w"][0]) < 1.0
  assert float(mo.learning_rates(state)) != pytest.approx(1e-2, rel=1e-6)


def test_learning_rates_of_nnx_optimizer_state():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, mo.adamw(1e-3), wrt=nnx.Param)
  lr = mo.learning_rates(optimizer.opt_state)
  assert isinstance(lr, jax.Array) and float(lr) == pytest.approx(1e-3, rel=1e-6)
  with pytest.raises(ValueError, match=r"Flax NNX state.*nnx.as_pure\(optimizer.opt_state\)"):
    mo.learning_rates(nnx.state(optimizer))


@pytest.mark.parametrize("hessian", ["free", "hvp"])
def test_trace_dtype_float32_for_bfloat16_params(hessian):
  params, grads = params_and_grads(jnp.bfloat16)
  value_fn = lambda p: sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(p))
  extra = {"value_fn": value_fn} if hessian == "hvp" else {}
  default = mo.adamw(1e-2, hessian=hessian, meta_parameters={"b1": "logit"})
  wide = mo.adamw(1e-2, hessian=hessian, meta_parameters={"b1": "logit"}, trace_dtype=jnp.float32)
  _, s_default = run(default, params, grads, **extra)
  p, s_wide = run(wide, params, grads, **extra)
  assert {x.dtype for x in jax.tree.leaves(s_default.trace)} == {jnp.dtype(jnp.bfloat16)}
  for tree in (s_wide.trace, s_wide.meta_parameters.trace):
    assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(jnp.float32)}
  assert {x.dtype for x in jax.tree.leaves(p)} == {jnp.dtype(jnp.bfloat16)}
  assert float(jnp.abs(s_wide.trace["scale"]).max()) > 0


def test_trace_dtype_rejected():
  with pytest.raises(ValueError, match="trace_dtype='fast' is invalid"):
    mo.adamw(trace_dtype="fast")


@pytest.mark.parametrize(
  "kwargs",
  [
    {},
    {"blocks": "per_layer"},
    {"hessian": "hvp"},
    {"meta_parameters": {"weight_decay": "log"}, "weight_decay": 0.1},
  ],
)
def test_vmap_over_a_population_is_the_loop(kwargs):
  """``jax.vmap`` of a whole training run (one per target) equals running each in turn."""
  tx = mo.metaoptimize(optax.adam(1.0), optax.adam(0.1), initial_learning_rate=1e-2, **kwargs)
  loss = lambda w, t: jnp.sum((w["layer"]["a"] - t) ** 2) + 0.1 * jnp.sum(w["b"] ** 4)

  def train(t):
    w = {"layer": {"a": jnp.zeros(3)}, "b": jnp.ones(2)}
    state = tx.init(w)

    def step(carry, _):
      w, state = carry
      u, state = tx.update(jax.grad(loss)(w, t), state, w, value_fn=lambda p: loss(p, t))
      return (optax.apply_updates(w, u), state), None

    (w, state), _ = jax.lax.scan(step, (w, state), None, length=10)
    return w, mo.learning_rates(state)

  targets = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0], [4.0, 4.0, -4.0]])
  batched = jax.jit(jax.vmap(train))(targets)
  for i, t in enumerate(targets):
    chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], batched), train(t), rtol=1e-5)
  rates = np.stack([np.asarray(r).ravel() for r in jax.tree.leaves(batched[1])], axis=1)
  assert len(np.unique(rates.round(6), axis=0)) == len(targets)  # Each run its own rates.
