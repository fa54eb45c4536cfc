"""metaoptimize_optax.nnx: NNX models with BatchNorm and Dropout, both traces, under nnx.jit."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import metaoptimize_optax as mo
import metaoptimize_optax.nnx as mo_nnx


class CNN(nnx.Module):
  """Conv -> BatchNorm -> ReLU -> Dropout -> mean pool -> Linear, on 8x8x1 images."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs)
    self.norm = nnx.BatchNorm(8, rngs=rngs)
    self.dropout = nnx.Dropout(0.2, rngs=rngs)
    self.head = nnx.Linear(8, 2, rngs=rngs)

  def __call__(self, x, rngs=None):
    h = self.dropout(nnx.relu(self.norm(self.conv(x))), rngs=rngs)
    return self.head(jnp.mean(h, axis=(1, 2)))


def _batch(step: int, n: int = 32):
  """Images whose class is which half (left or right) is brighter; mean 0.5, var > 1."""
  r = np.random.default_rng(step)
  y = r.integers(0, 2, n)
  x = r.normal(0.5, 1.5, (n, 8, 8, 1)).astype(np.float32)
  x[:, :, :4] += np.where(y == 0, 1.0, -1.0)[:, None, None, None]
  return jnp.asarray(x), jnp.asarray(y)


def _loss_fn(model, x, y, rngs=None):
  logits = model(x, rngs=rngs)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@pytest.mark.parametrize("hessian", ["free", "hvp"])
def test_cnn_with_batchnorm_and_dropout_trains(hessian):
  model = CNN(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, mo.adamw(1e-3, meta="adam", hessian=hessian), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, x, y):
    loss, grads, value_fn = mo_nnx.loss_and_grads(_loss_fn, model, x, y)
    optimizer.update(model, grads, value_fn=value_fn)
    return loss

  losses = [float(train_step(model, optimizer, *_batch(step))) for step in range(60)]
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses
  # The running statistics moved from their init (mean 0, var 1) towards the batches'.
  assert float(jnp.min(jnp.abs(model.norm.mean[...]))) > 1e-3
  assert float(jnp.max(jnp.abs(model.norm.var[...] - 1.0))) > 1e-2
  # The dropout stream advanced once per step.
  assert int(model.dropout.rngs.count[...]) == 60
  assert float(mo.learning_rates(nnx.as_pure(optimizer.opt_state))) != pytest.approx(1e-3)


def test_step_helper_runs_under_nnx_jit():
  model = CNN(nnx.Rngs(1))
  optimizer = nnx.Optimizer(model, mo.adamw(1e-3, meta="adam", hessian="hvp"), wrt=nnx.Param)
  train_step = nnx.jit(lambda m, o, x, y: mo_nnx.step(o, m, _loss_fn, x, y))
  losses = [float(train_step(model, optimizer, *_batch(step))) for step in range(3)]
  assert np.all(np.isfinite(losses)) and int(optimizer.step[...]) == 3


def test_value_fn_is_the_loss_of_the_gradient_step_and_pure():
  model = CNN(nnx.Rngs(0))
  x, y = _batch(0)
  before = nnx.as_pure(nnx.state(model, nnx.Not(nnx.Param)))

  @nnx.jit  # One compiled check (eager NNX is slow).
  def check(model, x, y):
    loss, grads, value_fn = mo_nnx.loss_and_grads(_loss_fn, model, x, y)
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    # What hessian="hvp" does with value_fn: a jvp of its gradient, vmapped over tangents.
    tangents = jax.tree.map(lambda p: jnp.stack([jnp.ones_like(p), -jnp.ones_like(p)]), params)
    hvps = jax.vmap(lambda t: jax.jvp(jax.grad(value_fn), (params,), (t,))[1])(tangents)
    _, _, next_value_fn = mo_nnx.loss_and_grads(_loss_fn, model, x, y)
    return {
      "loss": loss,
      "value": value_fn(params),
      "again": value_fn(params),
      "grads": nnx.as_pure(nnx.state(grads, nnx.Param)),
      "value_grads": jax.grad(value_fn)(params),
      "hvps": hvps,
      "next_value": next_value_fn(params),
    }

  out = check(model, x, y)
  # Same batch statistics and the same dropout mask as the gradient computation.
  np.testing.assert_allclose(out["value"], out["loss"], rtol=1e-6)
  assert float(out["again"]) == float(out["value"])
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
    out["value_grads"],
    out["grads"],
  )
  assert all(bool(jnp.all(jnp.isfinite(h))) for h in jax.tree.leaves(out["hvps"]))
  # The model's state is the one the two gradient steps left (value_fn changed nothing).
  after = nnx.as_pure(nnx.state(model, nnx.Not(nnx.Param)))
  assert int(after["dropout"]["rngs"]["count"]) == int(before["dropout"]["rngs"]["count"]) + 2
  assert not np.allclose(after["norm"]["mean"], before["norm"]["mean"])
  assert not np.allclose(out["next_value"], out["loss"])  # the next step draws a new mask


def test_outer_rngs_and_aux():
  """An ``nnx.Rngs`` passed to the loss is split with the model and advanced once."""
  model = CNN(nnx.Rngs(0))
  rngs = nnx.Rngs(dropout=7)
  optimizer = nnx.Optimizer(model, mo.adamw(1e-3, meta="adam", hessian="hvp"), wrt=nnx.Param)

  def loss_fn(model, x, y, rngs):
    loss = _loss_fn(model, x, y, rngs=rngs)
    return loss, {"loss": loss}

  @nnx.jit
  def train_step(model, optimizer, rngs, x, y):
    (loss, aux), grads, value_fn = mo_nnx.loss_and_grads(loss_fn, model, x, y, rngs, has_aux=True)
    np.testing.assert_equal(loss.shape, ())
    optimizer.update(model, grads, value_fn=value_fn)
    return loss, aux["loss"], value_fn(nnx.as_pure(nnx.state(model, nnx.Param)))

  for step in range(2):
    loss, aux_loss, _ = train_step(model, optimizer, rngs, *_batch(step))
    assert float(loss) == float(aux_loss)
  assert int(rngs.dropout.count[...]) == 2
  assert int(model.dropout.rngs.count[...]) == 0  # the model's own stream was not used


def test_the_core_package_does_not_import_flax():
  code = "import sys, metaoptimize_optax; assert 'flax' not in sys.modules, 'flax imported'"
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr


def test_step_with_a_transformation_that_takes_no_extra_arguments():
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  sgd = optax.sgd(0.1)
  plain = optax.GradientTransformation(sgd.init, lambda u, s, p=None: sgd.update(u, s, p))
  optimizer = nnx.Optimizer(model, plain, wrt=nnx.Param)
  loss_fn = lambda model, x: jnp.mean(model(x) ** 2)
  first = mo_nnx.step(optimizer, model, loss_fn, jnp.ones((4, 2)))
  assert float(loss_fn(model, jnp.ones((4, 2)))) < float(first)
