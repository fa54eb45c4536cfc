"""Synthetic parameter trees shaped like a real model, for update-alone timings."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# Size of one transformer-like layer in units of width**2.
_LAYER_UNITS = 12  # qkv 3 + out 1 + up 4 + down 4 (biases and norms are O(width)).


def layer_shapes(num_params: int) -> tuple[int, int]:
  """``(num_layers, width)`` of a tree of about ``num_params`` values.

  Deeper and wider as the tree grows (8 layers at 1M, 12 at 10M, 15 at 50M), the
  width a multiple of 8.
  """
  if num_params < 1:
    raise ValueError(f"num_params must be positive, got {num_params}")
  num_layers = max(2, round(4 * math.log10(max(num_params, 10)) - 16))
  width = max(8, 8 * round(math.sqrt(num_params / (_LAYER_UNITS * num_layers)) / 8))
  return num_layers, width


def synthetic_params(num_params: int, seed: int = 0, dtype=jnp.float32) -> dict:
  """A tree of about ``num_params`` values (``dtype``) in transformer-like layers.

  Each layer holds an attention block (``qkv`` and ``out`` kernels), an MLP
  (``up`` and ``down`` kernels with biases) and two norm scales: eight leaves
  of mixed shapes, so per-leaf and per-layer costs show as in a real model.
  Generated layer by layer on the default device, so a tree of a billion
  values never passes through host memory at once.
  """
  num_layers, d = layer_shapes(num_params)
  keys = iter(jax.random.split(jax.random.PRNGKey(seed), 4 * num_layers))

  def normal(*shape):
    x = jax.random.normal(next(keys), shape, jnp.float32) / math.sqrt(shape[0])
    return x.astype(dtype)

  return {
    f"layer{i}": {
      "attention": {"qkv": normal(d, 3 * d), "out": normal(d, d)},
      "mlp": {
        "up": {"kernel": normal(d, 4 * d), "bias": jnp.zeros(4 * d, dtype)},
        "down": {"kernel": normal(4 * d, d), "bias": jnp.zeros(d, dtype)},
      },
      "norm": {"attention": jnp.ones(d, dtype), "mlp": jnp.ones(d, dtype)},
    }
    for i in range(num_layers)
  }


def synthetic_grads(params: dict, seed: int = 1) -> dict:
  """Gradient-like values (zero mean, scale 1e-2) shaped like ``params``, in their dtype."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return treedef.unflatten(
    [
      (1e-2 * jax.random.normal(k, p.shape, jnp.float32)).astype(p.dtype)
      for k, p in zip(keys, leaves, strict=True)
    ]
  )


def count(tree) -> int:
  """The number of values in a tree."""
  return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(tree))


def nbytes(tree) -> int:
  """The bytes of a tree of arrays or ``jax.ShapeDtypeStruct``."""
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def describe(num_params: int) -> str:
  """``"1M"``, ``"10M"``, ``"50M"``, ``"300k"``: a short name for a tree size."""
  for unit, scale in (("M", 1e6), ("k", 1e3)):
    if num_params >= scale:
      return f"{num_params / scale:.3g}{unit}"
  return str(num_params)
