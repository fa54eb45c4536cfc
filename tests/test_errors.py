"""Bad arguments fail early, naming the argument, the value and what is accepted."""

import jax.numpy as jnp
import optax
import pytest

import metaoptimize_optax as mo

BASE = optax.adam(1.0)
PARAMS = {"a": jnp.ones(3), "b": {"c": jnp.ones(2)}}


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"gamma": 1.5}, r"gamma=1.5 .*\[0, 1\]"),
    ({"gamma": -0.1}, r"gamma=-0.1 .*\[0, 1\]"),
    ({"gamma": float("nan")}, r"gamma=nan"),
    ({"initial_learning_rate": 0.0}, r"initial_learning_rate=0.0 .*> 0"),
    ({"initial_learning_rate": -1e-3}, r"initial_learning_rate=-0.001"),
    ({"initial_learning_rate": float("inf")}, r"initial_learning_rate=inf"),
    ({"weight_decay": -0.1}, r"weight_decay=-0.1 .*>= 0"),
    ({"min_learning_rate": 0.0}, r"min_learning_rate=0.0 .*> 0"),
    ({"max_learning_rate": float("inf")}, r"max_learning_rate=inf"),
    (
      {"min_learning_rate": 1e-2, "max_learning_rate": 1e-3},
      r"min_learning_rate=0.01 .*min <= max",
    ),
    (
      {"initial_learning_rate": 1.0, "max_learning_rate": 0.1},
      r"initial_learning_rate=1.0 .*outside",
    ),
    ({"blocks": "per_neuron"}, r"blocks='per_neuron'.*'scalar', 'per_layer', 'per_leaf'"),
    ({"hessian": "exact"}, r"hessian='exact' .*\('free', 'hvp'\)"),
    ({"hessian": "hvp", "blocks": "per_weight"}, r"per_weight.*hvp.*'scalar', 'per_layer'"),
  ],
)
def test_invalid_arguments_rejected_at_construction(kwargs, match):
  with pytest.raises(ValueError, match=match):
    mo.metaoptimize(BASE, **kwargs)


def test_non_numeric_learning_rate():
  with pytest.raises(TypeError, match="initial_learning_rate='fast' is not a real scalar"):
    mo.metaoptimize(BASE, initial_learning_rate="fast")


@pytest.mark.parametrize(
  "name, kwargs",
  [
    ("base", {"base": optax.adam}),
    ("base", {"base": "adam"}),
    ("meta", {"base": BASE, "meta": "lion"}),
    ("meta", {"base": BASE, "meta": optax.sgd}),
  ],
)
def test_not_a_transformation(name, kwargs):
  with pytest.raises(TypeError, match=f"{name} must be an optax.GradientTransformation"):
    mo.metaoptimize(**kwargs)


def test_uncalled_optax_factory_gets_a_hint():
  with pytest.raises(TypeError, match=r"did you mean adam\(\.\.\.\)"):
    mo.metaoptimize(optax.adam)


def test_multi_steps_base_points_outside():
  with pytest.raises(TypeError, match=r"optax\.MultiSteps\(metaoptimize\(base\), k\)"):
    mo.metaoptimize(optax.MultiSteps(BASE, 2))


def test_label_tree_that_does_not_match_params():
  tx = mo.metaoptimize(BASE, blocks={"a": "x", "z": "y"})
  with pytest.raises(ValueError, match="blocks: its tree structure"):
    tx.init(PARAMS)


def test_label_none_above_a_leaf():
  tx = mo.metaoptimize(BASE, blocks={"a": "x", "b": None})
  with pytest.raises(ValueError, match=r"blocks: .* a value \(not None\) for every leaf"):
    tx.init(PARAMS)


def test_weight_decay_mask_that_does_not_match_params():
  tx = mo.metaoptimize(BASE, weight_decay=0.1, weight_decay_mask={"a": True})
  with pytest.raises(ValueError, match="weight_decay_mask: its tree structure"):
    tx.init(PARAMS)


def test_hvp_without_value_fn():
  tx = mo.metaoptimize(BASE, hessian="hvp")
  state = tx.init(PARAMS)
  with pytest.raises(ValueError, match="value_fn="):
    tx.update(PARAMS, state, PARAMS)


def test_weight_decay_without_params():
  tx = mo.metaoptimize(BASE, weight_decay=0.1)
  state = tx.init(PARAMS)
  with pytest.raises(ValueError, match="needs params"):
    tx.update(PARAMS, state)


@pytest.mark.parametrize("preset", [mo.adamw, mo.lion, mo.sgdm, mo.rmsprop, mo.sgd])
def test_presets_reject_unknown_meta(preset):
  with pytest.raises(ValueError, match=r"meta='sgd' is not one of \('lion', 'adam'\)"):
    preset(meta="sgd")
  with pytest.raises(ValueError, match="meta_learning_rate is only used"):
    preset(meta=optax.adam(1e-3), meta_learning_rate=1e-2)
  with pytest.raises(ValueError, match="gamma=2"):
    preset(gamma=2)
