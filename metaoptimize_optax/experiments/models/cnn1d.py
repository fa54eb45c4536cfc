"""A small 1-D convolutional classifier (the MNIST-1D paper's ConvNet shape)."""

from __future__ import annotations

import jax
from flax import nnx


def _conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
  return (length + 2 * padding - kernel) // stride + 1


class CNN1D(nnx.Module):
  """Three strided 1-D convolutions with ReLU, then a linear readout.

  Layer shapes follow the MNIST-1D reference ConvNet: kernel 5 then 3 and 3,
  stride 2, padding 1, ``channels`` filters each; a 40-long signal shrinks to
  19, 10 and 5 positions before the ``5 * channels -> num_classes`` readout.
  """

  def __init__(self, length: int, channels: int, num_classes: int, *, rngs: nnx.Rngs):
    specs = ((5, 2, 1), (3, 2, 1), (3, 2, 1))  # (kernel, stride, padding)
    convs = []
    in_channels = 1
    for kernel, stride, padding in specs:
      convs.append(
        nnx.Conv(
          in_channels,
          channels,
          kernel_size=(kernel,),
          strides=(stride,),
          padding=((padding, padding),),
          rngs=rngs,
        )
      )
      in_channels = channels
      length = _conv_length(length, kernel, stride, padding)
    self.convs = nnx.List(convs)
    self.readout = nnx.Linear(length * channels, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``(batch, length)`` signals to ``(batch, num_classes)`` logits."""
    x = x[..., None]
    for conv in self.convs:
      x = jax.nn.relu(conv(x))
    return self.readout(x.reshape(x.shape[0], -1))
