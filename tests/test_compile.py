"""The size of the compiled update: linear in the number of params leaves.

A scalar that every leaf's fusion reads (the meta-gradient, the zero of
``_traces.after``) must be computed once, not copied into each fusion with the
chain of per-leaf operations it is made from: a copy per leaf makes the program,
and XLA's compile time, grow with the square of the number of leaves (a model
of a few hundred leaves would compile for minutes). The count of instructions
in XLA's optimized program is exact, so the growth is checked without timing.
"""

import jax
import jax.numpy as jnp
import optax
import pytest

import metaoptimize_optax as mo

X = jnp.linspace(-1.0, 1.0, 24).reshape(3, 8)


def value_fn(params):
  return sum(jnp.sum(jnp.tanh(X @ w.T) ** 2) for w in jax.tree.leaves(params))


CONFIGS = {
  "free scalar": (lambda: mo.metaoptimize(optax.adamw(1e-3), mo.lion()), {}),
  "free per_layer": (lambda: mo.metaoptimize(optax.adamw(1e-3), mo.lion(), blocks="per_layer"), {}),
  "learned b2": (
    lambda: mo.metaoptimize(
      optax.inject_hyperparams(optax.adam)(learning_rate=1.0),
      mo.lion(),
      meta_parameters={"b2": "logit"},
    ),
    {},
  ),
  "learned weight_decay": (
    lambda: mo.metaoptimize(
      optax.adam(1e-3), mo.lion(), weight_decay=0.1, meta_parameters={"weight_decay": "log"}
    ),
    {},
  ),
  "hvp scalar": (
    lambda: mo.metaoptimize(optax.adam(1e-3), mo.lion(), hessian="hvp"),
    {"value_fn": value_fn},
  ),
}


def instructions(tx, num_leaves, extra_args):
  """Instructions in XLA's optimized program of the donated step ``params + update``."""
  params = {f"w{i:03d}": jnp.zeros((4, 8)) for i in range(num_leaves)}

  def step(p, s, g):
    u, s = tx.update(g, s, p, **extra_args)
    return optax.apply_updates(p, u), s

  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), params).compile()
  return sum(" = " in line for line in compiled.as_text().splitlines())


def growth(tx, extra_args):
  """How much 8 more leaves add over what 4 more add: 2 for a program linear in the leaves."""
  n4, n8, n16 = (instructions(tx, n, extra_args) for n in (4, 8, 16))
  return (n16 - n8) / (n8 - n4), f"{n4}, {n8}, {n16} instructions for 4, 8, 16 leaves"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_compiled_update_grows_linearly_with_the_leaves(config):
  make, extra_args = CONFIGS[config]
  ratio, counts = growth(make(), extra_args)
  assert ratio < 2.2, counts  # Quadratic (the old after): 2.8-3.2.


def test_adamw_grows_linearly_with_the_leaves():
  """The check itself: Optax's AdamW, a program of one fusion chain per leaf."""
  ratio, counts = growth(optax.adamw(1e-3), {})
  assert ratio < 2.2, counts
