"""Learned meta-parameters in experiments: configs accept them, runs log them, reports show them."""

import json

import jax
import jax.numpy as jnp
from exp_helpers import tiny_config

from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments import results, runner
from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.report import command as crossreport

LEARN = {"b2": "logit", "weight_decay": "log"}


def test_registry_builds_meta_parameters_for_presets_and_alias_bases():
  for name, params in [
    ("metaoptimize", {"meta_parameters": LEARN}),
    ("recommended", {"meta_parameters": LEARN}),
    ("metaoptimize", {"base": "optax.adamw", "weight_decay": 0.1, "meta_parameters": LEARN}),
  ]:
    optimizer = optimizer_lib.build_optimizer(name, 100, params)
    assert optimizer.meta_parameters is not None
  assert optimizer_lib.build_optimizer("metaoptimize", 100, {}).meta_parameters is None


def test_runs_log_meta_parameters_and_the_report_shows_them(tmp_path, workload):
  config = tiny_config(
    tmp_path,
    seeds=1,
    optimizers={
      "Learned": {
        "name": "recommended",
        "initial_learning_rate": 1e-3,
        "meta_parameters": LEARN,
      },
      "AdamW": {"name": "adamw", "learning_rate": 1e-2},
    },
  )
  runner.run_experiment(config, workload, progress=False)
  learned, adamw = config.optimizers
  run = results.run_dir(tmp_path, learned, learned.points()[0], 0) / results.METRICS_FILE
  train = [r for r in map(json.loads, run.read_text().splitlines()) if r["event"] == "train"]
  assert len(train) == config.steps // config.log_every
  assert all(set(r["meta_parameters"]) == set(LEARN) for r in train)
  assert train[0]["meta_parameters"]["b2"] != train[-1]["meta_parameters"]["b2"]  # it moved
  peer = results.run_dir(tmp_path, adamw, adamw.points()[0], 0) / results.METRICS_FILE
  assert all("meta_parameters" not in json.loads(line) for line in peer.read_text().splitlines())
  table = summary_lib.table(summary_lib.write_summary(tmp_path))
  assert "learned (final): b2 " in table and "weight_decay " in table
  assert (tmp_path / "meta_parameters.png").stat().st_size > 0
  summary = json.loads((tmp_path / "summary.json").read_text())
  row = next(r for r in summary["optimizers"] if r["optimizer"] == "Learned")
  final = train[-1]["meta_parameters"]
  assert row["meta_parameters"]["b2"]["mean"] == final["b2"]
  written = crossreport.write_cross_report([tmp_path], tmp_path / "report")[1]
  assert "meta_parameters.png" in written
  assert (tmp_path / "report" / "meta_parameters.png").stat().st_size > 0


def test_an_optimizer_logs_its_own_per_step_values(workload):
  """learning_rate, meta_parameters and an optimizer's own values travel one hook."""
  built = optimizer_lib.build_optimizer("recommended", 10, {"meta_parameters": LEARN})
  built = built._replace(logged_values=lambda state, step: {"custom": {"step": 2.0 * step}})
  step_fn = jax.jit(runner.make_train_step(workload, built))
  params, model_state = workload.init(jax.random.key(0))
  batch = workload.train_batch(0, 3)
  *_, metrics = step_fn(params, model_state, built.tx.init(params), batch, jnp.int32(3))
  values = metrics.pop(runner.OPTIMIZER_VALUES)
  assert set(values) == {"learning_rate", "meta_parameters", "custom"}
  record = runner._interval_record(4, [metrics], values, None)
  assert record["custom"] == {"step": 6.0} and set(record["meta_parameters"]) == set(LEARN)
