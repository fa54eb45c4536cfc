"""Character-level (byte-level) language modelling of Python source code.

A small llama-style transformer (RMSNorm, rotary embeddings, causal attention,
SwiGLU) over the 256 byte values, trained on standard-library source files of
the running interpreter (see :mod:`stdlib_text`): nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from metaoptimize_optax.experiments.models import TransformerConfig
from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Workload
from metaoptimize_optax.experiments.workloads.language_model import (
  next_token_loss,
  random_window_batch,
  spaced_window_batches,
  transformer_model,
)
from metaoptimize_optax.experiments.workloads.sampling import num_windows
from metaoptimize_optax.experiments.workloads.stdlib_text import DEFAULT_FILES, load_stdlib_text

VOCAB_SIZE = 256


def charlm(
  *,
  batch_size: int = 32,
  seq_len: int = 64,
  dim: int = 64,
  n_layers: int = 2,
  n_heads: int = 4,
  hidden_dim: int | None = None,
  files: Sequence[str] = DEFAULT_FILES,
  train_fraction: float = 0.9,
  eval_sequences: int = 256,
  eval_batch_size: int = 128,
) -> Workload:
  """Byte-level transformer language model on standard-library source.

  Args:
    batch_size: sequences per training step.
    seq_len: tokens (bytes) per sequence.
    dim: model width.
    n_layers: transformer blocks.
    n_heads: attention heads (``dim / n_heads`` must be even).
    hidden_dim: SwiGLU width; ``None`` for the llama rule (192 for dim 64).
    files: standard-library files of the corpus, relative to its directory.
    train_fraction: leading fraction of every file used for training.
    eval_sequences: disjoint sequences evaluated per split ("train", "test").
    eval_batch_size: sequences per evaluation batch.
  """
  batch_size = options.positive_int("batch_size", batch_size)
  seq_len = options.positive_int("seq_len", seq_len)
  eval_sequences = options.positive_int("eval_sequences", eval_sequences)
  eval_batch_size = options.positive_int("eval_batch_size", eval_batch_size)
  train_fraction = options.fraction("train_fraction", train_fraction)
  if isinstance(files, str):
    raise ValueError(f"option files must be a list of paths, got {files!r}")
  config = TransformerConfig(
    vocab_size=VOCAB_SIZE,
    dim=options.positive_int("dim", dim),
    n_layers=options.positive_int("n_layers", n_layers),
    n_heads=options.positive_int("n_heads", n_heads),
    hidden_dim=None if hidden_dim is None else options.positive_int("hidden_dim", hidden_dim),
  )
  corpus = load_stdlib_text(files, train_fraction)
  for split, segments in (("train", corpus.train), ("test", corpus.test)):
    if num_windows(segments, seq_len + 1) < 1:
      raise ValueError(f"the {split} text holds no sequence of seq_len + 1 = {seq_len + 1} bytes")
  model = transformer_model(config)

  def train_batch(seed: int, step: int):
    return random_window_batch(corpus.train, seed, step, batch_size, seq_len)

  def eval_batches(seed: int, step: int):
    del seed, step  # A stationary task.
    return {
      split: spaced_window_batches(segments, eval_sequences, seq_len, eval_batch_size)
      for split, segments in (("train", corpus.train), ("test", corpus.test))
    }

  return Workload(
    name="charlm",
    init=model.init,
    loss=next_token_loss(model),
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss", "accuracy"),
    default_steps=2000,
    primary_metric="test_loss",
  )
