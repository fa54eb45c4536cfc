"""The runner: metrics streams, resume, divergence, evaluation point."""

import dataclasses

import jax
import numpy as np
import optax
import pytest
from exp_helpers import tiny_config

from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments import results, runner, spec
from metaoptimize_optax.experiments import summary as summary_lib


def _records(out, optimizer, seed, point=""):
  opt = optimizer
  directory = results.run_dir(out, opt, config_lib.GridPoint(point, {}), seed)
  return results.read_records(directory / results.METRICS_FILE)


def _metrics_only(records):
  """Records without wall-clock timings."""
  return [{k: v for k, v in r.items() if k != "step_time"} for r in records]


def test_metrics_stream(tmp_path, workload):
  config = tiny_config(tmp_path, seeds=1, eval_every=15)  # Not a multiple of log_every.
  outcomes = runner.run_experiment(config, workload, progress=False)
  assert [o.status for o in outcomes] == ["finished"] * 3
  mo_records = _records(tmp_path, config.optimizers[0], 0)
  assert mo_records[0]["event"] == "start" and mo_records[0]["name"] == "metaoptimize"
  train = [r for r in mo_records if r["event"] == "train"]
  assert [r["step"] for r in train] == list(range(5, 41, 5))
  assert set(train[0]["learning_rate"]) == {"l1", "l2"}  # per_layer blocks
  assert train[0]["step_time"] is not None or train[1]["step_time"] is not None
  assert {"loss", "accuracy"} <= set(train[0])
  evals = [r for r in mo_records if r["event"] == "eval"]
  assert [r["step"] for r in evals] == [15, 30, 40]
  assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= set(evals[0])
  assert mo_records[-1] == {"event": "end", "status": "finished", "step": 40}
  # The record format, pinned: a change of it is a change of the file format.
  assert set(mo_records[0]) == {
    "event", "optimizer", "name", "metaoptimize", "params", "grid_point", "seed", "steps",
    "devices", "workload", "primary_metric", "stream",
  }  # fmt: skip
  assert set(mo_records[0]) == set(spec.START_FIELDS)
  assert mo_records[0]["metaoptimize"] is True
  assert set(train[0]) == {
    "event", "step", "learning_rate", "step_time", "loss", "accuracy",
  }  # fmt: skip
  assert set(evals[0]) == {
    "event", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
  }  # fmt: skip
  # The learned rate moved (meta learning rate 0.05 per step).
  assert train[-1]["learning_rate"]["l1"] != pytest.approx(1e-3, rel=0.1)
  # Every grid point ran.
  for label in ("learning_rate=0.001", "learning_rate=0.03"):
    assert _records(tmp_path, config.optimizers[1], 0, label)[-1]["status"] == "finished"


def test_resume_equals_uninterrupted(tmp_path, workload):
  optimizers = {
    "MetaOptimize": {
      "name": "metaoptimize",
      "initial_learning_rate": 1e-3,
      "meta_learning_rate": 0.05,
      "blocks": "per_layer",
    },
    "AdamW": {"name": "adamw", "learning_rate": 1e-2},
  }
  full = tiny_config(tmp_path / "full", checkpoint_every=10, optimizers=optimizers)
  runner.run_experiment(full, workload, progress=False)

  cut = tiny_config(tmp_path / "cut", checkpoint_every=10, optimizers=optimizers)
  stopped = runner.run_experiment(cut, workload, progress=False, stop_after=20)
  assert {o.status for o in stopped} == {"stopped"}
  # Records written after the checkpoint (a torn last line too) must not survive the resume.
  mo_path = (
    results.run_dir(cut.output_dir, cut.optimizers[0], cut.optimizers[0].points()[0], 0)
    / results.METRICS_FILE
  )
  with mo_path.open("a") as f:
    f.write('{"event": "train", "step": 25, "loss": 123.0}\n{"event": "tr')
  resumed = runner.run_experiment(cut, workload, resume=True, progress=False)
  assert {o.status for o in resumed} == {"finished"}

  for opt in full.optimizers:
    for seed in full.seeds:
      a = _records(full.output_dir, opt, seed)
      b = _records(cut.output_dir, opt, seed)
      assert len(a) == 2 + 8 + 2  # start, 8 train, 2 eval, end
      assert _metrics_only(a) == _metrics_only(b), (opt.display_name, seed)

  # Resuming a finished experiment changes nothing.
  again = runner.run_experiment(cut, workload, resume=True, progress=False)
  assert [dataclasses.astuple(o) for o in again] == [dataclasses.astuple(o) for o in resumed]


def test_diverging_optimizer_is_reported_and_others_go_on(tmp_path, workload):
  config = tiny_config(
    tmp_path,
    seeds=1,
    target_loss=0.9,
    optimizers={
      "Boom": {"name": "adamw", "learning_rate": 1e30},
      "AdamW": {"name": "adamw", "learning_rate": 1e-2},
    },
  )
  outcomes = runner.run_experiment(config, workload, progress=False)
  boom, adamw = outcomes
  assert boom.status == "diverged" and "non-finite training loss" in boom.reason
  assert 1 <= boom.step <= 5
  assert adamw.status == "finished" and adamw.step == 40
  records = _records(tmp_path, config.optimizers[0], 0)
  diverged = [r for r in records if r["event"] == "diverged"]
  assert diverged and diverged[0]["step"] == boom.step
  assert records[-1]["status"] == "diverged"

  summary_lib.write_summary(tmp_path)
  summary = (tmp_path / "summary.md").read_text()
  row = next(line for line in summary.splitlines() if line.startswith("| Boom"))
  assert f"diverged in 1/1 seeds (step {boom.step})" in row
  assert next(line for line in summary.splitlines() if line.startswith("| AdamW"))


def test_evaluation_at_schedule_free_average(workload):
  """Schedule-free AdamW is evaluated at its averaged point x, not at y."""
  opt = optimizer_lib.build_optimizer("schedule_free_adamw", 40, {"learning_rate": 0.05})
  trainer = runner.make_trainer(runner.compile_workload(workload, runner.data_mesh(16)), opt)
  params, model_state, opt_state = trainer.init(jax.random.PRNGKey(0))
  for step in range(10):
    params, model_state, opt_state, _ = trainer.train_step(
      params, model_state, opt_state, workload.train_batch(0, step), np.int32(step)
    )
  got = runner.evaluate(trainer, params, model_state, opt_state, 0, 10)
  x = optax.contrib.schedule_free_eval_params(opt_state, params)
  loss = jax.jit(lambda p, b: workload.loss(p, model_state, b, False)[0])
  for split, batches in workload.eval_batches(0, 10).items():
    n = [len(b["y"]) for b in batches]
    at_x = sum(k * float(loss(x, b)) for k, b in zip(n, batches, strict=True)) / sum(n)
    at_y = sum(k * float(loss(params, b)) for k, b in zip(n, batches, strict=True)) / sum(n)
    assert got[f"{split}_loss"] == pytest.approx(at_x, rel=1e-5)
    assert at_x != pytest.approx(at_y, rel=1e-3)


def test_output_dir_policy(tmp_path):
  config = tiny_config(tmp_path / "out", steps=5)
  runner.prepare_output_dir(config)  # Nothing there yet.
  runner.write_config(config, tmp_path / "out")
  with pytest.raises(config_lib.ConfigError, match="--resume .* or --overwrite"):
    runner.prepare_output_dir(config)
  runner.prepare_output_dir(config, resume=True)
  runner.prepare_output_dir(config, overwrite=True)
  changed = dataclasses.replace(config, steps=6)
  with pytest.raises(config_lib.ConfigError, match="differs .* in steps"):
    runner.prepare_output_dir(changed, resume=True)
