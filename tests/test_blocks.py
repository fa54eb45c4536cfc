"""Blocks: the structure of the learning rates, and what each block sees."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo

PARAMS = {
  "params": {
    "Dense_0": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)},
    "Dense_1": {"kernel": jnp.ones((4, 2)), "bias": jnp.zeros(2)},
  },
  "temperature": jnp.ones(()),
}


def grads_for(params, key=0):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(key), len(leaves))
  return treedef.unflatten(
    [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
  )


def train(tx, steps=5):
  params, state = PARAMS, tx.init(PARAMS)
  for i in range(steps):
    updates, state = tx.update(grads_for(params, i), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


def test_scalar():
  _, state = train(mo.sgd(1e-2, meta_learning_rate=0.1))
  lrs = mo.learning_rates(state)
  assert lrs.shape == () and lrs.dtype == jnp.float32


def test_per_layer_labels_are_parent_paths():
  _, state = train(mo.sgd(1e-2, blocks="per_layer", meta_learning_rate=0.1))
  lrs = mo.learning_rates(state)
  assert sorted(lrs) == ["", "params/Dense_0", "params/Dense_1"]
  assert all(v.shape == () for v in lrs.values())
  assert len({round(float(v), 8) for v in lrs.values()}) == 3  # blocks move independently


def test_label_tree_prefix_and_callable_agree():
  prefix = {"params": {"Dense_0": "body", "Dense_1": "head"}, "temperature": "head"}
  fn = lambda p: jax.tree_util.tree_map_with_path(
    lambda path, _: "body" if "Dense_0" in jax.tree_util.keystr(path) else "head", p
  )
  _, s1 = train(mo.sgd(1e-2, blocks=prefix, meta_learning_rate=0.1))
  _, s2 = train(mo.sgd(1e-2, blocks=fn, meta_learning_rate=0.1))
  l1, l2 = mo.learning_rates(s1), mo.learning_rates(s2)
  assert sorted(l1) == ["body", "head"]
  jax.tree.map(np.testing.assert_allclose, l1, l2)


@pytest.mark.parametrize("blocks", ["per_leaf", "per_weight"])
def test_params_shaped(blocks):
  _, state = train(mo.sgd(1e-2, blocks=blocks, meta_learning_rate=0.1))
  lrs = mo.learning_rates(state)
  assert jax.tree.structure(lrs) == jax.tree.structure(PARAMS)
  for lr, p in zip(jax.tree.leaves(lrs), jax.tree.leaves(PARAMS), strict=True):
    assert lr.shape == (() if blocks == "per_leaf" else p.shape)


@pytest.mark.parametrize(
  "blocks", ["scalar", "per_layer", "per_leaf", "per_weight", {"params": "net", "frozen": None}]
)
def test_none_leaves_are_skipped(blocks):
  """A None in params (no leaf) gets no learning rate and leaves the rest unchanged."""
  with_none = {**PARAMS, "frozen": None}
  labels = {"params": "net", "temperature": "t"}
  spec = {**blocks, **labels} if isinstance(blocks, dict) else blocks
  kept = labels if isinstance(blocks, dict) else blocks
  runs = []
  for params, b in ((with_none, spec), (PARAMS, kept)):
    tx = mo.metaoptimize(optax.adam(1.0), blocks=b, initial_learning_rate=1e-2)
    state = tx.init(params)
    for i in range(3):
      grads = {**grads_for(PARAMS, i), **({"frozen": None} if "frozen" in params else {})}
      updates, state = tx.update(grads, state, params)
      params = optax.apply_updates(params, updates)
    runs.append((params, mo.learning_rates(state)))
  (params, lrs), (expected, expected_lrs) = runs
  assert params["frozen"] is None
  drop = lambda t: {k: v for k, v in t.items() if k != "frozen"} if isinstance(t, dict) else t
  jax.tree.map(np.testing.assert_allclose, drop(params), expected)
  jax.tree.map(np.testing.assert_allclose, drop(lrs), expected_lrs)


def test_per_weight_equals_independent_scalar_problems():
  """Per-weight learning rates of a separable loss = one scalar MetaOptimize per weight."""
  target = jnp.array([1.0, -2.0, 3.0])
  grad = lambda w: 2 * (w - target) * jnp.array([1.0, 3.0, 0.3])
  tx = mo.metaoptimize(
    optax.sgd(1.0), optax.sgd(0.5), initial_learning_rate=0.05, blocks="per_weight"
  )
  w, state = jnp.zeros(3), tx.init(jnp.zeros(3))
  singles = [
    mo.metaoptimize(optax.sgd(1.0), optax.sgd(0.5), initial_learning_rate=0.05) for _ in range(3)
  ]
  ws = [jnp.zeros(()) for _ in range(3)]
  ss = [t.init(x) for t, x in zip(singles, ws, strict=True)]
  for _ in range(10):
    updates, state = tx.update(grad(w), state, w)
    w = w + updates
    g = grad(jnp.stack(ws))
    for i in range(3):
      u, ss[i] = singles[i].update(g[i], ss[i], ws[i])
      ws[i] = ws[i] + u
  np.testing.assert_allclose(w, jnp.stack(ws), rtol=1e-5)
  np.testing.assert_allclose(
    mo.learning_rates(state), [mo.learning_rates(s) for s in ss], rtol=1e-5
  )


def test_weight_decay_mask_spares_masked_leaves():
  mask = jax.tree.map(lambda p: p.ndim > 1, PARAMS)  # decay kernels only
  zero = jax.tree.map(jnp.zeros_like, PARAMS)
  tx = mo.metaoptimize(
    optax.sgd(1.0), initial_learning_rate=0.1, weight_decay=0.5, weight_decay_mask=mask
  )
  updates, _ = tx.update(zero, tx.init(PARAMS), PARAMS)
  np.testing.assert_allclose(updates["params"]["Dense_0"]["kernel"], -0.05)
  np.testing.assert_allclose(updates["temperature"], 0.0)
  callable_mask = mo.metaoptimize(
    optax.sgd(1.0),
    initial_learning_rate=0.1,
    weight_decay=0.5,
    weight_decay_mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
  )
  updates2, _ = callable_mask.update(zero, callable_mask.init(PARAMS), PARAMS)
  jax.tree.map(np.testing.assert_allclose, updates, updates2)


def test_clamps():
  tx = mo.metaoptimize(
    optax.sgd(1.0),
    optax.sgd(100.0),
    initial_learning_rate=1e-2,
    min_learning_rate=5e-3,
    max_learning_rate=2e-2,
  )
  w, state = jnp.ones(2), tx.init(jnp.ones(2))
  seen = []
  for _ in range(10):
    updates, state = tx.update(w, state, w)
    w = w + updates
    seen.append(float(mo.learning_rates(state)))
  assert min(seen) >= 5e-3 * (1 - 1e-6) and max(seen) <= 2e-2 * (1 + 1e-6)
  assert max(seen) == pytest.approx(2e-2, rel=1e-6)  # the clamp was hit


@pytest.mark.parametrize("preset", [mo.adamw, mo.lion, mo.sgdm, mo.rmsprop, mo.sgd])
@pytest.mark.parametrize("meta", ["lion", "adam"])
def test_presets_learn(preset, meta):
  _, state = train(preset(1e-3, meta=meta, meta_learning_rate=0.05), steps=6)
  lr = float(mo.learning_rates(state))
  assert np.isfinite(lr) and lr != pytest.approx(1e-3, rel=1e-4)


def test_per_layer_counts_an_nnx_variable_as_one_leaf():
  """NNX params are Variables (pytree nodes around the array): a layer is still one block."""
  nnx = pytest.importorskip("flax.nnx")

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.a = nnx.Linear(2, 3, rngs=rngs)
      self.b = nnx.Linear(3, 1, rngs=rngs)

  optimizer = nnx.Optimizer(Net(nnx.Rngs(0)), mo.adamw(1e-3, blocks="per_layer"), wrt=nnx.Param)
  assert set(mo.learning_rates(optimizer.opt_state)) == {"a", "b"}
