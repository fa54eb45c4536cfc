"""Orbax checkpoints of one run's training state.

A run's state is ``{"params", "model_state", "opt_state"}``; the data are a pure
function of ``(seed, step)``, so this and the step number are all a run needs
to continue exactly where it stopped. Saving is synchronous: the train step
donates the state's buffers, so they must be written before the next step runs.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

logger = logging.getLogger(__name__)


class RunCheckpointer:
  """Saves and restores one run's state under ``directory``, keeping the latest."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 1):
    self._manager = ocp.CheckpointManager(
      pathlib.Path(directory).absolute(),
      options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
      ),
    )

  def latest_step(self) -> int | None:
    """The step of the newest checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Writes ``state`` as the checkpoint of ``step``."""
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()
    logger.debug("saved checkpoint of step %d", step)

  def restore(self, step: int, like: Any) -> Any:
    """The state saved at ``step``, with the structure, dtypes and shardings of ``like``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.close()

  def __enter__(self) -> RunCheckpointer:
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()
