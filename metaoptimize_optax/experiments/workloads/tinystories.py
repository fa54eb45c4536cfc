"""TinyStories with the llama2.c "stories15M" transformer.

Data: the pretokenized shards written by llama2.c (``python tinystories.py
pretokenize`` in karpathy/llama2.c): flat files of little-endian uint16 token
ids named ``*.bin`` (``data00.bin`` ... ``data49.bin`` in
``data/TinyStories_all_data`` for the 32000-token Llama 2 tokenizer), each story
preceded by the BOS token 1. They are memory-mapped, never loaded whole. As in
llama2.c, the first shard (in sorted order) is held out as the test split; a
single shard is split 90 / 10 instead.

Model: dim 288, 6 layers, 6 heads, vocab 32000, context 256 (15M parameters,
tied embeddings), shrinkable through the options for tests.
"""

from __future__ import annotations

import glob
import logging
import os

import numpy as np

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

logger = logging.getLogger(__name__)

TOKEN_DTYPE = np.dtype("<u2")
SINGLE_SHARD_TRAIN_FRACTION = 0.9

FORMAT = (
  "llama2.c pretokenized TinyStories shards: files named *.bin directly under data_path, "
  "each a flat array of little-endian uint16 token ids (as written by `python tinystories.py "
  "pretokenize` in karpathy/llama2.c, e.g. data/TinyStories_all_data/data00.bin ... data49.bin)"
)


def find_shards(data_path: str | os.PathLike) -> list[str]:
  """The sorted ``*.bin`` shard paths under ``data_path``; FileNotFoundError if none."""
  root = os.path.abspath(os.path.expanduser(os.fspath(data_path)))
  if not os.path.isdir(root):
    raise FileNotFoundError(f"TinyStories data_path {root} does not exist; expected {FORMAT}")
  shards = sorted(glob.glob(os.path.join(root, "*.bin")))
  if not shards:
    raise FileNotFoundError(f"no *.bin shards in {root}; expected {FORMAT}")
  return shards


def _map_shard(path: str) -> np.ndarray:
  size = os.path.getsize(path)
  if size == 0 or size % TOKEN_DTYPE.itemsize:
    raise ValueError(f"{path} holds {size} bytes, not a whole number of uint16 tokens; {FORMAT}")
  return np.memmap(path, dtype=TOKEN_DTYPE, mode="r")


def split_shards(shards: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Memory-maps ``shards``; returns (train, test) token segments."""
  tokens = [_map_shard(p) for p in shards]
  if len(tokens) == 1:
    cut = int(len(tokens[0]) * SINGLE_SHARD_TRAIN_FRACTION)
    return [tokens[0][:cut]], [tokens[0][cut:]]
  return tokens[1:], tokens[:1]


def tinystories_llama(
  *,
  data_path: str | os.PathLike,
  batch_size: int = 64,
  seq_len: int = 256,
  vocab_size: int = 32000,
  dim: int = 288,
  n_layers: int = 6,
  n_heads: int = 6,
  hidden_dim: int | None = None,
  eval_sequences: int = 256,
  eval_batch_size: int = 64,
) -> Workload:
  """The llama2.c 15M-parameter model on pretokenized TinyStories shards.

  Args:
    data_path: directory of the ``*.bin`` token shards (see ``FORMAT``).
    batch_size: sequences per training step.
    seq_len: context length (256 in llama2.c).
    vocab_size: token vocabulary (32000: the Llama 2 tokenizer).
    dim: model width (288).
    n_layers: transformer blocks (6).
    n_heads: attention heads (6).
    hidden_dim: SwiGLU width; ``None`` for the llama2.c rule (768 for dim 288).
    eval_sequences: disjoint sequences evaluated per split ("train", "test").
    eval_batch_size: sequences per evaluation batch.
  """
  shards = find_shards(data_path)
  batch_size = options.positive_int("batch_size", batch_size)
  seq_len = options.positive_int("seq_len", seq_len)
  eval_sequences = options.positive_int("eval_sequences", eval_sequences)
  eval_batch_size = options.positive_int("eval_batch_size", eval_batch_size)
  config = TransformerConfig(
    vocab_size=options.positive_int("vocab_size", vocab_size),
    dim=options.positive_int("dim", dim),
    n_layers=options.positive_int("n_layers", n_layers),
    n_heads=options.positive_int("n_heads", n_heads),
    hidden_dim=None if hidden_dim is None else options.positive_int("hidden_dim", hidden_dim),
  )
  train, test = split_shards(shards)
  for split, segments in (("train", train), ("test", test)):
    if num_windows(segments, seq_len + 1) < 1:
      raise ValueError(f"the {split} shards hold no sequence of seq_len + 1 = {seq_len + 1} tokens")
  logger.info("TinyStories: %d shards in %s", len(shards), os.path.dirname(shards[0]))
  model = transformer_model(config)

  def check_vocab(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    top = max(int(batch["inputs"].max()), int(batch["targets"].max()))
    if top >= config.vocab_size:
      raise ValueError(f"token id {top} in the TinyStories shards exceeds vocab_size {vocab_size}")
    return batch

  def train_batch(seed: int, step: int):
    return check_vocab(random_window_batch(train, seed, step, batch_size, seq_len))

  def eval_batches(seed: int, step: int):
    del seed, step  # A stationary task.
    return {
      split: [
        check_vocab(b)
        for b in spaced_window_batches(segments, eval_sequences, seq_len, eval_batch_size)
      ]
      for split, segments in (("train", train), ("test", test))
    }

  return Workload(
    name="tinystories_llama",
    init=model.init,
    loss=next_token_loss(model),
    train_batch=train_batch,
    eval_batches=eval_batches,
    metrics=("loss", "accuracy"),
    default_steps=20_000,
    primary_metric="test_loss",
  )
