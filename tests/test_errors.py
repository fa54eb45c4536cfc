"""Bad arguments fail early, naming the argument, the value and what is accepted."""

import re

import jax.numpy as jnp
import numpy as np
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
    ({"hessian": "exact"}, r"hessian='exact' .*\('free', 'hvp', 'diagonal'\)"),
    ({"hessian": "hvp", "blocks": "per_weight"}, r"per_weight.*hvp.*'scalar', 'per_layer'"),
  ],
)
def test_invalid_arguments_rejected_at_construction(kwargs, match):
  with pytest.raises(ValueError, match=match):
    mo.metaoptimize(BASE, **kwargs)


@pytest.mark.parametrize(
  "kwargs",
  [
    {"initial_learning_rate": "fast"},
    {"initial_learning_rate": "1e-3"},  # float() would read it; a YAML 1.1 string.
    {"initial_learning_rate": True},
    {"weight_decay": "0.1"},
    {"gamma": np.bool_(True)},
    {"max_learning_rate": b"1"},
  ],
)
def test_non_numeric_scalars(kwargs):
  ((name, value),) = kwargs.items()
  with pytest.raises(TypeError, match=re.escape(f"{name}={value!r} is not a real scalar")):
    mo.metaoptimize(BASE, **kwargs)


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


@pytest.mark.parametrize("hessian", ["free", "hvp"])
@pytest.mark.parametrize(
  "grads, params, match",
  [
    (
      {"a": jnp.ones(4), "b": {"c": jnp.ones(2)}},
      {"a": jnp.ones(4), "b": {"c": jnp.ones(2)}},
      r"leaf \['a'\] has shape \(4,\), but the params the state was initialized with have "
      r"\(3,\)",
    ),
    (
      PARAMS,
      {"a": jnp.ones(3), "b": {"c": jnp.ones((2, 1))}},
      r"leaf \['b'\]\['c'\] has shape \(2,\), but the params have \(2, 1\)",
    ),
    ({"a": jnp.ones(3)}, {"a": jnp.ones(3)}, "not that of the params the state was initialized"),
  ],
)
def test_updates_that_do_not_match_params_or_state(hessian, grads, params, match):
  tx = mo.metaoptimize(BASE, hessian=hessian)
  state = tx.init(PARAMS)
  with pytest.raises(ValueError, match=match):
    tx.update(grads, state, params, value_fn=lambda p: 0.0)


@pytest.mark.parametrize("preset", [mo.adamw, mo.lion, mo.sgdm, mo.rmsprop, mo.sgd])
def test_presets_reject_unknown_meta(preset):
  with pytest.raises(ValueError, match=r"meta='sgd' is not one of \('lion', 'adam'\)"):
    preset(meta="sgd")
  with pytest.raises(ValueError, match="meta_learning_rate is only used"):
    preset(meta=optax.adam(1e-3), meta_learning_rate=1e-2)
  with pytest.raises(ValueError, match="gamma=2"):
    preset(gamma=2)


@pytest.mark.parametrize(
  "preset, kwargs, match",
  [
    (mo.adamw, {"b2": 1.5}, r"b2=1\.5 is invalid; expected a number in \[0, 1\]"),
    (mo.adamw, {"eps": -1e-8}, r"eps=-1e-08 is invalid; expected a finite number >= 0"),
    (mo.lion, {"b1": -0.1}, r"b1=-0\.1 is invalid"),
    (mo.sgdm, {"momentum": 1.1}, r"momentum=1\.1 is invalid"),
    (mo.rmsprop, {"decay": float("nan")}, r"decay=nan is invalid"),
    (mo.recommended, {"b1": 2.0}, r"b1=2\.0 is invalid"),
    (mo.adamw, {"meta_learning_rate": 0.0}, r"meta_learning_rate=0\.0 is invalid"),
  ],
)
def test_presets_reject_out_of_range_hyperparameters(preset, kwargs, match):
  with pytest.raises(ValueError, match=match):
    preset(**kwargs)


def test_presets_reject_non_numeric_hyperparameters():
  with pytest.raises(TypeError, match=r"momentum='0\.9' is not a real scalar"):
    mo.sgdm(momentum="0.9")
