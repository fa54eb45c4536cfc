"""The experiment side of metaoptimize-optax: workloads, peers, runner, results, reports, bench.

Data flows one way (no module imports one that comes after it)::

  config.py (YAML -> the spec.py types, checked by form) -> plan.py (the workload and
    each optimizer of optimizers.py, built once) -> runner.py (one jitted train step)
    -> records (their fields named in spec.py) -> results.py (the results directory,
    read with spec.py alone) -> plots.py (the figures and their shared helpers)
    -> summary.py (one directory) / report/ (several) -> tables and plots

Where to add what:

* **a peer** (another optimizer to compare with): a builder in :mod:`.optimizers`
  returning a :class:`.optimizers.BuiltOptimizer`, registered in its table of
  names; any Optax alias already works as ``name: optax.<alias>`` in a config.
* **a workload**: a factory returning a :class:`.workloads.base.Workload` (pure
  ``init``, ``loss``, ``train_batch``, ``eval_batches``; its ``metrics`` and
  ``primary_metric``), registered in :mod:`.workloads.registry`, or named in a
  config as ``package.module:factory``.
* **a metric**: return it from the workload's ``loss`` (training records and
  evaluations carry every metric it returns) and list it in ``metrics``; the
  tables take their columns from what the records hold, ranked by the
  workload's ``primary_metric``. An optimizer-side value logged every step goes
  through :meth:`.optimizers.BuiltOptimizer.per_step_values`, which gathers the
  ``logged_rates`` and ``meta_parameters`` hooks and an optimizer's own
  ``logged_values``; each group becomes a key of the training records.
* **a plot**: a function of the loaded results returning a matplotlib ``Figure``, in
  :mod:`.plots` for one results directory, or a module of :mod:`.report` for several
  (with the helpers of :mod:`.plots`), called by :func:`.summary.write_summary` or
  :func:`.report.command.write_cross_report`.

Modules: :mod:`.spec` (the data types and the names of the file fields, a leaf),
:mod:`.config` (the YAML schema), :mod:`.plan` (the config resolved: everything built
once), :mod:`.optimizers` (registry names to Optax transformations; IDBD and Autostep in
:mod:`.ancestors`), :mod:`.workloads` and :mod:`.models` (the tasks and their Flax NNX
models), :mod:`.runner` (training, evaluation, checkpoints with :mod:`.checkpoints`),
:mod:`.results` (the results directory: written and read there), :mod:`.plots` (the
figures), :mod:`.summary` (one directory: ``summary.md``, ``summary.json`` and the
figures; CLI verb ``summarize``), :mod:`.report` (several
directories; CLI verb ``report``), :mod:`.benchmarks` (speed and memory; CLI verb
``bench``), :mod:`.cli`.
"""
