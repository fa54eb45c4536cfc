"""Meta-parameters beyond the learning rate: their meta-gradients are derivatives.

With a meta optimizer that records the meta-gradient and never moves, the
meta-gradient of each learned hyperparameter at step t equals the derivative of
the loss ``f_t(w_t)`` of the unrolled t-step training with respect to its
unconstrained ``phi``: exactly for ``hessian="hvp"``, and with every training
gradient held constant for ``hessian="free"``. The learning rate's meta-gradient
stays exact beside them.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo
from metaoptimize_optax._meta_parameters import to_phi, to_value

T = 5
LR0 = 0.05
WD0 = 0.01
FACTORIES = {
  "adam": (optax.adam, {"b1": 0.9, "b2": 0.99, "eps": 1e-3}),
  "sgd_momentum": (optax.sgd, {"momentum": 0.8}),
  "rmsprop": (optax.rmsprop, {"decay": 0.9, "eps": 1e-3}),
}
CASES = [
  ("adam", {"b1": "logit"}),
  ("adam", {"b2": "logit"}),
  ("adam", {"eps": "log"}),
  ("adam", {"weight_decay": "log"}),
  ("adam", {"b1": "logit", "b2": "logit", "eps": "log", "weight_decay": "log"}),
  ("sgd_momentum", {"momentum": "logit"}),
  ("sgd_momentum", {"momentum": "logit", "weight_decay": "logit"}),
  ("rmsprop", {"decay": "logit"}),
]


def record():
  """A meta optimizer whose state is the last meta-gradient and whose updates are 0."""
  return optax.GradientTransformation(
    lambda p: jax.tree.map(jnp.zeros_like, p),
    lambda u, s, p=None: (jax.tree.map(jnp.zeros_like, u), u),
  )


def init_params():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  return {
    "hidden": {"w": 0.5 * jax.random.normal(k1, (3, 4)), "b": jnp.zeros(4)},
    "out": {"w": 0.5 * jax.random.normal(k2, (4, 2)), "b": 0.1 * jax.random.normal(k3, (2,))},
  }


def make_data():
  kx, ky = jax.random.split(jax.random.key(1))
  return jax.random.normal(kx, (T, 8, 3)), jax.random.normal(ky, (T, 8, 2))


def loss(params, x, y):
  h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
  return jnp.mean((h @ params["out"]["w"] + params["out"]["b"] - y) ** 2)


def unrolled_loss(phi, log_lr, base_name, spaces, params, data, hold_gradients):
  """f_{T-1}(w_{T-1}) after T-1 steps at meta-parameters phi and rate exp(log_lr)."""
  factory, hyperparams = FACTORIES[base_name]
  values = {name: to_value(p, spaces[name]) for name, p in phi.items()}
  kappa = values.pop("weight_decay", WD0)
  base = factory(1.0, **{**hyperparams, **values})
  state = base.init(params)
  for t in range(T - 1):
    g = jax.grad(loss)(params, data[0][t], data[1][t])
    if hold_gradients:
      g = jax.lax.stop_gradient(g)
    u, state = base.update(g, state, params)
    params = jax.tree.map(lambda w, ui: w + jnp.exp(log_lr) * (ui - kappa * w), params, u)
  return loss(params, data[0][T - 1], data[1][T - 1])


def injected(base_name):
  factory, hyperparams = FACTORIES[base_name]
  return optax.inject_hyperparams(factory)(learning_rate=1.0, **hyperparams)


def train(tx, params, data, hessian):
  state = tx.init(params)

  @jax.jit
  def step(params, state, x, y):
    value_fn = lambda p: loss(p, x, y)
    extra = {"value_fn": value_fn} if hessian == "hvp" else {}
    updates, state = tx.update(jax.grad(value_fn)(params), state, params, **extra)
    return optax.apply_updates(params, updates), state

  for t in range(T):
    params, state = step(params, state, data[0][t], data[1][t])
  return params, state


def start_phi(base_name, spaces):
  hyperparams = {**FACTORIES[base_name][1], "weight_decay": WD0}
  return {name: to_phi(jnp.asarray(hyperparams[name]), space) for name, space in spaces.items()}


@pytest.mark.parametrize("hessian", ["free", "hvp"])
@pytest.mark.parametrize("base_name, spaces", CASES)
def test_meta_gradient_is_derivative_of_unrolled_loss(x64, base_name, spaces, hessian):
  params, data = init_params(), make_data()
  tx = mo.metaoptimize(
    injected(base_name),
    record(),
    initial_learning_rate=LR0,
    weight_decay=WD0,
    hessian=hessian,
    meta_parameters=spaces,
  )
  _, state = train(tx, params, data, hessian)
  phi0 = start_phi(base_name, spaces)
  want_phi, want_lr = jax.grad(unrolled_loss, argnums=(0, 1))(
    phi0, jnp.log(LR0), base_name, spaces, params, data, hessian == "free"
  )
  got_phi = state.meta_parameters.meta_state
  assert set(got_phi) == set(spaces)
  for name in spaces:
    assert abs(float(want_phi[name])) > 1e-8, name  # a live derivative
    np.testing.assert_allclose(got_phi[name], want_phi[name], rtol=1e-9, err_msg=name)
  np.testing.assert_allclose(state.meta_state, want_lr, rtol=1e-9)
  # The values did not move (the meta optimizer records only) and are the starts.
  for name, value in mo.meta_parameters(state).items():
    np.testing.assert_allclose(value, to_value(phi0[name], spaces[name]), rtol=1e-12)


@pytest.mark.parametrize("hessian", ["free", "hvp"])
def test_learning_rate_meta_gradient_unchanged_beside_them(x64, hessian):
  params, data = init_params(), make_data()
  kwargs = dict(initial_learning_rate=LR0, weight_decay=WD0, hessian=hessian)
  alone = mo.metaoptimize(injected("adam"), record(), **kwargs)
  beside = mo.metaoptimize(
    injected("adam"), record(), meta_parameters={"b1": "logit", "b2": "logit"}, **kwargs
  )
  p1, s1 = train(alone, params, data, hessian)
  p2, s2 = train(beside, params, data, hessian)
  # Equal up to rounding: sigmoid(logit(0.9)) is 0.9 to the last bit or two.
  np.testing.assert_allclose(s1.meta_state, s2.meta_state, rtol=1e-12)
  chex.assert_trees_all_close(p1, p2, rtol=1e-12)
  chex.assert_trees_all_close(s1.trace, s2.trace, rtol=1e-12)


def test_free_meta_gradient_differs_from_the_full_derivative(x64):
  """The Hessian-free tangent holds the gradient fixed: it misses the curvature term."""
  params, data = init_params(), make_data()
  spaces = {"b1": "logit"}
  tx = mo.metaoptimize(
    injected("adam"), record(), initial_learning_rate=LR0, meta_parameters=spaces
  )
  _, state = train(tx, params, data, "free")
  full = jax.grad(unrolled_loss)(
    start_phi("adam", spaces), jnp.log(LR0), "adam", spaces, params, data, False
  )
  assert abs(float(state.meta_parameters.meta_state["b1"] - full["b1"])) > 1e-6


def test_one_step_by_hand(x64):
  """SGD momentum, one scalar weight, loss w^2 / 2 (g = w), gamma 1, mu = sigmoid(phi).

  Step 1 (w = 1): m = g = 1 (no dependence on mu), dw = -a m, X = 0.
  Step 2 (w = 1 - a): z = X * g = 0; m = g + mu * 1, dm/dphi = mu (1 - mu), so
    X = -a * mu (1 - mu) with the gradient held fixed.
  Step 3: z = X * g_3 with w_3 = w_2 - a (w_2 + mu).
  """
  a, mu = 0.1, 0.5
  base = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0, momentum=mu)
  tx = mo.metaoptimize(
    base, record(), initial_learning_rate=a, meta_parameters={"momentum": "logit"}
  )
  w = jnp.array(1.0)
  state = tx.init(w)
  for _ in range(3):
    u, state = tx.update(w, state, w)
    w = w + u
  w2 = 1 - a
  w3 = w2 - a * (w2 + mu)
  x3 = -a * mu * (1 - mu)
  np.testing.assert_allclose(state.meta_parameters.meta_state["momentum"], x3 * w3, rtol=1e-12)


def test_values_at_init_and_dtypes():
  params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.zeros(2, jnp.bfloat16)}
  tx = mo.adamw(
    1e-3,
    b1=0.8,
    b2=0.999,
    weight_decay=0.05,
    meta_parameters={"b1": "logit", "b2": "logit", "eps": "log", "weight_decay": "log"},
  )
  state = tx.init(params)
  values = mo.meta_parameters(state)
  np.testing.assert_allclose(
    [values[k] for k in ("b1", "b2", "eps", "weight_decay")], [0.8, 0.999, 1e-8, 0.05], rtol=1e-6
  )
  learned = state.meta_parameters
  for tree in (learned.phi, learned.value, learned.meta_state):
    for leaf in jax.tree.leaves(tree):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32
  # Tangents in the dtype of what they differentiate; one column per name.
  for x in jax.tree.leaves(learned.trace):
    assert x.dtype == jnp.bfloat16 and x.shape[0] == 4
  s_leaves = [x for x in jax.tree.leaves(state.base_state) if jnp.issubdtype(x.dtype, jnp.inexact)]
  assert [x.dtype for x in learned.base_state_trace] == [x.dtype for x in s_leaves]
  # Training keeps those dtypes, and b2 stays a float32 value below 1.
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  updates, state = jax.jit(tx.update)(grads, state, params)
  assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
  assert float(mo.meta_parameters(state)["b2"]) < 1.0
  assert mo.meta_parameters(mo.adamw().init(params)) == {}


def test_learning_b2_and_weight_decay_trains():
  """A regression where a larger b2 and a smaller weight decay help: both move."""
  key = jax.random.key(3)
  x = jax.random.normal(key, (256, 8))
  w_true = jnp.linspace(-2.0, 2.0, 8)
  y = x @ w_true
  f = lambda w, i: jnp.mean((x[i] @ w - y[i]) ** 2)
  tx = mo.adamw(
    1e-2,
    b2=0.9,
    weight_decay=0.3,
    meta="adam",
    meta_learning_rate=3e-2,
    meta_parameters={"b2": "logit", "weight_decay": "log"},
  )
  w = jnp.zeros(8)
  state = tx.init(w)
  step = jax.jit(lambda w, s, i: tx.update(jax.grad(f)(w, i), s, w))
  for t in range(400):
    u, state = step(w, state, jnp.arange(32) + 32 * (t % 8))
    w = optax.apply_updates(w, u)
  values = mo.meta_parameters(state)
  assert float(values["weight_decay"]) < 0.3 * 0.5  # decay hurts here: it shrinks
  assert float(f(w, jnp.arange(256))) < 0.1 * float(f(jnp.zeros(8), jnp.arange(256)))
  assert float(values["b2"]) != pytest.approx(0.9, abs=1e-4)


# ---------------------------------------------------------------------------
# Errors.

PARAMS = {"a": jnp.ones(3), "b": jnp.ones(2)}


@pytest.mark.parametrize(
  "meta_parameters, error, match",
  [
    (["b2"], TypeError, r"meta_parameters=\['b2'\] is not a mapping"),
    ({"b2": "sigmoid"}, ValueError, r"meta_parameters\['b2'\]='sigmoid' .*\('log', 'logit'\)"),
    ({"learning_rate": "log"}, ValueError, "'learning_rate' cannot be learned"),
    ({"weight_decay": "log"}, ValueError, r"'weight_decay'.*start weight_decay=0.0 .*> 0"),
    ({3: "log"}, TypeError, "key 3 is not a hyperparameter name"),
  ],
)
def test_rejected_at_construction(meta_parameters, error, match):
  with pytest.raises(error, match=match):
    mo.metaoptimize(optax.adam(1.0), meta_parameters=meta_parameters)


def test_weight_decay_above_one_under_logit():
  with pytest.raises(ValueError, match=r"start weight_decay=1.5 .*in \(0, 1\).*'log'"):
    mo.metaoptimize(optax.sgd(1.0), weight_decay=1.5, meta_parameters={"weight_decay": "logit"})


@pytest.mark.parametrize(
  "base, meta_parameters, match",
  [
    (optax.adam(1.0), {"b2": "logit"}, "not built with optax.inject_hyperparams"),
    (
      optax.inject_hyperparams(optax.adam)(learning_rate=1.0),
      {"momentum": "logit"},
      r"'momentum' is not a hyperparameter of the base; .*\['b1', 'b2', 'eps', 'eps_root'\]",
    ),
    (
      optax.inject_hyperparams(optax.sgd)(learning_rate=1.0, momentum=1.0),
      {"momentum": "logit"},
      r"'momentum'\]: its start 1.0 lies outside the 'logit' space",
    ),
    (
      optax.inject_hyperparams(optax.adam)(
        learning_rate=1.0, b2=optax.linear_schedule(0.9, 0.999, 100)
      ),
      {"b2": "logit"},
      "'b2' is a schedule",
    ),
    (
      optax.inject_hyperparams(optax.adam)(learning_rate=1.0, eps=0.0),
      {"eps": "log"},
      r"'eps'\]: its start 0.0 lies outside the 'log' space",
    ),
  ],
)
def test_rejected_at_init(base, meta_parameters, match):
  tx = mo.metaoptimize(base, meta_parameters=meta_parameters)
  with pytest.raises(ValueError, match=match):
    tx.init(PARAMS)


def test_bfloat16_hyperparameters_of_a_user_base_are_refused():
  base = optax.inject_hyperparams(optax.adam)(learning_rate=1.0)
  tx = mo.metaoptimize(base, meta_parameters={"b2": "logit"})
  with pytest.raises(ValueError, match="stores 'b2' in bfloat16.*hyperparam_dtype=jnp.float32"):
    tx.init(jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS))


def test_update_without_params():
  tx = mo.adamw(1e-3, weight_decay=0.0, meta_parameters={"b1": "logit"})
  state = tx.init(PARAMS)
  with pytest.raises(ValueError, match="needs params"):
    tx.update(PARAMS, state)


# ---------------------------------------------------------------------------
# The Optax contract.


def params_and_grads():
  params = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}, "scale": jnp.ones(4)}
  grads = jax.tree.map(lambda p: jnp.arange(p.size).reshape(p.shape) % 3 - 1.0, params)
  return params, grads


def learner(**kwargs):
  return mo.adamw(
    1e-2, meta_learning_rate=0.05, meta_parameters={"b2": "logit", "weight_decay": "log"}, **kwargs
  )


def run(tx, steps=4, **extra):
  params, grads = params_and_grads()
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params, **extra)
    params = optax.apply_updates(params, updates)
  return params, state


def test_chain_and_apply_if_finite_match_standalone():
  p1, s1 = run(learner())
  for wrapped in (
    optax.chain(optax.identity(), learner()),
    optax.apply_if_finite(learner(), max_consecutive_errors=3),
  ):
    p2, s2 = run(wrapped)
    chex.assert_trees_all_close(p1, p2)
    chex.assert_trees_all_close(mo.meta_parameters(s1), mo.meta_parameters(s2))
  assert float(mo.meta_parameters(s1)["b2"]) != pytest.approx(0.999, abs=1e-6)


def test_multisteps_learns_once_per_update():
  _, s1 = run(learner(), steps=2)
  _, s2 = run(optax.MultiSteps(learner(), every_k_schedule=3), steps=6)
  chex.assert_trees_all_close(mo.meta_parameters(s1), mo.meta_parameters(s2), rtol=1e-5)


def test_inject_hyperparams_of_metaoptimize_itself():
  base = optax.inject_hyperparams(optax.adam)(learning_rate=1.0)
  kwargs = dict(initial_learning_rate=1e-2, weight_decay=0.1, gamma=0.9)
  spaces = {"b2": "logit"}
  plain = mo.metaoptimize(base, optax.adam(0.05), meta_parameters=spaces, **kwargs)
  outer = optax.inject_hyperparams(
    mo.metaoptimize, static_args=("meta_parameters", "initial_learning_rate")
  )(base, optax.adam(0.05), meta_parameters=spaces, **kwargs)
  _, s1 = run(plain)
  _, s2 = run(outer)
  chex.assert_trees_all_close(mo.meta_parameters(s1), mo.meta_parameters(s2), rtol=1e-6)


@pytest.mark.parametrize("hessian", ["free", "hvp"])
def test_jit_with_donation(hessian):
  params, grads = params_and_grads()
  value_fn = lambda p: sum(jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(p))
  tx = learner(hessian=hessian)
  extra = {"value_fn": value_fn} if hessian == "hvp" else {}

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, state):
    updates, state = tx.update(jax.grad(value_fn)(params), state, params, **extra)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  ref_p, ref_s = params, state
  for _ in range(3):
    ref_u, ref_s = tx.update(jax.grad(value_fn)(ref_p), ref_s, ref_p, **extra)
    ref_p = optax.apply_updates(ref_p, ref_u)
  params, state = jax.tree.map(jnp.copy, (params, state))
  for _ in range(3):
    params, state = step(params, state)
  chex.assert_trees_all_close(params, ref_p, rtol=1e-5)
  chex.assert_trees_all_close(mo.meta_parameters(state), mo.meta_parameters(ref_s), rtol=1e-5)


@pytest.mark.slow  # 20 s, most of it orbax's own start.
def test_orbax_round_trip(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  params, grads = params_and_grads()
  tx = learner()
  _, state = run(tx, steps=3)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "state", state)
  with ocp.StandardCheckpointer() as ckpt:
    restored = ckpt.restore(tmp_path / "state", jax.eval_shape(lambda: state))
  chex.assert_trees_all_equal(restored, state)
  u1, s1 = tx.update(grads, state, params)
  u2, s2 = tx.update(grads, restored, params)
  chex.assert_trees_all_equal((u1, mo.meta_parameters(s1)), (u2, mo.meta_parameters(s2)))


def test_phi_stays_inside_float32_bounds():
  """A meta optimizer pushing b2 up forever: b2 stops below 1 and Adam stays finite."""
  params, grads = params_and_grads()
  tx = mo.adamw(
    1e-2, meta_parameters={"b2": "logit"}, meta_parameters_meta=optax.sgd(-100.0)
  )  # ascends: drives phi up by 100 |z| per step
  state = tx.init(params)
  for _ in range(20):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert float(state.meta_parameters.phi["b2"]) <= 16.0
  assert 0.999 < float(mo.meta_parameters(state)["b2"]) < 1.0
  assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_meta_parameters_meta_has_a_state_of_its_own():
  tx = mo.adamw(
    1e-2, meta="lion", meta_parameters={"b1": "logit"}, meta_parameters_meta=optax.sgd(0.0)
  )
  _, state = run(tx)
  assert float(mo.meta_parameters(state)["b1"]) == pytest.approx(0.9, rel=1e-6)
  assert float(mo.learning_rates(state)) != pytest.approx(1e-2, rel=1e-4)


@pytest.mark.parametrize(
  "build",
  [
    lambda: mo.adamw(b1=0.0, meta_parameters={"b1": "logit"}),
    lambda: mo.sgdm(momentum=1.0, meta_parameters={"momentum": "logit"}),
    # The stream call's b1 is 0: learning it needs a start inside (0, 1).
    lambda: mo.recommended(meta_parameters={"b1": "logit"}),
  ],
)
def test_a_preset_rejects_a_learned_start_outside_its_space_at_construction(build):
  with pytest.raises(ValueError, match=r"meta_parameters\['(b1|momentum)'\]: its start"):
    build()


def test_a_preset_names_a_meta_parameters_that_is_not_a_mapping():
  with pytest.raises(TypeError, match=r"meta_parameters=\['b2'\] is not a mapping"):
    mo.adamw(meta_parameters=["b2"])
