"""CIFAR-style ResNet-18 with BatchNorm.

The CIFAR variant of He et al. (2016): a 3x3 stride-1 stem without max-pooling,
four stages of two BasicBlocks with widths ``width * (1, 2, 4, 8)`` (64 to 512
for the standard ``width=64``), strides 1, 2, 2, 2, global average pooling and
a linear classifier. BatchNorm uses the PyTorch defaults (momentum 0.1, i.e.
``momentum=0.9`` in Flax, epsilon 1e-5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_KERNEL_INIT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(n_in: int, n_out: int, kernel: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
  pad = kernel // 2
  return nnx.Conv(
    n_in,
    n_out,
    kernel_size=(kernel, kernel),
    strides=(stride, stride),
    padding=((pad, pad), (pad, pad)),
    use_bias=False,
    kernel_init=_KERNEL_INIT,
    rngs=rngs,
  )


def _batch_norm(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


class BasicBlock(nnx.Module):
  """Two 3x3 conv-BN layers with an identity or 1x1 conv-BN shortcut."""

  def __init__(self, n_in: int, n_out: int, stride: int, *, rngs: nnx.Rngs):
    self.conv1 = _conv(n_in, n_out, 3, stride, rngs)
    self.bn1 = _batch_norm(n_out, rngs)
    self.conv2 = _conv(n_out, n_out, 3, 1, rngs)
    self.bn2 = _batch_norm(n_out, rngs)
    if stride != 1 or n_in != n_out:
      self.shortcut_conv = _conv(n_in, n_out, 1, stride, rngs)
      self.shortcut_bn = _batch_norm(n_out, rngs)
    else:
      self.shortcut_conv = None
      self.shortcut_bn = None

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    frozen = not train
    y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=frozen))
    y = self.bn2(self.conv2(y), use_running_average=frozen)
    if self.shortcut_conv is not None:
      x = self.shortcut_bn(self.shortcut_conv(x), use_running_average=frozen)
    return jax.nn.relu(x + y)


class ResNet18(nnx.Module):
  """CIFAR ResNet-18 on NHWC images; ``width`` is the first stage's width."""

  def __init__(self, num_classes: int = 10, width: int = 64, *, rngs: nnx.Rngs):
    self.stem_conv = _conv(3, width, 3, 1, rngs)
    self.stem_bn = _batch_norm(width, rngs)
    blocks = []
    n_in = width
    for stage, stride in enumerate((1, 2, 2, 2)):
      n_out = width * 2**stage
      blocks.append(BasicBlock(n_in, n_out, stride, rngs=rngs))
      blocks.append(BasicBlock(n_out, n_out, 1, rngs=rngs))
      n_in = n_out
    self.blocks = nnx.List(blocks)
    self.head = nnx.Linear(n_in, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Maps float images ``(batch, H, W, 3)`` to logits ``(batch, classes)``.

    With ``train=True`` BatchNorm normalises with the batch statistics and
    updates its running averages; otherwise it uses the running averages.
    """
    x = jax.nn.relu(self.stem_bn(self.stem_conv(x), use_running_average=not train))
    for block in self.blocks:
      x = block(x, train=train)
    return self.head(jnp.mean(x, axis=(1, 2)))
