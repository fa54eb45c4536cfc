"""Shared pieces of the next-token language-model workloads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metaoptimize_optax.experiments.models import PureModel, Transformer, TransformerConfig
from metaoptimize_optax.experiments.workloads.base import LossFn
from metaoptimize_optax.experiments.workloads.losses import softmax_classification_loss
from metaoptimize_optax.experiments.workloads.sampling import (
  Stream,
  consecutive_slices,
  sample_windows,
  spaced_windows,
  stream_rng,
)


def transformer_model(config: TransformerConfig) -> PureModel:
  """The llama-style transformer of ``config`` as a :class:`PureModel`."""
  return PureModel.from_constructor(lambda rngs: Transformer(config, rngs=rngs))


def next_token_loss(model: PureModel) -> LossFn:
  """Mean next-token cross-entropy and accuracy on ``inputs`` / ``targets``."""

  def forward(params, model_state, tokens, train):
    del train
    return model.apply(params, model_state, tokens)

  return softmax_classification_loss(forward, inputs_key="inputs", labels_key="targets")


def _split(windows: np.ndarray) -> dict[str, np.ndarray]:
  return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


def random_window_batch(
  segments: Sequence[np.ndarray], seed: int, step: int, batch_size: int, seq_len: int
) -> dict[str, np.ndarray]:
  """Batch ``step``: ``batch_size`` windows at uniformly random positions.

  Returns int32 ``inputs`` and ``targets`` of shape ``(batch_size, seq_len)``,
  ``targets`` being ``inputs`` shifted by one token.
  """
  rng = stream_rng(seed, Stream.STEP, step)
  return _split(sample_windows(segments, rng, batch_size, seq_len + 1))


def spaced_window_batches(
  segments: Sequence[np.ndarray], count: int, seq_len: int, batch_size: int
) -> list[dict[str, np.ndarray]]:
  """Up to ``count`` disjoint evenly spread windows, in batches of ``batch_size``."""
  windows = spaced_windows(segments, count, seq_len + 1)
  return [_split(windows[s]) for s in consecutive_slices(len(windows), batch_size)]
