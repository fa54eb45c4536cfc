"""Step-for-step agreement with the authors' Hessian-free algorithm (float64).

``reference_hf`` below restates, in NumPy, the update rules of the authors'
published PyTorch code (class ``HF``: its SGD, SGDm, RMSProp, Adam and Lion
bases and its Lion, Adam and RMSProp meta updates, scalar and blockwise step
sizes). MetaOptimize reproduces each pair when its Optax base and meta
optimizers are configured to compute the same thing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo

EPS = 1e-10  # The authors' epsilon, inside the square root.


def reference_hf(w0, grad_fn, steps, base, meta, alpha0, gamma, weight_decay, groups):
  """The authors' Hessian-free MetaOptimize, written with NumPy lists of arrays."""
  w = [np.array(x, np.float64) for x in w0]
  n, k = len(w), len(groups)
  beta = np.full(k, np.log(alpha0))
  h = [np.zeros_like(x) for x in w]
  mom = [np.zeros_like(x) for x in w]
  tr = [np.zeros_like(x) for x in w]
  lam_base = lam_meta = 1.0
  meta_mom, meta_tr = np.zeros(k), np.zeros(k)
  block_of = [next(b for b, grp in enumerate(groups) if i in grp) for i in range(n)]
  history = []
  for _ in range(steps):
    g = grad_fn(w)
    alpha = np.exp(beta)
    z = np.array([sum(np.sum(h[i] * g[i]) for i in grp) for grp in groups])
    # Base update.
    if base["alg"] in ("RMSProp", "Adam"):
      lam_base *= base["normalizer"]
      mu = (1 - base["normalizer"]) / (1 - lam_base)
    for i in range(n):
      a, wd = alpha[block_of[i]], weight_decay
      if base["alg"] == "SGD":
        delta = a * (g[i] + wd * w[i])
      elif base["alg"] == "SGDm":
        delta = a * (mom[i] + wd * w[i])
        mom[i] = base["momentum"] * mom[i] + (1 - base["momentum"]) * g[i]
      elif base["alg"] == "RMSProp":
        tr[i] = base["normalizer"] * tr[i] + g[i] ** 2
        delta = a * (g[i] / np.sqrt(mu * tr[i] + EPS) + wd * w[i])
      elif base["alg"] == "Adam":
        mom[i] = base["momentum"] * mom[i] + g[i]
        tr[i] = base["normalizer"] * tr[i] + g[i] ** 2
        delta = a * (mom[i] / np.sqrt(mu * tr[i] + EPS) + wd * w[i])
      elif base["alg"] == "Lion":
        delta = a * (
          np.sign(base["lion_beta2"] * mom[i] + (1 - base["lion_beta2"]) * g[i]) + wd * w[i]
        )
        mom[i] = base["momentum"] * mom[i] + (1 - base["momentum"]) * g[i]
      w[i] = w[i] - delta
      h[i] = gamma * (1 - wd * a) * h[i] - delta
    # Meta update.
    eta, mwd = meta["stepsize"], meta["weight_decay"]
    if meta["alg"] == "Lion":
      beta = (1 - eta * mwd) * beta - eta * np.sign(
        meta["lion_beta2"] * meta_mom + (1 - meta["lion_beta2"]) * z
      )
      meta_mom = meta["momentum"] * meta_mom + (1 - meta["momentum"]) * z
    else:
      lam_meta *= meta["normalizer"]
      mu = (1 - meta["normalizer"]) / (1 - lam_meta)
      meta_tr = meta["normalizer"] * meta_tr + z**2
      if meta["alg"] == "Adam":
        meta_mom = meta["momentum"] * meta_mom + z
        num = meta_mom
      else:
        num = z
      beta = (1 - eta * mwd) * beta - eta * num / np.sqrt(mu * meta_tr + EPS)
    history.append(([x.copy() for x in w], beta.copy()))
  return history


def unnormalised_momentum(b1):
  """Rescales a bias-corrected first moment into the authors' momentum sum."""
  return optax.scale_by_schedule(lambda count: (1 - b1 ** (count + 1)) / (1 - b1))


def previous_step_momentum(momentum):
  """The authors' SGDm base: step along the momentum of the previous step."""

  def init(params):
    return jax.tree.map(jnp.zeros_like, params)

  def update(g, m, params=None):
    del params
    new_m = jax.tree.map(lambda mi, gi: momentum * mi + (1 - momentum) * gi, m, g)
    return jax.tree.map(jnp.negative, m), new_m

  return optax.GradientTransformation(init, update)


def optax_base(cfg):
  alg = cfg["alg"]
  if alg == "SGD":
    return optax.sgd(1.0)
  if alg == "SGDm":
    return previous_step_momentum(cfg["momentum"])
  if alg == "RMSProp":
    return optax.chain(
      optax.scale_by_adam(0.0, cfg["normalizer"], eps=0.0, eps_root=EPS), optax.scale(-1.0)
    )
  if alg == "Adam":
    return optax.chain(
      optax.scale_by_adam(cfg["momentum"], cfg["normalizer"], eps=0.0, eps_root=EPS),
      unnormalised_momentum(cfg["momentum"]),
      optax.scale(-1.0),
    )
  return optax.lion(1.0, b1=cfg["lion_beta2"], b2=cfg["momentum"], weight_decay=0.0)


def optax_meta(cfg):
  eta, wd = cfg["stepsize"], cfg["weight_decay"]
  if cfg["alg"] == "Lion":
    return optax.lion(eta, b1=cfg["lion_beta2"], b2=cfg["momentum"], weight_decay=wd)
  if cfg["alg"] == "Adam":
    return optax.chain(
      optax.scale_by_adam(cfg["momentum"], cfg["normalizer"], eps=0.0, eps_root=EPS),
      unnormalised_momentum(cfg["momentum"]),
      optax.add_decayed_weights(wd),
      optax.scale(-eta),
    )
  return optax.chain(
    optax.scale_by_adam(0.0, cfg["normalizer"], eps=0.0, eps_root=EPS),
    optax.add_decayed_weights(wd),
    optax.scale(-eta),
  )


BASE_CONFIGS = {
  "SGD": {"alg": "SGD"},
  "SGDm": {"alg": "SGDm", "momentum": 0.9},
  "RMSProp": {"alg": "RMSProp", "normalizer": 0.999},
  "Adam": {"alg": "Adam", "momentum": 0.9, "normalizer": 0.999},
  "Lion": {"alg": "Lion", "momentum": 0.99, "lion_beta2": 0.9},
}
META_CONFIGS = {
  "Lion": {
    "alg": "Lion",
    "stepsize": 1e-2,
    "momentum": 0.99,
    "lion_beta2": 0.9,
    "weight_decay": 0.0,
  },
  "Adam": {
    "alg": "Adam",
    "stepsize": 1e-2,
    "momentum": 0.9,
    "normalizer": 0.999,
    "weight_decay": 1e-3,
  },
  "RMSProp": {"alg": "RMSProp", "stepsize": 1e-2, "normalizer": 0.99, "weight_decay": 0.0},
}


@pytest.mark.parametrize("blockwise", [False, True])
@pytest.mark.parametrize("meta_name", sorted(META_CONFIGS))
@pytest.mark.parametrize("base_name", sorted(BASE_CONFIGS))
def test_agrees_with_authors_algorithm(x64, base_name, meta_name, blockwise):
  rng = np.random.default_rng(0)
  targets = [rng.normal(size=(3, 4)), rng.normal(size=(4,)), rng.normal(size=(2, 2))]
  curv = [rng.uniform(0.5, 2.0, size=t.shape) for t in targets]
  w0 = [rng.normal(size=t.shape) for t in targets]
  grad_np = lambda w: [c * np.tanh(x - t) for x, t, c in zip(w, targets, curv, strict=True)]
  groups = [[0, 1], [2]] if blockwise else [[0, 1, 2]]
  steps, alpha0, gamma, wd = 40, 1e-2, 0.99, 0.1

  history = reference_hf(
    w0, grad_np, steps, BASE_CONFIGS[base_name], META_CONFIGS[meta_name], alpha0, gamma, wd, groups
  )

  tx = mo.metaoptimize(
    optax_base(BASE_CONFIGS[base_name]),
    optax_meta(META_CONFIGS[meta_name]),
    initial_learning_rate=alpha0,
    gamma=gamma,
    weight_decay=wd,
    blocks=["a", "a", "b"] if blockwise else "scalar",
  )
  params = [jnp.asarray(x) for x in w0]
  state = tx.init(params)
  update = jax.jit(tx.update)
  for w_ref, beta_ref in history:
    grads = [jnp.asarray(x) for x in grad_np([np.asarray(p) for p in params])]
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    for p, r in zip(params, w_ref, strict=True):
      np.testing.assert_allclose(p, r, rtol=1e-9, atol=1e-12)
    lrs = mo.learning_rates(state)
    got = np.log([lrs["a"], lrs["b"]]) if blockwise else np.log([lrs])
    np.testing.assert_allclose(got, beta_ref, rtol=1e-9, atol=1e-12)
  assert np.max(np.abs(history[-1][1] - np.log(alpha0))) > 1e-3  # beta moved.
