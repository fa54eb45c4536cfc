"""Optax's common test battery for optimizers, over every public factory and preset.

The cases of ``optax/contrib/_common_test.py``, as Optax runs them on its own
optimizers: extra arguments without recompiling, ``optax.tree.map_params``,
convergence on its four targets in 30,000 steps, equality under
``optax.inject_hyperparams`` with no static argument, updates in the params'
dtype, ``optax.MultiSteps``, and a state whose shapes and dtypes are stable
under ``lax.cond`` for float16 to float64 params.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import metaoptimize_optax as mo

# Each factory with the arguments the battery builds it with (weight decay 0, as
# the battery's targets are not at the origin). mo.sgd learns its rate with Adam
# here: with the paper's Lion meta optimizer its fixed-size steps keep the rate
# sawing across the edge of stability on Rosenbrock (2 / 1002 = 2.0e-3; Lion's
# rate hovers at 2.5e-3), and SGD does not reach the minimum in 30,000 steps.
FACTORIES = {
  "metaoptimize": (functools.partial(mo.metaoptimize, optax.adam(1.0)), {}),
  "adamw": (mo.adamw, {}),
  "lion": (mo.lion, {"initial_learning_rate": 1e-4}),
  "sgdm": (mo.sgdm, {"initial_learning_rate": 1e-4}),
  "rmsprop": (mo.rmsprop, {}),
  "sgd": (mo.sgd, {"initial_learning_rate": 1e-4, "meta": "adam"}),
  "recommended": (mo.recommended, {"total_steps": 30_000}),
  "recommended_stream": (mo.recommended, {}),
}


def build(name, **overrides):
  factory, kwargs = FACTORIES[name]
  kwargs = {"initial_learning_rate": 1e-3, **kwargs, **overrides}
  if name != "metaoptimize":
    kwargs.setdefault("weight_decay", 0.0)
  return factory, kwargs


def parabola(dtype):
  final = jnp.array([1.0, -1.0, 1.0], dtype)
  return jnp.array([-1.0, 10.0, 1.0], dtype), final, lambda p: jnp.sum((p - final) ** 2)


def rosenbrock(dtype):
  final = jnp.array([1.0, 1.0], dtype)
  loss = lambda p: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2
  return jnp.zeros(2, dtype), final, loss


def matrix_parabola(dtype):
  final = jnp.array([[3.0, -2.0], [1.0, 4.0]], dtype)
  return jnp.zeros((2, 2), dtype), final, lambda p: jnp.sum((p - final) ** 2)


def mixed_tensors(dtype):
  final = (jnp.array([1.0, -1.0, 2.0], dtype), jnp.array([[1.0, 0.0], [-1.0, 1.0]], dtype))
  start = (jnp.zeros(3, dtype), jnp.zeros((2, 2), dtype))
  return start, final, lambda p: sum(jnp.sum((a - b) ** 2) for a, b in zip(p, final, strict=True))


TARGETS = [parabola, rosenbrock, matrix_parabola, mixed_tensors]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_extra_args_without_recompiling(name):
  factory, kwargs = build(name)
  tx = factory(**kwargs)
  params, _, loss = rosenbrock(jnp.float32)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss)(params), state, params, unexpected_extra_arg=1)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for _ in range(3):
    params, state = step(params, state)
  assert step._cache_size() == 1


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_converges(name, target):
  factory, kwargs = build(name)
  tx = factory(**kwargs)
  params, final, loss = target(jnp.float32)
  state = optax.tree.map_params(tx, lambda v: v, tx.init(params))  # A no-op, as Optax checks.

  def step(carry, _):
    params, state = carry
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return (optax.apply_updates(params, updates), state), None

  run = jax.jit(lambda p, s: jax.lax.scan(step, (p, s), length=30_000)[0])
  params, state = run(params, state)
  chex.assert_trees_all_close(params, final, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_inject_hyperparams_equals_the_plain_call(name):
  """No static_args: every number is injected (the start is used at init)."""
  factory, kwargs = build(name, weight_decay=0.1)
  plain = factory(**kwargs)
  injected = optax.inject_hyperparams(factory)(**kwargs)
  params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
  grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]
  assert "initial_learning_rate" in injected.init(params).hyperparams
  state, state_injected = jax.jit(plain.init)(params), jax.jit(injected.init)(params)
  for _ in range(3):
    updates, state = jax.jit(plain.update)(grads, state, params)
    updates_injected, state_injected = jax.jit(injected.update)(grads, state_injected, params)
    chex.assert_trees_all_close(updates_injected, updates, rtol=1e-5)
    params = optax.apply_updates(params, updates)
  chex.assert_trees_all_close(state_injected.inner_state, state, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_updates_keep_the_params_dtype_and_multisteps(name, dtype):
  factory, kwargs = build(name)
  params = jnp.array([1.0, 2.0], dtype)
  grads = jax.grad(lambda x: jnp.sum(x**2))(params)
  tx = factory(**kwargs)
  updates, _ = jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)
  assert updates.dtype == params.dtype
  accumulated = optax.MultiSteps(factory(**kwargs), every_k_schedule=4)
  updates, _ = jax.jit(accumulated.update)(grads, jax.jit(accumulated.init)(params), params)
  chex.assert_trees_all_equal(updates, jnp.zeros_like(grads))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_shape_and_dtype_stable_under_cond(name, dtype):
  factory, kwargs = build(name)
  with jax.enable_x64(dtype == jnp.float64):
    tx = factory(**kwargs)
    params, _, loss = parabola(dtype)

    @jax.jit
    def step(params, state):
      updates = jax.grad(loss)(params)
      pick = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
      updates, state = jax.lax.cond(
        pick, lambda: tx.update(updates, state, params), lambda: (params, state)
      )
      return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(2):
      params, state = step(params, state)
      assert params.dtype == dtype
