"""Alternating timings: candidates measured in turn, in one process, repeated.

On a shared machine the speed drifts by tens of percent within seconds, so a
candidate is never timed on its own: every round runs the baseline, then each
candidate followed by the baseline again (the candidates' order reversed every
other round), and a candidate's figure is the median over rounds of its time
divided by the mean of the two baseline times around it, which cancels a drift
that is linear over one measurement.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax


class Stepper:
  """A jitted step with its live, donated carry: ``stepper(n)`` runs ``n`` steps.

  ``step(*carry, *args) -> carry`` must return the carry (params, states) in
  the order it takes them; ``args`` (gradients, a batch) are held fixed.
  """

  def __init__(self, step: Callable[..., tuple], carry: tuple, args: tuple = ()):
    self._step = step
    self._carry = tuple(carry)
    self._args = tuple(args)

  def __call__(self, n: int) -> float:
    """Runs ``n`` steps; returns the seconds per step."""
    start = time.perf_counter()
    carry = self._carry
    for _ in range(n):
      carry = self._step(*carry, *self._args)
    jax.block_until_ready(carry)
    self._carry = carry
    return (time.perf_counter() - start) / n

  @property
  def carry(self) -> tuple:
    return self._carry


@dataclasses.dataclass(frozen=True)
class Timing:
  """The timings of one candidate against the baseline."""

  seconds: tuple[float, ...]  # Seconds per step, one per round.
  ratios: tuple[float, ...]  # Its seconds over the baseline's, round by round.

  @property
  def median_seconds(self) -> float:
    return statistics.median(self.seconds)

  @property
  def ratio(self) -> float:
    """The median of the per-round ratios."""
    return statistics.median(self.ratios)

  @property
  def ratio_quartiles(self) -> tuple[float, float]:
    """The first and third quartiles of the per-round ratios."""
    if len(self.ratios) < 2:
      return self.ratio, self.ratio
    q = statistics.quantiles(self.ratios, n=4, method="inclusive")
    return q[0], q[2]


def steps_for(stepper: Callable[[int], float], min_seconds: float, max_steps: int = 10_000) -> int:
  """Warms ``stepper`` up (compiling it) and returns how many steps take ``min_seconds``."""
  stepper(1)  # Compiles.
  per_step = stepper(1)
  return max(1, min(max_steps, math.ceil(min_seconds / max(per_step, 1e-9))))


def time_alternately(
  steppers: Mapping[str, Callable[[int], float]], baseline: str, *, rounds: int, min_seconds: float
) -> dict[str, Timing]:
  """Times every stepper against the baseline, ``rounds`` times.

  Each round measures ``baseline, c1, baseline, c2, baseline, ...``; each
  measurement runs a stepper for at least about ``min_seconds`` (the number of
  steps is calibrated once per stepper after a warm-up). The baseline's
  seconds are all its measurements and its ratios are 1.
  """
  if baseline not in steppers:
    raise ValueError(f"baseline {baseline!r} is not among the steppers {sorted(steppers)}")
  if rounds < 1:
    raise ValueError(f"rounds must be at least 1, got {rounds}")
  steps = {name: steps_for(s, min_seconds) for name, s in steppers.items()}
  others = [name for name in steppers if name != baseline]
  run = lambda name: steppers[name](steps[name])
  seconds: dict[str, list[float]] = {name: [] for name in steppers}
  ratios: dict[str, list[float]] = {name: [] for name in others}
  for r in range(rounds):
    before = run(baseline)
    seconds[baseline].append(before)
    for name in others if r % 2 == 0 else others[::-1]:
      t = run(name)
      after = run(baseline)
      seconds[name].append(t)
      seconds[baseline].append(after)
      ratios[name].append(t / ((before + after) / 2))
      before = after
  out = {baseline: Timing(tuple(seconds[baseline]), (1.0,) * rounds)}
  out.update({name: Timing(tuple(seconds[name]), tuple(ratios[name])) for name in others})
  return {name: out[name] for name in steppers}


def pack(sizes: Mapping[str, int], baseline: str, budget: int) -> list[list[str]]:
  """Groups candidates so that each group, with the baseline, fits in ``budget`` bytes.

  Every group starts with the baseline; a candidate larger than the budget gets
  a group of its own. Used to time big trees without holding every candidate's
  params and state at once.
  """
  groups: list[list[str]] = []
  current: list[str] = [baseline]
  used = sizes[baseline]
  for name, size in sizes.items():
    if name == baseline:
      continue
    if len(current) > 1 and used + size > budget:
      groups.append(current)
      current, used = [baseline], sizes[baseline]
    current.append(name)
    used += size
  if len(current) > 1 or not groups:
    groups.append(current)
  return groups


def merge(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Merges per-group results; the baseline keeps its first group's timing."""
  out: dict[str, Any] = {}
  for part in parts:
    for name, value in part.items():
      out.setdefault(name, value)
  return out
