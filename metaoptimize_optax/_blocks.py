"""Blocks: which weights share one learning rate.

A block specification (the ``blocks`` argument of ``metaoptimize``) is resolved
against the structure of a params (or gradients) tree into a :class:`Layout`, a
static, hashable description used at trace time. The log learning rates live in
the structure that ``learning_rates`` returns:

* ``"scalar"``: one 0-d array;
* labels (``"per_layer"``, a label tree or a callable): a dict label -> 0-d array;
* ``"per_leaf"``: a params-shaped tree of 0-d arrays;
* ``"per_weight"``: a params-shaped tree of arrays shaped like the params.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

BLOCK_KINDS = ("scalar", "per_layer", "per_leaf", "per_weight")


class Layout(NamedTuple):
  """How the leaves of one tree structure map onto blocks."""

  kind: str  # "scalar", "labels", "per_leaf" or "per_weight".
  leaf_labels: tuple[Hashable, ...]  # the label of each leaf, for "labels".
  treedef: Any  # the params' tree structure.


def check_blocks(blocks: Any) -> None:
  """Rejects an unknown ``blocks`` string at construction."""
  if isinstance(blocks, str) and blocks not in BLOCK_KINDS:
    raise ValueError(
      f"blocks={blocks!r} is not a known block kind; use one of {BLOCK_KINDS}, "
      "a pytree of hashable labels shaped like the params, or a callable "
      "params -> labels."
    )


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def is_nnx_variable(x: Any) -> bool:
  """A Flax NNX variable (a pytree node around one array); flax is not imported."""
  return type(x).__module__.startswith("flax.nnx") and hasattr(x, "get_value")


def per_layer_labels(tree: Any) -> Any:
  """Labels each leaf with the '/'-joined path of its parent node.

  Leaves under one parent (a Dense layer's kernel and bias) share a label;
  leaves directly under the root are labelled ``""``. A Flax NNX variable
  (``nnx.Param``) counts as one leaf.
  """
  return jax.tree_util.tree_map_with_path(
    lambda path, _: "/".join(_key_name(k) for k in path[:-1]), tree, is_leaf=is_nnx_variable
  )


def broadcast_prefix(prefix: Any, tree: Any, argname: str) -> list[Any]:
  """Leaf values of ``prefix`` (a tree prefix of ``tree``), one per leaf of ``tree``.

  A None in ``tree`` (no leaf) may take any value or None in ``prefix``; a None
  in ``prefix`` above a leaf is a structure mismatch.
  """
  try:
    full = jax.tree.map(lambda value, sub: jax.tree.map(lambda _: value, sub), prefix, tree)
  except (ValueError, TypeError) as err:
    raise ValueError(
      f"{argname}: its tree structure {jax.tree.structure(prefix)} does not match "
      f"the params' structure {jax.tree.structure(tree)}; pass a tree shaped like "
      "the params (or a prefix of it) with a value (not None) for every leaf, or a "
      "callable params -> tree."
    ) from err
  return jax.tree.structure(tree).flatten_up_to(full)


def layout(blocks: Any, tree: Any) -> Layout:
  """Resolves a block specification against a params-shaped tree."""
  treedef = jax.tree.structure(tree)
  if isinstance(blocks, str) and blocks in ("scalar", "per_leaf", "per_weight"):
    return Layout(blocks, (), treedef)
  if isinstance(blocks, str):  # "per_layer"
    labels = per_layer_labels(tree)
  elif callable(blocks):
    labels = blocks(tree)
  else:
    labels = blocks
  leaf_labels = tuple(broadcast_prefix(labels, tree, "blocks"))
  if not leaf_labels:
    # No leaves, no labels: one (unused) rate, as "scalar". The state then has
    # the same structure for any tree without leaves, as optax.tree.map_params
    # needs (it calls init on a placeholder without leaves).
    return Layout("scalar", (), treedef)
  for label in leaf_labels:
    if not isinstance(label, Hashable):
      raise ValueError(f"blocks: labels must be hashable, got {label!r}.")
  return Layout("labels", leaf_labels, treedef)


def init_log_lr(lay: Layout, tree: Any, value: Any, dtype: Any) -> Any:
  """Log learning rates, all equal to ``value``, in the layout's structure."""
  # A fresh buffer per block (jnp.full may return `value` itself), so the state
  # can be donated to a jitted step.
  fill = lambda shape: jnp.zeros(shape, dtype) + value
  if lay.kind == "scalar":
    return fill(())
  if lay.kind == "labels":
    return {label: fill(()) for label in sorted(set(lay.leaf_labels), key=_sort_key)}
  if lay.kind == "per_leaf":
    return jax.tree.map(lambda _: fill(()), tree)
  return jax.tree.map(lambda p: fill(jnp.shape(p)), tree)


def _sort_key(label: Hashable) -> tuple[str, Any]:
  return (type(label).__name__, label)


def leafwise(lay: Layout, log_lr: Any) -> list[jax.Array]:
  """The log learning rate of each params leaf (0-d, or the leaf's shape)."""
  n = lay.treedef.num_leaves
  if lay.kind == "scalar":
    return [log_lr] * n
  if lay.kind == "labels":
    return [log_lr[label] for label in lay.leaf_labels]
  return lay.treedef.flatten_up_to(log_lr)


def reduce(lay: Layout, products: Sequence[jax.Array], dtype: Any) -> Any:
  """Sums per-leaf products ``h * g`` into the meta-gradient, block by block.

  Per-leaf sums are reduced in ``dtype`` and added up per block: one fused
  reduction per leaf, no separate dot products.
  """
  if lay.kind == "per_weight":
    return lay.treedef.unflatten([p.astype(dtype) for p in products])
  sums = [jnp.sum(p, dtype=dtype) for p in products]
  if lay.kind == "scalar":
    return sum(sums[1:], sums[0]) if sums else jnp.zeros((), dtype)
  if lay.kind == "per_leaf":
    return lay.treedef.unflatten(sums)
  out: dict[Hashable, jax.Array] = {}
  for label, s in zip(lay.leaf_labels, sums, strict=True):
    out[label] = out[label] + s if label in out else s
  return out
