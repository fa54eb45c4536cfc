"""The recommended configuration: its defaults, and that it trains under jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo


@pytest.mark.parametrize(
  "steps, meta_lr",
  [
    (3000, 3e-2),
    (1000, 3e-2),  # meta rate clipped at 3e-2
    (30_000, 3e-3),
    (1_000_000, 1e-3),  # meta rate clipped at 1e-3
  ],
)
def test_settings_follow_the_run_length(steps, meta_lr):
  settings = mo.recommended_settings(steps)
  assert settings["meta_learning_rate"] == pytest.approx(meta_lr, rel=1e-9)
  gamma = settings["gamma"]
  # The discount looks ahead to the end of the run: 1 - 1 / (steps left).
  for count, left in [(0, steps), (steps // 2, steps - steps // 2), (steps - 10, 10)]:
    assert float(gamma(count)) == pytest.approx(1 - 1 / left, rel=1e-6)
  assert float(gamma(steps + 5)) == 0.5  # past the end: one step ahead at most


def test_settings_without_run_length():
  assert mo.recommended_settings() == {"gamma": 0.99, "meta_learning_rate": 3e-2}


def _run(tx, params, loss, steps=20):
  state, p = tx.init(params), params
  for _ in range(steps):
    u, state = tx.update(jax.grad(loss)(p), state, p)
    p = optax.apply_updates(p, u)
  return p, mo.learning_rates(state)


STREAM_PARAMS = {
  "l1": {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones(2)},
  "l2": {"w": jnp.ones(3)},
}


def _stream_loss(p):
  return sum(jnp.sum(jnp.sin(3 * x) ** 2) for x in jax.tree.leaves(p))


def test_stream_call_is_per_layer_adamw_without_momentum_at_gamma_099():
  """Without total_steps (a stream): per-layer rates, gamma 0.99, Adam meta at 3e-2, b1 0 and
  no weight decay."""
  ref = mo.adamw(
    1e-4,
    b1=0.0,
    weight_decay=0.0,
    meta="adam",
    meta_learning_rate=3e-2,
    gamma=0.99,
    blocks="per_layer",
  )
  results = [_run(tx, STREAM_PARAMS, _stream_loss) for tx in (mo.recommended(), ref)]
  chex.assert_trees_all_equal(results[0], results[1])
  assert set(results[0][1]) == {"l1", "l2"}
  assert set(mo.learning_rates(mo.recommended(blocks="scalar").init(STREAM_PARAMS)).shape) == set()


def test_stream_call_takes_b1_weight_decay_and_per_weight_rates_when_given():
  rec = mo.recommended(b1=0.9, weight_decay=0.1, blocks="per_weight")
  ref = mo.adamw(
    1e-4, meta="adam", meta_learning_rate=3e-2, gamma=0.99, blocks="per_weight", weight_decay=0.1
  )
  results = [_run(tx, STREAM_PARAMS, _stream_loss) for tx in (rec, ref)]
  chex.assert_trees_all_equal(results[0], results[1])
  assert results[0][1]["l1"]["w"].shape == (6,)  # one rate per weight
  # And they make a difference: the default stream call (b1 0, no decay) is another run.
  other = _run(mo.recommended(blocks="per_weight"), STREAM_PARAMS, _stream_loss)
  assert not np.allclose(other[0]["l1"]["w"], results[0][0]["l1"]["w"])


def test_is_adamw_with_adam_meta_and_those_settings():
  """Step for step the same as the preset it documents."""
  params = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones(2)}
  loss = lambda p: jnp.sum(jnp.sin(3 * p["w"]) ** 2) + jnp.sum((p["b"] - 2) ** 2)
  rec = mo.recommended(total_steps=500)
  ref = mo.adamw(
    1e-4,
    meta="adam",
    gamma=lambda t: 1 - 1 / jnp.maximum(500 - t, 2),
    meta_learning_rate=0.03,
    weight_decay=0.1,
  )
  results = []
  for tx in (rec, ref):
    p, state = params, tx.init(params)
    step = jax.jit(lambda p, s, tx=tx: tx.update(jax.grad(loss)(p), s, p))
    for _ in range(300):
      updates, state = step(p, state)
      p = optax.apply_updates(p, updates)
    results.append((p, mo.learning_rates(state), loss(p)))
  jax.tree.map(np.testing.assert_allclose, results[0][:2], results[1][:2])
  assert float(results[0][1]) > 10 * 1e-4  # it climbed from the starting rate
  assert results[0][2] < loss(params)


def test_hvp_and_blocks_pass_through():
  params = {"a": {"w": jnp.ones((3, 2))}, "b": {"w": jnp.ones(2)}}
  loss = lambda p: jnp.sum(p["a"]["w"] ** 2) + jnp.sum(jnp.cos(p["b"]["w"]))
  tx = mo.recommended(1e-3, total_steps=100, blocks="per_layer", hessian="hvp")
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p, value_fn=loss))
  for _ in range(5):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
  assert set(mo.learning_rates(state)) == {"a", "b"}


@pytest.mark.parametrize("bad", [0, 5, -100, 2.5, True, "long"])
def test_bad_total_steps(bad):
  with pytest.raises(ValueError, match="total_steps="):
    mo.recommended(total_steps=bad)


@pytest.mark.parametrize("name", ["gamma", "meta", "meta_learning_rate"])
def test_settings_it_owns_are_not_overridden_silently(name):
  with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
    mo.recommended(**{name: 0.5})
