"""What the compiled update keeps in memory besides its inputs and outputs.

XLA's memory analysis of a jitted, donated step is exact and free of timing
noise: MetaOptimize's Hessian-free update must add no params-sized temporary to
those of its base (a temporary costs a fresh buffer, mapped and zeroed, each
step), whatever the params' dtype, the trace's dtype or the blocks.

What XLA:CPU does with the ordering of ``_traces.after`` is a property of the
compiler: it is measured on the XLA of jaxlib 0.10.2 and later. Older ones (the
declared floor, 0.8.0, up to 0.10.0) copy a donated buffer first (1.0x params
of temporaries); the values are the same there (.ci/floors runs the other tests).
"""

from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo
from metaoptimize_optax import _traces

pytestmark = pytest.mark.skipif(
  tuple(int(x) for x in version("jaxlib").split(".")[:3]) < (0, 10, 2),
  reason="the in-place ordering is measured on the XLA of jaxlib >= 0.10.2",
)

BASES = {
  "sgd_momentum": lambda: optax.sgd(1.0, momentum=0.9),
  "adamw": lambda: optax.adamw(1.0, weight_decay=0.1),
  "lion": lambda: optax.lion(1.0),
}


def temporaries(tx, params):
  """Bytes of the temporaries of the donated step ``params + update``."""

  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), params).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def params_of(dtype):
  return {"a": jnp.zeros((256, 512), dtype), "b": {"w": jnp.zeros((128, 256), dtype)}}


def assert_no_extra_temporary(tx, base, params):
  """``tx``'s temporaries exceed ``base``'s by scalars only (the meta-gradient, the
  learning rates, the dependency zeros)."""
  params_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
  extra = temporaries(tx, params) - temporaries(base, params)
  assert extra < 0.01 * params_bytes, f"{extra / params_bytes:.2f}x params in temporaries"


@pytest.mark.parametrize("blocks", ["scalar", "per_layer"])
@pytest.mark.parametrize("trace_dtype", [None, "float32"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("base_name", sorted(BASES))
def test_hessian_free_update_adds_no_temporary_to_its_base(base_name, dtype, trace_dtype, blocks):
  tx = mo.metaoptimize(BASES[base_name](), mo.lion(), blocks=blocks, trace_dtype=trace_dtype)
  assert_no_extra_temporary(tx, BASES[base_name](), params_of(dtype))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "complex64"])
def test_after_is_the_identity_bit_for_bit(dtype):
  specials = [0.0, -0.0, 1.5, -3.0, np.inf, -np.inf, np.nan, 1e-30]
  x = {"x": jnp.asarray(specials, dtype), "count": jnp.arange(3)}
  for deps in ([jnp.asarray([np.nan])], [jnp.asarray([-1.0]), jnp.asarray([-0.0, 2.0])]):
    out = jax.jit(_traces.after)(x, deps)
    assert out["x"].dtype == x["x"].dtype
    view = lambda a: np.asarray(a).view(np.uint8)
    np.testing.assert_array_equal(view(out["x"]), view(x["x"]))
    np.testing.assert_array_equal(out["count"], x["count"])


@pytest.mark.parametrize("learned", [{"b2": "logit"}, {"weight_decay": "log"}])
def test_one_learned_meta_parameter_adds_no_temporary(learned):
  # Its tangents (one column per name) are updated in place, and their step
  # shares no computation with the trace's. Several names share the step's
  # linearization across their columns, which XLA writes out once.
  tx = mo.adamw(1e-3, meta_parameters=learned)
  assert_no_extra_temporary(tx, optax.adamw(1e-3, weight_decay=0.1), params_of("float32"))
