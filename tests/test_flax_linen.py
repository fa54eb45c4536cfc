"""metaoptimize_optax.linen.apply_gradients: a TrainState step with value_fn (hessian="hvp")."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import metaoptimize_optax as mo
import metaoptimize_optax.linen as mo_linen


class Net(nn.Module):
  """Dense -> BatchNorm -> ReLU -> Dropout -> Dense."""

  @nn.compact
  def __call__(self, x, train: bool):
    h = nn.Dense(16)(x)
    h = nn.BatchNorm(use_running_average=not train)(h)
    h = nn.Dropout(0.2, deterministic=not train)(nn.relu(h))
    return nn.Dense(2)(h)


class State(train_state.TrainState):
  batch_stats: dict


def _data(step):
  r = np.random.default_rng(step)
  x = r.normal(size=(32, 6)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray((x[:, 0] > 0).astype(np.int32))


def _state(tx):
  model = Net()
  variables = model.init(jax.random.key(0), _data(0)[0], train=False)
  return State.create(
    apply_fn=model.apply, params=variables["params"], tx=tx, batch_stats=variables["batch_stats"]
  )


def _loss_and_value_fn(state, x, y, key):
  def loss_fn(params):
    logits, updates = state.apply_fn(
      {"params": params, "batch_stats": state.batch_stats},
      x,
      train=True,
      mutable=["batch_stats"],
      rngs={"dropout": key},
    )
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return loss, grads, updates["batch_stats"], lambda p: loss_fn(p)[0]


@jax.jit
def helper_step(state, x, y, key):
  loss, grads, batch_stats, value_fn = _loss_and_value_fn(state, x, y, key)
  state = mo_linen.apply_gradients(state, grads=grads, value_fn=value_fn, batch_stats=batch_stats)
  return state, loss


@jax.jit
def hand_written_step(state, x, y, key):
  loss, grads, batch_stats, value_fn = _loss_and_value_fn(state, x, y, key)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params, value_fn=value_fn)
  params = optax.apply_updates(state.params, updates)
  state = state.replace(
    step=state.step + 1, params=params, opt_state=opt_state, batch_stats=batch_stats
  )
  return state, loss


def test_apply_gradients_with_value_fn_equals_the_hand_written_step():
  a = b = _state(mo.adamw(1e-3, meta="adam", meta_learning_rate=1e-2, hessian="hvp"))
  losses = []
  for step in range(15):
    key = jax.random.fold_in(jax.random.key(1), step)
    a, loss = helper_step(a, *_data(step), key)
    b, _ = hand_written_step(b, *_data(step), key)
    losses.append(float(loss))
  assert int(a.step) == 15
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.batch_stats, b.batch_stats)
  jax.tree.map(np.testing.assert_array_equal, a.opt_state, b.opt_state)
  assert np.all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3])
  assert float(mo.learning_rates(a.opt_state)) != pytest.approx(1e-3)  # hvp meta steps ran


def test_without_value_fn_it_is_train_state_apply_gradients():
  state = _state(optax.chain(optax.clip_by_global_norm(1.0), mo.adamw(1e-3)))

  @jax.jit
  def both(state, x, y, key):
    _, grads, batch_stats, _ = _loss_and_value_fn(state, x, y, key)
    return (
      mo_linen.apply_gradients(state, grads=grads, batch_stats=batch_stats),
      state.apply_gradients(grads=grads, batch_stats=batch_stats),
    )

  a, b = both(state, *_data(0), jax.random.key(0))
  jax.tree.map(
    np.testing.assert_array_equal, (a.params, a.opt_state, a.step), (b.params, b.opt_state, b.step)
  )


def test_hvp_needs_value_fn_which_train_state_cannot_pass():
  state = _state(mo.adamw(1e-3, hessian="hvp"))
  _, grads, _, _ = _loss_and_value_fn(state, *_data(0), jax.random.key(0))
  with pytest.raises((TypeError, ValueError), match="value_fn"):
    state.apply_gradients(grads=grads)
