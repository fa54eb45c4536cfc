"""A llama-style decoder-only transformer (the llama2.c architecture).

Pre-norm residual blocks of RMSNorm, causal self-attention with rotary position
embeddings, and a SwiGLU feed-forward layer; no biases; the output layer shares
the token embedding matrix (as in llama2.c). Used by the character-level and
the TinyStories language-model workloads.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Transformer sizes. The defaults are a tiny character-level model."""

  vocab_size: int = 256
  dim: int = 64
  n_layers: int = 2
  n_heads: int = 4
  # Feed-forward width; ``None`` uses the llama rule (2/3 of 4 * dim, rounded
  # up to a multiple of ``multiple_of``).
  hidden_dim: int | None = None
  multiple_of: int = 32
  norm_eps: float = 1e-5
  rope_theta: float = 10000.0
  init_std: float = 0.02

  def __post_init__(self):
    if self.dim % self.n_heads:
      raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
    if (self.dim // self.n_heads) % 2:
      raise ValueError(f"head size dim / n_heads = {self.dim // self.n_heads} must be even")

  @property
  def head_dim(self) -> int:
    return self.dim // self.n_heads

  @property
  def ffn_dim(self) -> int:
    """Feed-forward width: ``hidden_dim`` or the llama2.c default."""
    if self.hidden_dim is not None:
      return self.hidden_dim
    hidden = int(2 * (4 * self.dim) / 3)
    return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)


def llama2c_15m_config(vocab_size: int = 32000) -> TransformerConfig:
  """The llama2.c "stories15M" model: dim 288, 6 layers, 6 heads."""
  return TransformerConfig(vocab_size=vocab_size, dim=288, n_layers=6, n_heads=6)


def rotary_angles(seq_len: int, head_dim: int, theta: float = 10000.0) -> jax.Array:
  """Rotation angles ``(seq_len, head_dim // 2)`` of rotary embeddings."""
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  return jnp.arange(seq_len, dtype=jnp.float32)[:, None] * inv_freq[None, :]


def apply_rotary(x: jax.Array, angles: jax.Array) -> jax.Array:
  """Rotates adjacent feature pairs of ``x`` (..., seq, heads, head_dim).

  Pairs ``(x[2i], x[2i + 1])`` are rotated by ``angles[:, i]``, the complex-
  number convention of llama and llama2.c.
  """
  pairs = x.reshape(*x.shape[:-1], -1, 2)
  real, imag = pairs[..., 0], pairs[..., 1]
  cos = jnp.cos(angles)[:, None, :]  # (seq, 1, head_dim // 2): broadcast over heads
  sin = jnp.sin(angles)[:, None, :]
  rotated = jnp.stack([real * cos - imag * sin, real * sin + imag * cos], axis=-1)
  return rotated.reshape(x.shape).astype(x.dtype)


def _dense(n_in: int, n_out: int, std: float, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(
    n_in, n_out, use_bias=False, kernel_init=nnx.initializers.normal(std), rngs=rngs
  )


class CausalSelfAttention(nnx.Module):
  """Multi-head causal self-attention with rotary position embeddings."""

  def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
    self.n_heads = config.n_heads
    self.head_dim = config.head_dim
    self.rope_theta = config.rope_theta
    std, dim = config.init_std, config.dim
    self.wq = _dense(dim, dim, std, rngs)
    self.wk = _dense(dim, dim, std, rngs)
    self.wv = _dense(dim, dim, std, rngs)
    # llama2.c scales the init of residual-branch outputs by 1/sqrt(2 * layers).
    self.wo = _dense(dim, dim, std / math.sqrt(2 * config.n_layers), rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, seq_len, dim = x.shape
    heads = (batch, seq_len, self.n_heads, self.head_dim)
    angles = rotary_angles(seq_len, self.head_dim, self.rope_theta)
    q = apply_rotary(self.wq(x).reshape(heads), angles)
    k = apply_rotary(self.wk(x).reshape(heads), angles)
    v = self.wv(x).reshape(heads)
    out = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    return self.wo(out.reshape(batch, seq_len, dim))


class SwiGLU(nnx.Module):
  """The llama feed-forward layer ``w2(silu(w1 x) * w3 x)``."""

  def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
    std, dim, hidden = config.init_std, config.dim, config.ffn_dim
    self.w1 = _dense(dim, hidden, std, rngs)
    self.w2 = _dense(hidden, dim, std / math.sqrt(2 * config.n_layers), rngs)
    self.w3 = _dense(dim, hidden, std, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.w2(jax.nn.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nnx.Module):
  """Pre-norm residual block: attention then SwiGLU."""

  def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
    self.attention_norm = nnx.RMSNorm(config.dim, epsilon=config.norm_eps, rngs=rngs)
    self.attention = CausalSelfAttention(config, rngs=rngs)
    self.ffn_norm = nnx.RMSNorm(config.dim, epsilon=config.norm_eps, rngs=rngs)
    self.feed_forward = SwiGLU(config, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attention(self.attention_norm(x))
    return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nnx.Module):
  """Decoder-only language model: tokens ``(batch, seq)`` to logits."""

  def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
    self.embedding = nnx.Embed(
      config.vocab_size,
      config.dim,
      embedding_init=nnx.initializers.normal(config.init_std),
      rngs=rngs,
    )
    self.layers = nnx.List([TransformerBlock(config, rngs=rngs) for _ in range(config.n_layers)])
    self.norm = nnx.RMSNorm(config.dim, epsilon=config.norm_eps, rngs=rngs)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Maps int tokens ``(batch, seq)`` to float logits ``(batch, seq, vocab)``."""
    x = self.embedding(tokens)
    for layer in self.layers:
      x = layer(x)
    # Tied output layer: logits are dot products with the token embeddings.
    return self.embedding.attend(self.norm(x))
