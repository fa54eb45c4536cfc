"""A user's typed code: type-checked by pyright in CI (.ci/run), run by tests/test_imports.py.

Each line is what a user writes with an Optax pipeline; pyright (basic) must accept it.
"""

import jax
import jax.numpy as jnp
import optax

import metaoptimize_optax as mo

params = {"w": jnp.ones(3)}
grads = {"w": jnp.full(3, 0.1)}

tx: optax.GradientTransformationExtraArgs = mo.adamw(1e-3, meta="adam", blocks="per_layer")
chained: optax.GradientTransformation = optax.chain(optax.clip_by_global_norm(1.0), mo.sgd(0.1))
stream: optax.GradientTransformationExtraArgs = mo.recommended()
finite: optax.GradientTransformationExtraArgs = mo.recommended(total_steps=1000)
custom: optax.GradientTransformationExtraArgs = mo.metaoptimize(
  optax.adam(1.0), optax.lion(1e-3), initial_learning_rate=1e-3, hessian="hvp", gamma=0.99
)

opt_state: optax.OptState = tx.init(params)
updates, opt_state = tx.update(grads, opt_state, params)
params = optax.apply_updates(params, updates)

state: mo.MetaOptimizeState = mo.find_state(opt_state)
log_rates = state.log_learning_rate
step: jax.Array = state.count
learned: dict[str, jax.Array] = mo.meta_parameters(opt_state)
rates = mo.learning_rates(opt_state)
