"""Convergence on the targets Optax uses to test its own wrappers.

Every base at learning rate 1, wrapped with the paper's default meta optimizer
(Lion at 1e-3) from ``initial_learning_rate=1e-3``, must reach the optimum to
rtol = atol = 3e-2 within 30,000 steps.
"""

import jax
import jax.numpy as jnp
import optax
import pytest

import metaoptimize_optax as mo

STEPS = 30_000
TARGETS = {
  "parabola": (
    jnp.array([-1.0, 10.0, 1.0]),
    jnp.array([1.0, -1.0, 1.0]),
    lambda p, f: jnp.sum((p - f) ** 2),
  ),
  "rosenbrock": (
    jnp.zeros(2),
    jnp.array([1.0, 1.0]),
    lambda p, f: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2,
  ),
  "matrix_parabola": (
    jnp.zeros((2, 2)),
    jnp.array([[3.0, -2.0], [1.0, 4.0]]),
    lambda p, f: jnp.sum((p - f) ** 2),
  ),
  "mixed_tensor": (
    (jnp.zeros(3), jnp.zeros((2, 2))),
    (jnp.array([1.0, -1.0, 2.0]), jnp.array([[1.0, 0.0], [-1.0, 1.0]])),
    lambda p, f: jnp.sum((p[0] - f[0]) ** 2) + jnp.sum((p[1] - f[1]) ** 2),
  ),
}
BASES = {
  "sgd": lambda: optax.sgd(1.0),
  "sgd_momentum": lambda: optax.sgd(1.0, momentum=0.9),
  "adam": lambda: optax.adam(1.0),
  "adamw": lambda: optax.adamw(1.0),
  "lion": lambda: optax.lion(1.0, b1=0.99),
  "rmsprop": lambda: optax.rmsprop(1.0),
}

# SGD on Rosenbrock cannot converge under the paper's Hessian-free algorithm: its
# trace ignores curvature, so the meta-gradient <h, g> keeps pointing "further
# along the valley" and raises alpha to ~2.7e-3, past ~2.2e-3 where plain SGD
# starts to bounce across the valley (curvature ~ 900) and stalls.
# `test_sgd_rosenbrock_failure_is_edge_of_stability` checks that explanation.
SGD_ROSENBROCK = pytest.mark.xfail(
  strict=True, reason="Hessian-free trace drives SGD past its stable rate on Rosenbrock"
)

# SGD with momentum on Rosenbrock reaches the optimum (loss ~1e-14 by step
# ~2,500), and then the same mechanism takes over: once the gradient is
# rounding noise, the sign-based meta step random-walks alpha, and whether it
# crosses momentum SGD's stable rate (~3.8e-3) and diverges depends on float
# rounding. Of six starting rates within 0.3% of 1e-3, two diverged after
# converging, with either of two orderings of the core's float operations.
# `test_sgd_momentum_rosenbrock_reaches_the_optimum` checks the first part.
NOT_STABLE_AFTER_CONVERGENCE = {("sgd_momentum", "rosenbrock")}


def train(tx, params, loss, steps=STEPS):
  @jax.jit
  def run(params):
    def body(_, carry):
      params, state = carry
      updates, state = tx.update(jax.grad(loss)(params), state, params)
      return optax.apply_updates(params, updates), state

    return jax.lax.fori_loop(0, steps, body, (params, tx.init(params)))

  return run(params)


@pytest.mark.parametrize(
  ("base", "target"),
  [
    (b, t)
    for b in sorted(BASES)
    for t in sorted(TARGETS)
    if (b, t) not in NOT_STABLE_AFTER_CONVERGENCE
  ],
)
def test_converges(request, base, target):
  if (base, target) == ("sgd", "rosenbrock"):
    request.applymarker(SGD_ROSENBROCK)
  initial, final, objective = TARGETS[target]
  tx = mo.metaoptimize(BASES[base](), initial_learning_rate=1e-3)
  params, state = train(tx, initial, lambda p: objective(p, final))
  for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(final), strict=True):
    assert jnp.allclose(got, want, rtol=3e-2, atol=3e-2), (got, want)
  assert jnp.isfinite(mo.learning_rates(state))


@pytest.mark.parametrize("initial_learning_rate", [0.999e-3, 1e-3, 1.001e-3])
def test_sgd_momentum_rosenbrock_reaches_the_optimum(initial_learning_rate):
  initial, final, objective = TARGETS["rosenbrock"]
  loss = lambda p: objective(p, final)
  tx = mo.metaoptimize(BASES["sgd_momentum"](), initial_learning_rate=initial_learning_rate)

  @jax.jit
  def lowest_loss(params):
    def body(_, carry):
      params, state, lowest = carry
      updates, state = tx.update(jax.grad(loss)(params), state, params)
      params = optax.apply_updates(params, updates)
      return params, state, jnp.fmin(lowest, loss(params))

    return jax.lax.fori_loop(0, 5_000, body, (params, tx.init(params), loss(params)))[2]

  assert float(lowest_loss(initial)) < 1e-10


def test_sgd_rosenbrock_failure_is_edge_of_stability():
  initial, final, objective = TARGETS["rosenbrock"]
  loss = lambda p: objective(p, final)
  stalled, _ = train(optax.sgd(2.5e-3), initial, loss)
  converged, _ = train(optax.sgd(2e-3), initial, loss)
  assert jnp.allclose(converged, final, atol=3e-2)
  assert not jnp.allclose(stalled, final, atol=3e-2)
  _, state = train(mo.metaoptimize(optax.sgd(1.0), initial_learning_rate=1e-3), initial, loss)
  assert float(mo.learning_rates(state)) > 2.2e-3
