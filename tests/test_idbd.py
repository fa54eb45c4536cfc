"""MetaOptimize as the general form of IDBD (Sutton, 1992).

With an SGD base, one rate per weight, ``hessian="diagonal"`` (the trace
``h <- h (1 - alpha x^2)^+ + alpha delta x``), an SGD meta optimizer at IDBD's
meta rate ``theta``, gamma 1 and the meta step first, MetaOptimize on a linear
learner is IDBD: the test runs an independent transcription of the paper's
update (numpy, float64) on Sutton's tracking task and compares every step size
and weight over 1,000 steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo

STEPS, INPUTS, RELEVANT = 1000, 20, 5


def tracking_task(seed):
  """Sutton's task: 20 inputs, the first 5 relevant with target weights +-1, one of
  which flips sign every 20 steps; the target has unit noise."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(STEPS, INPUTS))
  w_true = np.zeros(INPUTS)
  w_true[:RELEVANT] = rng.choice([-1.0, 1.0], RELEVANT)
  y = np.empty(STEPS)
  for t in range(STEPS):
    if t % 20 == 0:
      w_true[rng.integers(RELEVANT)] *= -1
    y[t] = x[t] @ w_true + rng.normal()
  return x, y


def idbd(x, y, theta, beta0):
  """IDBD as the paper gives it (Sutton 1992, Figure 2), step by step."""
  n = x.shape[1]
  beta, h, w = np.full(n, beta0), np.zeros(n), np.zeros(n)
  betas, weights = [], []
  for xt, yt in zip(x, y, strict=True):
    delta = yt - w @ xt
    beta = beta + theta * delta * xt * h
    alpha = np.exp(beta)
    w = w + alpha * delta * xt
    h = h * np.maximum(1.0 - alpha * xt**2, 0.0) + alpha * delta * xt
    betas.append(beta)
    weights.append(w)
  return np.array(betas), np.array(weights)


def metaoptimize_idbd(x, y, theta, beta0):
  tx = mo.metaoptimize(
    optax.sgd(1.0),
    optax.sgd(theta),
    initial_learning_rate=np.exp(beta0),
    blocks="per_weight",
    hessian="diagonal",
    gamma=1.0,
    meta_step_first=True,
  )
  loss = lambda w, xt, yt: 0.5 * (yt - w @ xt) ** 2

  def step(carry, batch):
    w, state = carry
    xt, yt = batch
    updates, state = tx.update(jax.grad(loss)(w, xt, yt), state, w, curvature=xt**2)
    w = optax.apply_updates(w, updates)
    return (w, state), (mo.find_state(state).log_learning_rate, w)

  w0 = jnp.zeros(x.shape[1])
  _, (betas, weights) = jax.lax.scan(step, (w0, tx.init(w0)), (jnp.asarray(x), jnp.asarray(y)))
  return np.asarray(betas), np.asarray(weights)


@pytest.mark.parametrize("theta, beta0", [(0.01, np.log(0.05)), (0.001, np.log(0.01))])
def test_reproduces_idbd(x64, theta, beta0):
  x, y = tracking_task(0)
  want_betas, want_w = idbd(x, y, theta, beta0)
  got_betas, got_w = metaoptimize_idbd(x, y, theta, beta0)
  np.testing.assert_allclose(np.exp(got_betas), np.exp(want_betas), rtol=1e-6)
  np.testing.assert_allclose(got_w, want_w, rtol=1e-6, atol=1e-9)
  # The step sizes moved, and as IDBD's do: up on the relevant inputs, not on the others.
  assert np.max(np.abs(want_betas[-1] - beta0)) > 0.05
  assert want_betas[-1, :RELEVANT].mean() > want_betas[-1, RELEVANT:].mean()


def test_meta_step_first_is_the_order_that_matters(x64):
  """With the paper's order (the step uses the rate before the meta step) it is not IDBD."""
  x, y = tracking_task(1)
  want_betas, _ = idbd(x, y, 0.01, np.log(0.05))
  tx = mo.metaoptimize(
    optax.sgd(1.0),
    optax.sgd(0.01),
    initial_learning_rate=0.05,
    blocks="per_weight",
    hessian="diagonal",
  )
  w = jnp.zeros(INPUTS)
  state = tx.init(w)
  for xt, yt in zip(x[:50], y[:50], strict=True):
    g = -(yt - w @ xt) * xt
    updates, state = tx.update(g, state, w, curvature=xt**2)
    w = w + updates
  assert not np.allclose(np.asarray(mo.find_state(state).log_learning_rate), want_betas[49])


def test_diagonal_without_curvature_is_the_hessian_free_trace(x64):
  """A zero curvature gives back the paper's Hessian-free trace, step for step."""
  x, y = tracking_task(2)
  kwargs = dict(initial_learning_rate=0.02, blocks="per_weight", meta=optax.adam(0.01))
  free, diagonal = (
    mo.sgd(**kwargs, hessian="free"),
    mo.metaoptimize(
      optax.sgd(1.0),
      kwargs["meta"],
      initial_learning_rate=0.02,
      blocks="per_weight",
      hessian="diagonal",
      weight_decay=0.1,
    ),
  )
  free = mo.metaoptimize(
    optax.sgd(1.0),
    kwargs["meta"],
    initial_learning_rate=0.02,
    blocks="per_weight",
    weight_decay=0.1,
  )
  w1 = w2 = jnp.zeros(INPUTS)
  s1, s2 = free.init(w1), diagonal.init(w2)
  for xt, yt in zip(x[:100], y[:100], strict=True):
    u1, s1 = free.update(-(yt - w1 @ xt) * xt, s1, w1)
    u2, s2 = diagonal.update(-(yt - w2 @ xt) * xt, s2, w2, curvature=jnp.zeros(INPUTS))
    w1, w2 = w1 + u1, w2 + u2
  np.testing.assert_allclose(np.asarray(w1), np.asarray(w2), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(s1.trace), np.asarray(s2.trace), rtol=1e-12)


def test_diagonal_needs_curvature():
  tx = mo.metaoptimize(optax.sgd(1.0), hessian="diagonal")
  w = jnp.zeros(3)
  with pytest.raises(ValueError, match="hessian='diagonal': update needs curvature="):
    tx.update(jnp.ones(3), tx.init(w), w)
  with pytest.raises(ValueError, match="curvature have"):
    tx.update(jnp.ones(3), tx.init(w), w, curvature=jnp.ones(4))
