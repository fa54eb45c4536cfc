"""A multilayer perceptron with ReLU hidden layers."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx


class MLP(nnx.Module):
  """``in_features -> hidden_sizes... -> out_features``, ReLU between layers."""

  def __init__(
    self, in_features: int, hidden_sizes: Sequence[int], out_features: int, *, rngs: nnx.Rngs
  ):
    sizes = [in_features, *hidden_sizes, out_features]
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    self.layers = nnx.List([nnx.Linear(n_in, n_out, rngs=rngs) for n_in, n_out in pairs])

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``(batch, in_features)`` inputs to ``(batch, out_features)`` outputs."""
    for layer in self.layers[:-1]:
      x = jax.nn.relu(layer(x))
    return self.layers[-1](x)
