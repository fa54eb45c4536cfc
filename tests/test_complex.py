"""Complex weights are pairs of reals, as in Optax.

Optax's optimizers take ``conj(jax.grad(loss))`` for complex weights, and
``optax.contrib.split_real_and_imaginary`` runs a base on the real and imaginary
parts as two real arrays. MetaOptimize over complex weights must then be the
same run as MetaOptimize over those pairs of reals: the same learning rates, the
same weights, the same learned meta-parameters.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo

LABELS = {"a": "x", "b": "y"}  # A prefix of both params trees.


def problem():
  keys = jax.random.split(jax.random.key(0), 4)
  cnormal = lambda k, shape: jax.random.normal(k, shape, jnp.complex128)
  a, t = cnormal(keys[0], (4, 3)), cnormal(keys[1], (4,))
  b0 = cnormal(keys[2], (2, 2))

  def loss(w):  # Real-valued, not quadratic (so curvature varies along the run).
    r = a @ w["a"] - t
    return jnp.sum(jnp.abs(r) ** 2) + 0.1 * jnp.sum(jnp.abs(w["b"] - b0) ** 4)

  w0 = {"a": 0.1 * cnormal(keys[3], (3,)), "b": jnp.zeros((2, 2), jnp.complex128)}
  return loss, w0


def as_pairs(w):
  return jax.tree.map(lambda z: (jnp.real(z), jnp.imag(z)), w)


def from_pairs(pairs):
  return {k: re + 1j * im for k, (re, im) in pairs.items()}


def run(tx, loss, w, steps, conj, hessian):
  state = tx.init(w)

  @jax.jit
  def step(w, state):
    g = jax.grad(loss)(w)
    g = jax.tree.map(jnp.conj, g) if conj else g
    extra = {"value_fn": loss} if hessian == "hvp" else {}
    u, state = tx.update(g, state, w, **extra)
    return optax.apply_updates(w, u), state

  for _ in range(steps):
    w, state = step(w, state)
  return w, state


CASES = {
  "free scalar": dict(hessian="free", blocks="scalar"),
  "free labels, weight decay": dict(hessian="free", blocks=LABELS, weight_decay=0.1),
  "hvp scalar": dict(hessian="hvp", blocks="scalar"),
  "hvp labels": dict(hessian="hvp", blocks=LABELS),
  "free, learning b2": dict(hessian="free", blocks="scalar", meta_parameters={"b2": "logit"}),
}


@pytest.mark.parametrize("case", CASES)
def test_complex_weights_are_pairs_of_reals(x64, case):
  kwargs = CASES[case]
  adam = optax.inject_hyperparams(optax.adam)(learning_rate=1.0, b2=0.99)
  common = dict(meta=optax.adam(0.05), initial_learning_rate=1e-2, gamma=0.9, **kwargs)
  loss, w0 = problem()
  pair_loss = lambda p: loss(from_pairs(p))

  with warnings.catch_warnings():
    warnings.simplefilter("error")  # No complex value may be cast to a real one.
    w_c, s_c = run(
      mo.metaoptimize(optax.contrib.split_real_and_imaginary(adam), **common),
      loss,
      w0,
      steps=12,
      conj=True,
      hessian=kwargs["hessian"],
    )
  w_r, s_r = run(
    mo.metaoptimize(adam, **common), pair_loss, as_pairs(w0), 12, False, kwargs["hessian"]
  )

  lr_c, lr_r = mo.learning_rates(s_c), mo.learning_rates(s_r)
  jax.tree.map(lambda c, r: np.testing.assert_allclose(c, r, rtol=1e-9), lr_c, lr_r)
  # The learning rates moved: the meta-gradient is not zero.
  assert all(abs(np.log(v / 1e-2)) > 0.05 for v in jax.tree.leaves(lr_c))
  jax.tree.map(
    lambda c, r: np.testing.assert_allclose(c, r[0] + 1j * r[1], rtol=1e-9, atol=1e-12),
    w_c,
    w_r,
    is_leaf=lambda x: isinstance(x, tuple),
  )
  if "meta_parameters" in kwargs:
    np.testing.assert_allclose(
      mo.meta_parameters(s_c)["b2"], mo.meta_parameters(s_r)["b2"], rtol=1e-9
    )
    assert mo.meta_parameters(s_c)["b2"] != pytest.approx(0.99, abs=1e-6)


def test_complex_trace_dtype_keeps_the_imaginary_part():
  w = {"a": jnp.ones(3, jnp.complex64)}
  state = mo.metaoptimize(optax.adam(1.0), trace_dtype=jnp.float32).init(w)
  assert state.trace["a"].dtype == jnp.complex64
  assert mo.learning_rates(state).dtype == jnp.float32
  with jax.enable_x64(True):
    w = {"a": jnp.ones(3, jnp.complex128)}
    state = mo.metaoptimize(optax.adam(1.0)).init(w)
    assert mo.learning_rates(state).dtype == jnp.float64
