"""The trace and the meta-gradient are derivatives: check them against autodiff.

* ``hessian="hvp"``, meta learning rate 0, gamma 1: the trace is ``jax.jacfwd`` of
  the unrolled training trajectory with respect to the log learning rates.
* ``hessian="free"``: the same derivative with every step's gradient held constant.
* gamma 0 with an SGD meta optimizer is hypergradient descent on log alpha.
* a three-step case worked out by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import metaoptimize_optax as mo

T = 6
BASES = {
  "sgd": lambda: optax.sgd(1.0),
  "sgd_momentum": lambda: optax.sgd(1.0, momentum=0.9),
  "adam": lambda: optax.adam(1.0),
  "rmsprop": lambda: optax.rmsprop(1.0),
}
TWO_LABELS = {"hidden": "a", "out": "b"}  # A prefix of the params tree.


def init_params(key):
  k1, k2, k3 = jax.random.split(key, 3)
  return {
    "hidden": {"w": 0.5 * jax.random.normal(k1, (3, 4)), "b": jnp.zeros(4)},
    "out": {"w": 0.5 * jax.random.normal(k2, (4, 2)), "b": 0.1 * jax.random.normal(k3, (2,))},
  }


def make_data(key):
  kx, ky = jax.random.split(key)
  return jax.random.normal(kx, (T, 8, 3)), jax.random.normal(ky, (T, 8, 2))


def loss(params, x, y):
  h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
  return jnp.mean((h @ params["out"]["w"] + params["out"]["b"] - y) ** 2)


def leaf_labels(blocks, params):
  if blocks == "scalar":
    return jax.tree.map(lambda _: None, params)
  return {k: jax.tree.map(lambda _, lab=lab: lab, params[k]) for k, lab in TWO_LABELS.items()}


def unrolled(log_lr, params, base, data, blocks, weight_decay, hold_gradients):
  """Trains T steps at fixed learning rates exp(log_lr); returns the weights."""
  labels = leaf_labels(blocks, params)
  alpha = lambda lab: jnp.exp(log_lr if lab is None else log_lr[lab])
  state = base.init(params)
  for t in range(T):
    g = jax.grad(loss)(params, data[0][t], data[1][t])
    if hold_gradients:
      g = jax.lax.stop_gradient(g)
    u, state = base.update(g, state, params)
    params = jax.tree.map(
      lambda w, ui, lab: w + alpha(lab) * (ui - weight_decay * w),
      params,
      u,
      labels,
      is_leaf=lambda x: x is None,
    )
  return params


def run_traces(base, blocks, hessian, data, params, weight_decay=0.0, gamma=1.0):
  tx = mo.metaoptimize(
    base,
    optax.sgd(0.0),
    initial_learning_rate=0.05,
    gamma=gamma,
    blocks=blocks if blocks == "scalar" else TWO_LABELS,
    hessian=hessian,
    weight_decay=weight_decay,
  )
  state = tx.init(params)

  @jax.jit
  def train_step(params, state, x, y):
    batch_loss = lambda p: loss(p, x, y)
    extra = {"value_fn": batch_loss} if hessian == "hvp" else {}
    updates, state = tx.update(jax.grad(batch_loss)(params), state, params, **extra)
    return optax.apply_updates(params, updates), state

  for t in range(T):
    params, state = train_step(params, state, data[0][t], data[1][t])
  return state, params


# Compiled once per base and setting: the unrolled loop run op by op is most of these tests' time.
_STATIC = (2, 4, 5, 6)  # base, blocks, weight_decay, hold_gradients
unrolled_jit = jax.jit(unrolled, static_argnums=_STATIC)
_jacobian = jax.jit(jax.jacfwd(unrolled), static_argnums=_STATIC)


def expected_jacobian(base, blocks, data, params, weight_decay, hold_gradients):
  log_lr0 = jnp.log(0.05)
  log_lr = log_lr0 if blocks == "scalar" else {"a": log_lr0, "b": log_lr0}
  return _jacobian(log_lr, params, base, data, blocks, weight_decay, hold_gradients)


def assert_close_rel(actual, expected, rtol):
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = np.max(np.abs(expected))
  assert scale > 0
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("blocks", ["scalar", "two_labels"])
@pytest.mark.parametrize("base_name", sorted(BASES))
def test_hvp_trace_is_jacobian_of_unrolled_training(x64, base_name, blocks):
  params = init_params(jax.random.key(0))
  data = make_data(jax.random.key(1))
  base = BASES[base_name]()
  state, final = run_traces(base, blocks, "hvp", data, params, weight_decay=0.01)
  jac = expected_jacobian(base, blocks, data, params, 0.01, hold_gradients=False)
  # The weights themselves agree with the unrolled loop.
  labels = ["a", "b"] if blocks == "two_labels" else [None]
  for j, lab in enumerate(labels):
    for path, column in jax.tree_util.tree_leaves_with_path(state.trace):
      want = _at(jac, path)
      want = want if lab is None else want[lab]
      assert_close_rel(column[j], want, 1e-6)
  np.testing.assert_allclose(
    ravel_pytree(final)[0],
    ravel_pytree(
      unrolled_jit(
        jnp.log(0.05) if blocks == "scalar" else {"a": jnp.log(0.05), "b": jnp.log(0.05)},
        params,
        base,
        data,
        blocks,
        0.01,
        False,
      )
    )[0],
    rtol=1e-10,
  )


def _at(tree, path):
  for key in path:
    tree = tree[key.key]
  return tree


@pytest.mark.parametrize("base_name", sorted(BASES))
def test_hessian_free_trace_holds_gradients_constant(x64, base_name):
  params = init_params(jax.random.key(2))
  data = make_data(jax.random.key(3))
  base = BASES[base_name]()
  state, _ = run_traces(base, "scalar", "free", data, params, weight_decay=0.01)
  jac = expected_jacobian(base, "scalar", data, params, 0.01, hold_gradients=True)
  for path, h in jax.tree_util.tree_leaves_with_path(state.trace):
    assert_close_rel(h, _at(jac, path), 1e-10)
  # ... and differs from the full derivative, which sees curvature.
  full = expected_jacobian(base, "scalar", data, params, 0.01, hold_gradients=False)
  diff = max(
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(state.trace), jax.tree.leaves(full), strict=True)
  )
  assert diff > 1e-6


def test_hessian_free_is_hvp_with_frozen_gradient(x64):
  """With a loss whose gradient does not depend on w (linear), both traces agree."""
  params = {"w": jnp.array([1.0, -2.0, 0.5])}
  c = jnp.array([0.3, -0.7, 1.1])
  value_fn = lambda p: jnp.dot(c, p["w"])
  traces = []
  for hessian in ("free", "hvp"):
    tx = mo.metaoptimize(
      optax.adam(1.0), initial_learning_rate=1e-2, hessian=hessian, weight_decay=0.1
    )
    state, p = tx.init(params), params
    for _ in range(5):
      u, state = tx.update(jax.grad(value_fn)(p), state, p, value_fn=value_fn)
      p = optax.apply_updates(p, u)
    traces.append(state)
  np.testing.assert_allclose(traces[0].trace["w"], traces[1].trace["w"][0], rtol=1e-12)
  np.testing.assert_allclose(traces[0].log_learning_rate, traces[1].log_learning_rate, rtol=1e-12)


def test_gamma_zero_is_hypergradient_descent(x64):
  """gamma 0, SGD meta: beta_{t+1} = beta_t - eta * <g_t, alpha_{t-1} u_{t-1}>."""
  eta, lr0 = 0.05, 0.02
  target = jnp.array([1.0, -3.0, 2.0, 0.5])
  grad_fn = jax.grad(lambda w: jnp.sum(jnp.cosh(w - target)))
  tx = mo.metaoptimize(optax.adam(1.0), optax.sgd(eta), initial_learning_rate=lr0, gamma=0.0)
  state, w = tx.init(jnp.zeros(4)), jnp.zeros(4)

  # Hypergradient descent (Baydin et al. 2018) on log alpha, written out by hand.
  beta, m, v, prev_dw, w_ref = jnp.log(lr0), jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), w
  for t in range(1, 21):
    g = grad_fn(w_ref)
    hypergrad = jnp.dot(g, prev_dw)  # d L(w_t) / d beta_{t-1} = g_t . dw_{t-1}
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
    u = -(m / (1 - 0.9**t)) / (jnp.sqrt(v / (1 - 0.999**t)) + 1e-8)
    prev_dw = jnp.exp(beta) * u
    w_ref = w_ref + prev_dw
    beta = beta - eta * hypergrad

    updates, state = tx.update(grad_fn(w), state, w)
    w = optax.apply_updates(w, updates)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12)
    np.testing.assert_allclose(state.log_learning_rate, beta, rtol=1e-12)
  assert abs(float(beta - jnp.log(lr0))) > 1e-2  # The learning rate did move.


def test_three_steps_by_hand(x64):
  """SGD base, SGD meta, weight decay, gamma 0.5, scalar w: every number by hand.

  loss(w) = 0.5 * w^2, so g = w. kappa = 0.1, eta = 1, gamma = 0.5, alpha0 = 0.1.
  step 1: z = h0*g = 0; dw = 0.1*(-1 - 0.1*1) = -0.11; w = 0.89;
          h = 0.5*(1 - 0.01)*0 - 0.11 = -0.11; beta = log 0.1.
  step 2: g = 0.89; z = -0.11*0.89 = -0.0979; dw = 0.1*(-0.89 - 0.089) = -0.0979;
          w = 0.7921; h = 0.5*0.99*(-0.11) - 0.0979 = -0.15235;
          beta = log 0.1 + 0.0979.
  step 3: alpha = 0.1*exp(0.0979); g = 0.7921; z = -0.15235*0.7921;
          dw = alpha*(-0.7921 - 0.07921) = -alpha*0.87131; beta += 0.15235*0.7921.
  """
  tx = mo.metaoptimize(
    optax.sgd(1.0), optax.sgd(1.0), initial_learning_rate=0.1, weight_decay=0.1, gamma=0.5
  )
  w = jnp.array(1.0)
  state = tx.init(w)
  ws, hs, betas = [], [], []
  for _ in range(3):
    u, state = tx.update(w, state, w)
    w = w + u
    ws.append(float(w))
    hs.append(float(state.trace))
    betas.append(float(state.log_learning_rate))
  alpha3 = 0.1 * np.exp(0.0979)
  np.testing.assert_allclose(ws, [0.89, 0.7921, 0.7921 - alpha3 * 0.87131], rtol=1e-12)
  np.testing.assert_allclose(
    hs, [-0.11, -0.15235, 0.5 * (1 - 0.1 * alpha3) * -0.15235 - alpha3 * 0.87131], rtol=1e-12
  )
  np.testing.assert_allclose(
    betas, [np.log(0.1), np.log(0.1) + 0.0979, np.log(0.1) + 0.0979 + 0.15235 * 0.7921], rtol=1e-12
  )


def test_relu_network_with_adam_hvp_stays_finite():
  """Dead ReLU units have exactly zero gradients: sqrt(v) at v = 0 must not poison."""
  key = jax.random.key(0)
  k1, k2, k3 = jax.random.split(key, 3)
  params = {
    "l1": {"w": jax.random.normal(k1, (5, 16)), "b": jnp.full((16,), -0.5)},
    "l2": {"w": jax.random.normal(k2, (16, 3)), "b": jnp.zeros(3)},
  }
  # Make four hidden units dead on every input.
  params["l1"]["b"] = params["l1"]["b"].at[:4].set(-100.0)
  x = jax.random.normal(k3, (32, 5))
  y = jnp.arange(32) % 3

  def loss_fn(p):
    h = jax.nn.relu(x @ p["l1"]["w"] + p["l1"]["b"])
    logits = h @ p["l2"]["w"] + p["l2"]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  tx = mo.metaoptimize(
    optax.adam(1.0), initial_learning_rate=1e-3, hessian="hvp", blocks="per_layer"
  )
  state = tx.init(params)
  update = jax.jit(lambda g, s, p: tx.update(g, s, p, value_fn=loss_fn))
  first = loss_fn(params)
  for _ in range(60):
    updates, state = update(jax.grad(loss_fn)(params), state, params)
    params = optax.apply_updates(params, updates)
  assert jnp.all(
    jnp.asarray(jax.tree.leaves(jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), state)))
  ), "non-finite state"
  assert float(jnp.abs(state.trace["l1"]["w"]).max()) > 0  # the trace is live
  assert float(jnp.abs(state.trace["l1"]["w"][:, :, :4]).max()) == 0  # dead units contribute 0
  assert loss_fn(params) < first
  lrs = mo.learning_rates(state)
  assert set(lrs) == {"l1", "l2"} and all(float(v) != 1e-3 for v in lrs.values())


def test_gamma_schedule(x64):
  """gamma(count) discounts the trace of update count: 0.5 twice, then 0 (forget)."""
  schedule = lambda count: jnp.where(count < 2, 0.5, 0.0)
  tx = mo.metaoptimize(optax.sgd(1.0), optax.sgd(0.0), initial_learning_rate=0.1, gamma=schedule)
  constant = mo.metaoptimize(optax.sgd(1.0), optax.sgd(0.0), initial_learning_rate=0.1, gamma=0.5)
  w, state, w_c, state_c = jnp.array(1.0), tx.init(jnp.array(1.0)), jnp.array(1.0), None
  state_c = constant.init(w_c)
  for step in range(4):
    u, state = tx.update(w, state, w)
    u_c, state_c = constant.update(w_c, state_c, w_c)
    w, w_c = w + u, w_c + u_c
    if step < 2:
      np.testing.assert_allclose(state.trace, state_c.trace, rtol=1e-12)
    else:  # gamma 0: the trace is this step's update alone
      np.testing.assert_allclose(state.trace, u, rtol=1e-12)
  assert int(state.count) == 4
