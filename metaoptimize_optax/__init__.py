"""MetaOptimize for Optax: learning rates tuned online by meta-gradient descent.

Sharifnassab, Salehkaleybar & Sutton, "MetaOptimize: A Framework for Optimizing
Step Sizes and Other Meta-parameters", ICML 2025 (arXiv:2402.02342).

>>> import optax, metaoptimize_optax as mo
>>> tx = mo.metaoptimize(optax.adam(1.0), initial_learning_rate=1e-4)
"""

from metaoptimize_optax._blocks import BLOCK_KINDS
from metaoptimize_optax._meta_parameters import SPACES, MetaParametersState
from metaoptimize_optax._metaoptimize import (
  HESSIAN_KINDS,
  MetaOptimizeState,
  find_state,
  learning_rates,
  meta_parameters,
  metaoptimize,
)
from metaoptimize_optax._presets import (
  META_CHOICES,
  adamw,
  base_optimizer,
  lion,
  meta_optimizer,
  rmsprop,
  sgd,
  sgdm,
)
from metaoptimize_optax._recommended import recommended, recommended_settings

__version__ = "0.2.0"

__all__ = [
  "BLOCK_KINDS",
  "HESSIAN_KINDS",
  "META_CHOICES",
  "SPACES",
  "MetaOptimizeState",
  "MetaParametersState",
  "adamw",
  "base_optimizer",
  "find_state",
  "learning_rates",
  "lion",
  "meta_optimizer",
  "meta_parameters",
  "metaoptimize",
  "recommended",
  "recommended_settings",
  "rmsprop",
  "sgd",
  "sgdm",
]
