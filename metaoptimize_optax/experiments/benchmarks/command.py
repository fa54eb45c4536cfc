"""``metaoptimize-optax bench``: speed and memory of MetaOptimize against AdamW.

::

  metaoptimize-optax bench --quick           a short run (1M-value tree, both workloads)
  metaoptimize-optax bench                   trees of 1M, 10M and 50M values, both workloads
  metaoptimize-optax bench --suite device    sizes for one accelerator (10M-1B values,
                                             a ~100M-parameter transformer); --scale 1e-4
                                             runs it at tiny sizes

Prints the table and writes it to ``<output-dir>/bench.md`` and ``bench.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("metaoptimize_optax")

FULL = {
  "sizes": (1_000_000, 10_000_000, 50_000_000),
  "workloads": ("mnist1d_mlp", "charlm"),
  "rounds": 9,
  "min_seconds": 0.2,
  "memory_budget_gb": 3.0,
}
QUICK = {
  "sizes": (1_000_000,),
  "workloads": ("mnist1d_mlp", "charlm"),
  "rounds": 3,
  "min_seconds": 0.05,
  "memory_budget_gb": 3.0,
}
SUITES = ("default", "device")
# The meta-parameter and bfloat16 rows are timed on the trees up to this size.
SMALL_TREE = 10_000_000
_SUFFIXES = {"k": 1e3, "m": 1e6, "g": 1e9}


def parse_size(text: str) -> int:
  """``"1M"``, ``"10m"``, ``"500k"``, ``"1e6"`` or ``"1000000"`` as a number of values."""
  t = text.strip().lower()
  scale = _SUFFIXES.get(t[-1:], 1.0)
  try:
    value = float(t[:-1] if t[-1:] in _SUFFIXES else t) * scale
  except ValueError:
    raise argparse.ArgumentTypeError(f"not a tree size: {text!r} (e.g. 1M, 500k, 1e7)") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"a tree size must be at least 1, got {text!r}")
  return int(value)


def _list(parse):
  return lambda text: tuple(
    parse(x) for x in text.split(",") if x.strip() and x.strip().lower() != "none"
  )


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The options of ``bench``."""
  p.add_argument(
    "--suite",
    choices=SUITES,
    default="default",
    help="'default': this machine (trees of 1M-50M values, mnist1d_mlp and charlm); "
    "'device': one accelerator (10M-1B values in float32 and bfloat16, a ~100M-parameter "
    "transformer), about 8 minutes",
  )
  p.add_argument(
    "--scale",
    type=float,
    default=1.0,
    help="--suite device: shrink every size by this factor (e.g. 1e-4 for a CPU smoke run)",
  )
  p.add_argument(
    "--quick",
    action="store_true",
    help="a short run: the 1M-value tree and both workloads, 3 rounds",
  )
  p.add_argument(
    "--sizes",
    type=_list(parse_size),
    metavar="N,...",
    help="tree sizes of the update-alone timings, e.g. 1M,10M,50M ('none': skip)",
  )
  p.add_argument(
    "--workloads",
    type=_list(str.strip),
    metavar="NAME,...",
    help="workloads of the whole-step timings, e.g. mnist1d_mlp,charlm ('none': skip)",
  )
  p.add_argument("--rounds", type=int, help="rounds of alternating measurements (median)")
  p.add_argument("--min-seconds", type=float, help="least time of one measurement of one optimizer")
  p.add_argument(
    "--memory-budget-gb",
    type=float,
    help="params and state held at once in the update-alone timings (default 3; device 64)",
  )
  p.add_argument(
    "--output-dir",
    help="where bench.md and bench.json go (default results/bench; device: results/bench_device)",
  )
  p.add_argument("-v", "--verbose", action="store_true", help="log progress")


def add_bench_subcommand(subparsers: Any) -> argparse.ArgumentParser:
  """Adds ``bench`` to the ``metaoptimize-optax`` sub-commands; dispatch with :func:`run`."""
  p = subparsers.add_parser(
    "bench",
    help="speed and memory of MetaOptimize against AdamW",
    description="Time the optimizer update alone (synthetic trees) and whole train steps "
    "(mnist1d_mlp, charlm) of every MetaOptimize configuration and the peers, "
    "as ratios to optax.adamw measured alternately in one process, and their "
    "optimizer state sizes; print the table and write bench.md and bench.json.",
  )
  add_arguments(p)
  return p


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
  """The run's settings: ``--quick`` or full defaults, overridden by explicit options.

  Raises:
    ValueError: for a setting out of range.
  """
  from metaoptimize_optax.experiments.benchmarks import device

  suite = getattr(args, "suite", "default")
  scale = getattr(args, "scale", 1.0)
  if not scale > 0:
    raise ValueError(f"--scale must be positive, got {scale}")
  if suite == "device":
    if args.sizes is not None or args.workloads is not None or args.quick:
      raise ValueError(
        "--suite device has its own sizes: use --scale, not --sizes/--workloads/--quick"
      )
    settings = {
      "suite": "device",
      "scale": scale,
      "sizes": device.scaled_sizes(scale),
      "dtypes": device.DTYPES,
      "model": device.scaled_model(scale),
      "rounds": device.ROUNDS,
      "min_seconds": device.MIN_SECONDS,
      "memory_budget_gb": device.MEMORY_BUDGET / (1 << 30),
      "quick": False,
    }
  else:
    settings = dict(QUICK if args.quick else FULL, suite="default", quick=bool(args.quick))
  for key in ("sizes", "workloads", "rounds", "min_seconds", "memory_budget_gb"):
    if getattr(args, key) is not None:
      settings[key] = getattr(args, key)
  if settings["rounds"] < 1:
    raise ValueError(f"--rounds must be at least 1, got {settings['rounds']}")
  if settings["min_seconds"] <= 0 or settings["memory_budget_gb"] <= 0:
    raise ValueError("--min-seconds and --memory-budget-gb must be positive")
  return settings


def run(args: argparse.Namespace) -> int:
  """Runs the benchmarks of parsed ``args``; prints the table; returns the exit status.

  A bad option gets one message on stderr and exit status 2.
  """
  from metaoptimize_optax.experiments.benchmarks import device, table
  from metaoptimize_optax.experiments.workloads import WORKLOADS

  try:
    settings = settings_of(args)
    unknown = [w for w in settings.get("workloads", ()) if w not in WORKLOADS]
    if unknown:
      raise ValueError(
        f"--workloads: unknown {', '.join(unknown)}; valid names: {', '.join(sorted(WORKLOADS))}"
      )
  except ValueError as e:
    print(f"metaoptimize-optax bench: error: {e}", file=sys.stderr)
    return 2
  budget = int(settings["memory_budget_gb"] * (1 << 30))
  start = time.perf_counter()
  if settings["suite"] == "device":
    rows = device.run(
      scale=settings["scale"],
      rounds=settings["rounds"],
      min_seconds=settings["min_seconds"],
      memory_budget=budget,
    )
    output_dir = args.output_dir or "results/bench_device"
  else:
    rows = default_rows(settings, budget)
    output_dir = args.output_dir or "results/bench"
  md, js = table.write(output_dir, rows, settings, table.environment())
  print(table.markdown_table(rows))
  print(f"\nwrote {md} and {js}; {time.perf_counter() - start:.0f} s")
  return 0


def default_rows(settings: dict[str, Any], budget: int) -> list[dict[str, Any]]:
  """The default suite: per tree size the update alone donated (every MetaOptimize
  configuration and the learning-rate-free peers; up to 10M values also the
  meta-parameters' traces and bfloat16 params) and not donated; then the whole
  steps."""
  import jax.numpy as jnp

  from metaoptimize_optax.experiments.benchmarks import suites, trees

  timing = {"rounds": settings["rounds"], "min_seconds": settings["min_seconds"]}
  rows: list[dict[str, Any]] = []
  for n in settings["sizes"]:
    logger.info("update alone, %s values", trees.describe(n))
    small = n <= SMALL_TREE
    candidates = suites.UPDATE_CANDIDATES + (suites.META_PARAMETER_CANDIDATES if small else ())
    rows += suites.update_suite(n, candidates, memory_budget=budget, **timing)
    rows += suites.update_suite(
      n, suites.UNDONATED_CANDIDATES, memory_budget=budget, donate=False, **timing
    )
    if small:
      rows += suites.update_suite(
        n, suites.BF16_CANDIDATES, memory_budget=budget, dtype=jnp.bfloat16, **timing
      )
  for name in settings["workloads"]:
    logger.info("whole step, %s", name)
    rows += suites.step_suite(name, **timing)
  return rows


def main_bench(argv: Sequence[str] | None = None) -> int:
  """``metaoptimize-optax bench`` on its own: parses ``argv`` and runs."""
  parser = argparse.ArgumentParser(
    prog="metaoptimize-optax bench", description=__doc__.split("\n\n")[0]
  )
  add_arguments(parser)
  args = parser.parse_args(argv)
  logging.basicConfig(
    level=logging.INFO if args.verbose else logging.WARNING,
    format="%(levelname)s %(name)s: %(message)s",
  )
  return run(args)


if __name__ == "__main__":
  sys.exit(main_bench())
