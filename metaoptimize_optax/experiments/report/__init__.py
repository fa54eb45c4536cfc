"""The cross-workload report: several results directories in one set of tables and plots.

* :mod:`.loading`: the results directories (via :mod:`..results`) and the optimizers' display names;
* :mod:`.quality`: the quality table (final loss and accuracy, optimizer x workload);
* :mod:`.learning_rates`: the learned learning rates, one panel per workload;
* :mod:`.meta_parameters`: the learned meta-parameters, one panel per workload;
* :mod:`.robustness`: final loss against the (initial) learning rate of a sweep;
* :mod:`.streams`: online loss over a stream, with the learned rates;
* :mod:`.command`: the ``metaoptimize-optax report`` command.
"""

from metaoptimize_optax.experiments.report.command import (
  add_report_subcommand,
  write_cross_report,
)

__all__ = ["add_report_subcommand", "write_cross_report"]
