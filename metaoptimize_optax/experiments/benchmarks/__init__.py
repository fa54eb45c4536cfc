"""Benchmarks: speed and memory of MetaOptimize against ``optax.adamw``.

* :mod:`.trees`: synthetic parameter trees shaped like a real model;
* :mod:`.timing`: alternating, repeated timings and their ratios;
* :mod:`.memory`: optimizer state sizes from shapes;
* :mod:`.suites`: the update-alone and whole-step suites;
* :mod:`.device`: the suite for an accelerator (larger sizes, several dtypes);
* :mod:`.table`: the table (markdown) and JSON;
* :mod:`.command`: the ``metaoptimize-optax bench`` command.
"""

from metaoptimize_optax.experiments.benchmarks.command import add_bench_subcommand, main_bench

__all__ = ["add_bench_subcommand", "main_bench"]
