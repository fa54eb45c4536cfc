"""IDBD and Autostep as peers, against transcriptions of their papers (numpy, float64)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo
from metaoptimize_optax.experiments import ancestors
from metaoptimize_optax.experiments import optimizers as optimizer_lib

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
from test_idbd import INPUTS, idbd, tracking_task  # noqa: E402


def autostep(x, y, mu, alpha0, tau=1e4):
  """Autostep (Mahmood et al., 2012, Algorithm 1), step by step."""
  n = x.shape[1]
  alpha, h, v, w = np.full(n, alpha0), np.zeros(n), np.zeros(n), np.zeros(n)
  rates, weights = [], []
  for xt, yt in zip(x, y, strict=True):
    delta = yt - w @ xt
    z = delta * xt * h
    v = np.maximum(np.abs(z), v + alpha * xt**2 * (np.abs(z) - v) / tau)
    alpha = np.where(v > 0, alpha * np.exp(mu * z / np.where(v > 0, v, 1.0)), alpha)
    alpha = alpha / max(np.sum(alpha * xt**2), 1.0)
    w = w + alpha * delta * xt
    h = h * (1 - alpha * xt**2) + alpha * delta * xt
    rates.append(alpha)
    weights.append(w)
  return np.array(rates), np.array(weights)


def run(tx, x, y, rates_of):
  loss = lambda w, xt, yt: 0.5 * (yt - w @ xt) ** 2

  def step(carry, batch):
    w, state = carry
    value, g = jax.value_and_grad(loss)(w, *batch)
    updates, state = tx.update(g, state, w, value=value)  # curvature g^2 / (2 L) = x^2
    w = optax.apply_updates(w, updates)
    return (w, state), (rates_of(state), w)

  w0 = jnp.zeros(x.shape[1])
  _, (rates, weights) = jax.lax.scan(step, (w0, tx.init(w0)), (jnp.asarray(x), jnp.asarray(y)))
  return np.asarray(rates), np.asarray(weights)


def test_idbd_peer_is_the_paper_and_metaoptimize_diagonal(x64):
  x, y = tracking_task(0)
  want_betas, want_w = idbd(x, y, 0.01, np.log(0.05))
  rates, w = run(ancestors.idbd(0.05, 0.01), x, y, lambda s: jnp.exp(s.log_learning_rate))
  np.testing.assert_allclose(rates, np.exp(want_betas), rtol=1e-6)
  np.testing.assert_allclose(w, want_w, rtol=1e-6, atol=1e-9)
  # The registry's MetaOptimize form of it, with the same Gauss-Newton curvature.
  built = optimizer_lib.build_optimizer("idbd_metaoptimize", 1000, {"meta_learning_rate": 0.01})
  rates, w = run(built.tx, x, y, lambda s: mo.learning_rates(s))
  np.testing.assert_allclose(rates, np.exp(want_betas), rtol=1e-6)
  np.testing.assert_allclose(w, want_w, rtol=1e-6, atol=1e-9)


def test_autostep_peer_is_the_paper(x64):
  x, y = tracking_task(3)
  want_rates, want_w = autostep(x, y, 0.01, 0.05)
  rates, w = run(ancestors.autostep(0.05, 0.01), x, y, lambda s: s.learning_rate)
  np.testing.assert_allclose(rates, want_rates, rtol=1e-6)
  np.testing.assert_allclose(w, want_w, rtol=1e-6, atol=1e-9)
  assert np.max(np.abs(np.log(want_rates[-1] / 0.05))) > 0.1  # the rates moved


def test_curvature_needs_value_or_curvature():
  tx = ancestors.autostep()
  w = jnp.zeros(INPUTS)
  with pytest.raises(ValueError, match="autostep: update needs value="):
    tx.update(jnp.ones(INPUTS), tx.init(w), w)
  updates, _ = tx.update(jnp.ones(INPUTS), tx.init(w), w, curvature=jnp.ones(INPUTS))
  assert updates.shape == (INPUTS,)


def test_a_registry_metaoptimize_with_the_diagonal_trace_gets_the_gauss_newton_curvature():
  """``hessian: diagonal`` in a config: the curvature is g^2 / (2 L) from the batch loss."""
  built = optimizer_lib.build_optimizer(
    "metaoptimize",
    100,
    {"base": "sgd", "meta": "adam", "blocks": "per_weight", "hessian": "diagonal"},
  )
  assert built.needs_value
  params = {"w": jnp.array([0.5, -1.0])}
  grads = {"w": jnp.array([0.2, -0.4])}
  value = jnp.asarray(0.5)
  ref = mo.sgd(meta="adam", blocks="per_weight", hessian="diagonal")
  curvature = {"w": grads["w"] ** 2 / (2 * value)}
  got = built.tx.update(grads, built.tx.init(params), params, value=value)
  want = ref.update(grads, ref.init(params), params, curvature=curvature)
  jax.tree.map(np.testing.assert_allclose, got, want)
