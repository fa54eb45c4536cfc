"""Flax NNX models of the experiment workloads."""

from metaoptimize_optax.experiments.models.cnn1d import CNN1D
from metaoptimize_optax.experiments.models.mlp import MLP
from metaoptimize_optax.experiments.models.pure import PureModel
from metaoptimize_optax.experiments.models.resnet import ResNet18
from metaoptimize_optax.experiments.models.transformer import (
  Transformer,
  TransformerConfig,
  llama2c_15m_config,
)

__all__ = [
  "CNN1D",
  "MLP",
  "PureModel",
  "ResNet18",
  "Transformer",
  "TransformerConfig",
  "llama2c_15m_config",
]
