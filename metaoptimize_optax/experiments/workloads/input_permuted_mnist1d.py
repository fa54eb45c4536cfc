"""Input-permuted MNIST-1D: a new fixed permutation of the 40 input positions every task.

Source: permuted MNIST, the standard input-permuted stream of continual learning
(Goodfellow et al., "An empirical investigation of catastrophic forgetting in
gradient-based neural networks", 2013; online permuted MNIST in Dohare et al.,
"Loss of plasticity in deep continual learning", Nature 632, 2024), on MNIST-1D
(Greydanus & Kobak, 2020; generated locally, see :mod:`.mnist1d_data`) so that
tens of tasks fit on two CPU cores.

The labels are the ordinary MNIST-1D labels; during task ``k`` (steps
``k * task_steps`` to ``(k + 1) * task_steps - 1``) every input signal ``x``
(40 positions) is replaced by ``x[:, pi_k]``, where ``pi_k`` is a random
permutation of the 40 positions drawn from a generator keyed on ``(seed, k)``
(task 0 is permuted too). The permutation is fixed for the whole task and the
learner gets no notice of the switch. The stream has no end; ``num_tasks``
(default 20) only sets the suggested run length ``num_tasks * task_steps``.

Parameters: ``task_steps=500`` steps per task, batch 100, an MLP 40-100-100-10
(a permutation of the positions breaks the CNN's locality prior, so the MLP is
the default, as in the literature). A stream: its primary metric is the online
loss (the mean over the run of each batch's loss before the update on it).
Evaluation permutes the train and test splits with the permutation of the task
that is current at the evaluation step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metaoptimize_optax.experiments.workloads.base import Workload
from metaoptimize_optax.experiments.workloads.continual_mnist1d import permuted_stream
from metaoptimize_optax.experiments.workloads.mnist1d_classification import SIGNAL_LENGTH
from metaoptimize_optax.experiments.workloads.sampling import Stream, stream_rng


def input_permutation(seed: int, task: int) -> np.ndarray:
  """The input permutation of task ``task`` (int32 ``(40,)``): ``x -> x[:, perm]``."""
  return stream_rng(seed, Stream.TASK, task).permutation(SIGNAL_LENGTH).astype(np.int32)


def _permute_inputs(seed: int, task: int, x: np.ndarray, y: np.ndarray):
  return x[:, input_permutation(seed, task)], y


def input_permuted_mnist1d(
  *,
  task_steps: int = 500,
  num_tasks: int = 20,
  model: str = "mlp",
  batch_size: int = 100,
  hidden_sizes: Sequence[int] = (100, 100),
  channels: int = 25,
  num_samples: int = 5000,
  train_split: float = 0.8,
  data_seed: int = 42,
  cache_dir: str | None = None,
  eval_batch_size: int = 1000,
) -> Workload:
  """MNIST-1D whose 40 input positions are re-permuted every ``task_steps`` steps.

  Args:
    task_steps: steps per task (input permutation).
    num_tasks: tasks in the suggested run length (``default_steps``); a run may be
      longer or shorter (the permutations go on).
    model: "mlp" or "cnn" (see ``mnist1d_mlp`` / ``mnist1d_cnn``).
    batch_size: training minibatch size.
    hidden_sizes: MLP hidden widths (``model="mlp"``).
    channels: CNN filters per convolution (``model="cnn"``).
    num_samples: examples generated (5000: the standard 4000 / 1000 split).
    train_split: fraction of examples used for training.
    data_seed: MNIST-1D generator seed (42: the standard dataset).
    cache_dir: optional directory caching the generated arrays.
    eval_batch_size: batch size of the evaluation batches.
  """
  return permuted_stream(
    "input_permuted_mnist1d",
    _permute_inputs,
    task_steps=task_steps,
    num_tasks=num_tasks,
    model=model,
    batch_size=batch_size,
    hidden_sizes=hidden_sizes,
    channels=channels,
    num_samples=num_samples,
    train_split=train_split,
    data_seed=data_seed,
    cache_dir=cache_dir,
    eval_batch_size=eval_batch_size,
  )
