"""Streams: the stream workloads, online metrics, ranking by primary metric, the new peers."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml
from exp_helpers import tiny_classifier

import metaoptimize_optax as mo
from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments import plan, plots, results, runner
from metaoptimize_optax.experiments import summary as summary_lib
from metaoptimize_optax.experiments.report import command as report_command
from metaoptimize_optax.experiments.report import loading
from metaoptimize_optax.experiments.report import streams as streams_lib
from metaoptimize_optax.experiments.workloads import drifting_regression as drifting
from metaoptimize_optax.experiments.workloads import get_workload
from metaoptimize_optax.experiments.workloads.input_permuted_mnist1d import input_permutation
from metaoptimize_optax.experiments.workloads.mnist1d_classification import stream_batch
from metaoptimize_optax.experiments.workloads.mnist1d_data import load_mnist1d
from metaoptimize_optax.experiments.workloads.slowly_changing_regression import (
  slow_bits,
  teacher,
  teacher_output,
)

CONFIGS = config_lib.BUILTIN_DIR
STREAM_CONFIGS = sorted(p.stem for p in CONFIGS.glob("stream_*.yaml"))
STUDY_CONFIGS = sorted(f"stream_study/{p.stem}" for p in CONFIGS.glob("stream_study/*.yaml"))
TINY_MNIST = {"num_samples": 300, "batch_size": 16, "hidden_sizes": [8]}


# ----------------------------------------------------------------------------
# Workloads.


def test_input_permutations_differ_per_task_and_are_fixed_per_seed():
  perms = [input_permutation(0, k) for k in range(20)]
  assert all(sorted(p.tolist()) == list(range(40)) for p in perms)
  assert len({p.tobytes() for p in perms}) == 20  # a new permutation every task
  np.testing.assert_array_equal(input_permutation(0, 3), input_permutation(0, 3))
  assert input_permutation(1, 3).tobytes() != input_permutation(0, 3).tobytes()

  w = get_workload("input_permuted_mnist1d", task_steps=5, **TINY_MNIST)
  data = load_mnist1d(num_samples=300)
  for step in (0, 4, 5, 12):
    batch = w.train_batch(0, step)
    plain = stream_batch(data, 0, step, 16)
    np.testing.assert_array_equal(batch["x"], plain["x"][:, input_permutation(0, step // 5)])
    np.testing.assert_array_equal(batch["y"], plain["y"])  # labels untouched
  # Evaluation uses the permutation of the task of the evaluation step.
  test = w.eval_batches(0, 7)["test"][0]
  np.testing.assert_array_equal(test["x"], data.x_test[: len(test["x"]), input_permutation(0, 1)])
  assert w.primary_metric == "online_loss" and w.stream and w.default_steps == 20 * 5


def test_label_permuted_stream_is_long_and_ranked_online():
  w = get_workload("continual_mnist1d", task_steps=250, num_tasks=40, **TINY_MNIST)
  assert w.default_steps == 10_000 and w.primary_metric == "online_loss" and w.stream
  with pytest.raises(TypeError, match="num_tasks"):
    get_workload("input_permuted_mnist1d", num_task=3)


def test_slowly_changing_regression_target_drifts_slowly():
  flip_every = 10
  bits = np.stack([slow_bits(3, t, 15, flip_every) for t in range(0, 400)])
  changes = np.abs(np.diff(bits, axis=0)).sum(axis=1)
  # Exactly one slow bit flips at every multiple of flip_every, none in between.
  at_flip = np.arange(1, 400) % flip_every == 0
  assert np.all(changes[at_flip] == 1) and np.all(changes[~at_flip] == 0)
  assert len({tuple(b) for b in bits[::flip_every]}) > 10  # it wanders
  # Far into the stream (blocks of flips) it is still a pure function of (seed, step).
  np.testing.assert_array_equal(slow_bits(3, 10**7, 15, 1), slow_bits(3, 10**7, 15, 1))

  w = get_workload("slowly_changing_regression", flip_every=flip_every, batch_size=64)
  b0, b1 = w.train_batch(3, 0), w.train_batch(3, 1)
  np.testing.assert_array_equal(b0["x"][:, :15], np.broadcast_to(bits[0], (64, 15)))
  assert np.all(b0["x"][:, -1] == 1)  # the bias bit
  assert not np.array_equal(b0["x"][:, 15:20], b1["x"][:, 15:20])  # fresh fast bits each step
  assert set(np.unique(b0["x"])) <= {0.0, 1.0}
  # The teacher is fixed per seed: the same input gets the same target at any step.
  np.testing.assert_array_equal(teacher_output(b0["x"], 3), b0["y"])
  w_in, theta, v = teacher(3)
  assert w_in.shape == (21, 100) and set(np.unique(w_in)) == {-1.0, 1.0}
  np.testing.assert_allclose(theta, 21 * 0.7 - (w_in < 0).sum(0))
  assert not np.array_equal(teacher(4)[0], w_in)
  # The target as a function of the 5 fast bits (32 patterns) changes at flips, a little.
  fast = np.array([[(i >> k) & 1 for k in range(5)] for i in range(32)], np.float32)

  def target_function(slow):
    x = np.concatenate([np.broadcast_to(slow, (32, 15)), fast, np.ones((32, 1))], 1)
    return teacher_output(x.astype(np.float32), 3)

  functions = [target_function(bits[k * flip_every]) for k in range(30)]
  changed = [np.mean(a != b) for a, b in zip(functions[:-1], functions[1:], strict=True)]
  assert 0 < np.mean(changed) and max(changed) < 1
  assert np.std(b0["y"]) > 0.5
  assert w.primary_metric == "online_loss" and w.stream


def test_drifting_regression_moves_a_little_at_every_step():
  w = get_workload("drifting_regression", batch_size=2000, noise_std=0.0, eval_size=2000)
  assert w.primary_metric == "online_loss" and w.stream and w.default_steps == 20_000
  # A pure function of (seed, step), different for another seed.
  np.testing.assert_array_equal(w.train_batch(1, 123)["y"], w.train_batch(1, 123)["y"])
  assert not np.array_equal(w.train_batch(1, 123)["y"], w.train_batch(2, 123)["y"])
  # The same inputs, labelled at steps t and t + k: the target function drifts by an amount
  # that grows with k (the teacher moves at every step), and comes back after a period.
  x = w.eval_batches(1, 0)["test"][0]["x"]

  def target(step):
    w_, v_, _ = drifting._endpoints(1, 10, 20)
    return np.tanh(x @ drifting._on_circle(w_, step, 7000)) @ drifting._on_circle(v_, step, 7000)

  gaps = [np.sqrt(np.mean((target(k) - target(0)) ** 2)) for k in (1, 10, 100, 1000)]
  assert 0 < gaps[0] < gaps[1] < gaps[2] < gaps[3]
  # tanh is odd: the teacher at -(A, B) is the same function, so it repeats every half period.
  np.testing.assert_allclose(target(3500), target(0), atol=1e-5)
  # Evaluation labels are the teacher's at that step, without noise.
  np.testing.assert_allclose(w.eval_batches(1, 0)["test"][0]["y"], target(0), rtol=1e-5, atol=1e-6)
  # The inputs' mean circles at radius input_shift (covariate shift).
  means = [w.train_batch(1, t)["x"].mean(0) for t in (0, 750, 1500)]
  assert abs(np.linalg.norm(means[0]) - 1.0) < 0.1 and np.linalg.norm(means[0] - means[2]) > 1.5
  with pytest.raises(ValueError, match="teacher_period"):
    get_workload("drifting_regression", teacher_period=0)


# ----------------------------------------------------------------------------
# Online metrics.


def test_train_step_records_the_loss_before_the_update():
  w = tiny_classifier()
  params, model_state = w.init(jax.random.PRNGKey(0))
  opt = optimizer_lib.build_optimizer("adamw", 10, {"learning_rate": 0.1})
  step = jax.jit(runner.make_train_step(w, opt))
  state = opt.tx.init(params)
  for t in range(3):
    batch = w.train_batch(0, t)
    before, (metrics_before, _) = w.loss(params, model_state, batch, True)
    new_params, _, state, metrics = step(params, model_state, state, batch, np.int32(t))
    after, _ = w.loss(new_params, model_state, batch, True)
    np.testing.assert_allclose(metrics["loss"], before, rtol=1e-6)
    np.testing.assert_allclose(metrics["accuracy"], metrics_before["accuracy"])
    assert float(after) < float(before)  # the update did happen, after the measurement
    params = new_params


def test_run_records_online_metrics_and_primary_metric(tmp_path):
  w = tiny_classifier()
  w = type(w)(**{**w.__dict__, "primary_metric": "online_loss", "stream": True})
  config = config_lib.from_dict(
    {
      "workload": {"name": "tiny_classifier"},
      "steps": 12,
      "seeds": 1,
      "log_every": 1,
      "eval_every": 0,
      "output_dir": str(tmp_path),
      "optimizers": {"AdamW": {"name": "adamw", "learning_rate": 0.05}},
    }
  )
  runner.run_experiment(config, w, progress=False)
  opt = config.optimizers[0]
  records = results.read_records(
    results.run_dir(tmp_path, opt, opt.points()[0], 0) / results.METRICS_FILE
  )
  start = records[0]
  assert start["primary_metric"] == "online_loss" and start["stream"] is True
  # Replay the run: each logged loss is the loss of that step's batch before its update.
  params, model_state = w.init(jax.random.PRNGKey(0))
  built = optimizer_lib.build_optimizer("adamw", 12, {"learning_rate": 0.05})
  state = built.tx.init(params)
  train = list(results.iter_events(records, "train"))
  for t, record in enumerate(train):
    batch = w.train_batch(0, t)
    loss, grads = jax.value_and_grad(lambda p, b=batch: w.loss(p, model_state, b, True)[0])(params)
    assert record["loss"] == pytest.approx(float(loss), rel=1e-5)
    updates, state = built.tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  online = results.load_results(tmp_path).optimizers[0].chosen.runs[0].online()
  assert online["online_loss"] == pytest.approx(np.mean([r["loss"] for r in train]))


def test_online_means_weight_each_interval_by_its_steps():
  train = [
    {"event": "train", "step": 10, "loss": 1.0, "accuracy": 0.0},
    {"event": "train", "step": 40, "loss": 2.0, "accuracy": 1.0},
    {"event": "train", "step": 50, "loss": 4.0, "accuracy": 1.0},
  ]
  means = results.online_means(train)
  assert means == pytest.approx({"online_loss": (10 + 60 + 40) / 50, "online_accuracy": 0.8})
  curve = results.online_curve(train, 50, bins=2)
  assert curve["step"] == [25, 50]
  assert curve["loss"] == pytest.approx([1.0, (60 + 40) / 40])


# ----------------------------------------------------------------------------
# Ranking by the primary metric.


def _write_run(out, opt, point, seed, losses, *, primary="online_loss", test_accuracy=0.5):
  directory = results.run_dir(out, opt, point, seed)
  directory.mkdir(parents=True)
  with (directory / results.METRICS_FILE).open("w") as f:
    results.write_record(f, {"event": "start", "seed": seed, "primary_metric": primary})
    for i, loss in enumerate(losses):
      results.write_record(
        f,
        {
          "event": "train",
          "step": 10 * (i + 1),
          "loss": loss,
          "learning_rate": {"all": 1e-3},
          "step_time": 0.001,
        },
      )
    results.write_record(
      f,
      {"event": "eval", "step": 10 * len(losses), "test_loss": 1.0, "test_accuracy": test_accuracy},
    )
    results.write_record(f, {"event": "end", "status": "finished", "step": 10 * len(losses)})


@pytest.fixture
def stream_dir(tmp_path):
  """A stream where the final training loss and the online loss disagree."""
  out = tmp_path / "stream"
  out.mkdir()
  config = config_lib.from_dict(
    {
      "workload": {"name": "tracking"},
      "steps": 30,
      "seeds": [0, 1],
      "output_dir": str(out),
      "optimizers": {
        "Fast": {"name": "sgdm"},
        "AdamW": {"name": "adamw", "grid": {"learning_rate": [1e-3, 1e-2]}},
        "Slow": {"name": "lion"},
      },
    }
  )
  (out / results.CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
  fast, adamw, slow = config.optimizers
  lo, hi = adamw.points()
  for seed in (0, 1):
    _write_run(out, fast, fast.points()[0], seed, [1.0, 1.0, 1.0])  # online 1.0, final 1.0
    _write_run(out, slow, slow.points()[0], seed, [5.0, 3.0, 0.1])  # online 2.7, final 0.1
    _write_run(out, adamw, lo, seed, [4.0, 0.5, 0.2])  # online 1.57, final 0.2
    _write_run(out, adamw, hi, seed, [1.0, 0.6, 0.5])  # online 0.7, final 0.5
  return out


def test_stream_ranks_and_tunes_by_mean_online_loss(stream_dir):
  found = results.load_results(stream_dir)
  assert found.primary_metric == "online_loss"
  adamw = found.optimizers[1]
  assert adamw.chosen.point.label == "learning_rate=0.01"  # lowest online, not final, loss
  summary = summary_lib.summarize(found)
  assert summary["primary_metric"] == "online_loss"
  assert [r["rank"] for r in summary["optimizers"]] == [2, 1, 3]
  table = summary_lib.table(summary)
  header = table.splitlines()[0]
  assert header.startswith("| Optimizer | rank | online loss (primary) | train loss |")
  assert "best learning_rate=0.01 by online loss" in table
  md = summary_lib.summary_markdown(found.config, summary)
  assert "Online loss over the run" in md

  text, _ = report_command.write_cross_report([stream_dir], stream_dir.parent / "report")
  data = json.loads((stream_dir.parent / "report" / "quality.json").read_text())
  (row,) = data["primary"]
  assert row["metric"] == "online_loss"
  assert {m: c.get("rank") for m, c in row["cells"].items()} == {"Fast": 2, "AdamW": 1, "Slow": 3}
  assert row["cells"]["AdamW"]["best"]
  assert data["train_loss"][0]["cells"]["Slow"]["best"]  # the final training loss, beside it
  assert "## Primary metric" in text and "(#1)" in text
  assert (stream_dir.parent / "report" / "streams.png").stat().st_size > 0  # curves over the stream


def test_stream_sweeps_are_scored_by_mean_online_loss(tmp_path):
  """The robustness table of a stream: the mean online loss at each start, its median."""
  config = config_lib.from_dict(
    {
      "workload": {"name": "tracking"},
      "steps": 30,
      "seeds": [0, 1],
      "output_dir": str(tmp_path / "stream"),
      "optimizers": {
        f"MO {lr:g}": {"name": "metaoptimize", "initial_learning_rate": lr}
        for lr in (1e-4, 1e-3, 1e-2)
      },
    }
  )
  out = tmp_path / "stream"
  out.mkdir()
  (out / results.CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
  online = {1e-4: [3.0, 3.0, 3.0], 1e-3: [1.0, 1.0, 1.0], 1e-2: [2.0, 2.0, 2.0]}
  for opt in config.optimizers:
    for seed in (0, 1):  # Every final test loss is 1.0: only the online loss differs.
      _write_run(out, opt, opt.points()[0], seed, online[opt.params["initial_learning_rate"]])
  report_command.write_cross_report([out], tmp_path / "report")
  (entry,) = json.loads((tmp_path / "report" / "robustness.json").read_text())["workloads"]
  assert entry["metric"] == "online_loss"
  (sweep,) = entry["sweeps"]
  assert [p["mean"] for p in sweep["points"]] == pytest.approx([3.0, 1.0, 2.0])
  assert sweep["best_rate"] == pytest.approx(1e-3)
  assert sweep["median"] == pytest.approx(2.0) and sweep["spread"] == pytest.approx(2.0)
  md = (tmp_path / "report" / "robustness.md").read_text()
  assert "## tracking: mean online loss" in md and "| median | 2 |" in md


def test_streams_plot_ends_the_curve_where_a_seed_diverged(stream_dir):
  fast = results.load_results(stream_dir).config.optimizers[0]
  (results.run_dir(stream_dir, fast, fast.points()[0], 1) / results.METRICS_FILE).unlink()
  results.run_dir(stream_dir, fast, fast.points()[0], 1).rmdir()
  _write_run(stream_dir, fast, fast.points()[0], 1, [3.0, None, None])  # null: non-finite
  steps, loss = plots.online_loss_curve(results.load_results(stream_dir).optimizers[0])
  np.testing.assert_array_equal(steps, [10, 20, 30])
  np.testing.assert_array_equal(loss, [2.0, np.nan, np.nan])
  fig = streams_lib.figure(loading.load_workloads([stream_dir]), ["Fast", "AdamW", "Slow"])
  assert fig.axes[0].get_ylim()[1] == pytest.approx(10 * 2.0)  # median of 2.0, 1.0 and 5.0
  report_command.write_cross_report([stream_dir], stream_dir.parent / "report")
  assert (stream_dir.parent / "report" / "streams.png").stat().st_size > 0


def test_finite_workload_ranks_by_held_out_accuracy(tmp_path):
  config = config_lib.from_dict(
    {
      "workload": {"name": "mnist1d_mlp"},
      "steps": 30,
      "seeds": [0],
      "output_dir": str(tmp_path),
      "optimizers": {"A": {"name": "sgdm"}, "B": {"name": "lion"}},
    }
  )
  (tmp_path / results.CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
  a, b = config.optimizers
  _write_run(tmp_path, a, a.points()[0], 0, [1.0, 0.1], primary="test_accuracy", test_accuracy=0.6)
  _write_run(tmp_path, b, b.points()[0], 0, [1.0, 0.5], primary="test_accuracy", test_accuracy=0.9)
  summary = summary_lib.summarize(results.load_results(tmp_path))
  assert summary["primary_metric"] == "test_accuracy"
  assert [r["rank"] for r in summary["optimizers"]] == [2, 1]  # higher accuracy is better
  assert summary["selected_by"] == "train_loss"  # no tuning on held-out data


# ----------------------------------------------------------------------------
# Peers and the stream call of mo.recommended.


def _quadratic(p):
  return jnp.sum((p["w"] - 1.5) ** 2) + jnp.sum((p["b"] + 0.5) ** 2)


@pytest.mark.parametrize("name", ["cocob", "dowg", "momo_adam"])
def test_new_peers_reduce_the_loss(name):
  opt = optimizer_lib.build_optimizer(name, 200, {})
  params = {"w": jnp.zeros(5), "b": jnp.ones(3)}
  state = opt.tx.init(params)
  first = float(_quadratic(params))

  @jax.jit
  def step(params, state):
    loss, grads = jax.value_and_grad(_quadratic)(params)
    extra = {"value": loss} if opt.needs_value else {}
    updates, state = opt.tx.update(grads, state, params, **extra)
    return optax.apply_updates(params, updates), state

  for _ in range(200):
    params, state = step(params, state)
  assert float(_quadratic(params)) < 0.1 * first
  assert opt.needs_value == (name == "momo_adam")
  rates = opt.logged_rates(state, jnp.int32(200))
  assert all(np.isfinite(float(v)) and float(v) > 0 for v in rates.values())


def test_momo_gets_the_batch_loss_through_the_train_step():
  w = tiny_classifier()
  params, model_state = w.init(jax.random.PRNGKey(0))
  opt = optimizer_lib.build_optimizer("momo_adam", 50, {})
  step = jax.jit(runner.make_train_step(w, opt))
  state = opt.tx.init(params)
  losses = []
  for t in range(60):
    params, model_state, state, metrics = step(
      params, model_state, state, w.train_batch(0, t), np.int32(t)
    )
    losses.append(float(metrics["loss"]))
  assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])


def test_recommended_without_a_horizon_is_the_stream_call():
  params = {"w": jnp.zeros(4)}
  loss = lambda p: jnp.sum((p["w"] - jnp.arange(4.0)) ** 2)

  def run(tx):
    p, state = params, tx.init(params)
    for _ in range(30):
      updates, state = tx.update(jax.grad(loss)(p), state, p)
      p = optax.apply_updates(p, updates)
    return p

  stream = optimizer_lib.build_optimizer(
    "recommended", 500, {"horizon": False, "initial_learning_rate": 1e-3}
  )
  finite = optimizer_lib.build_optimizer("recommended", 500, {"initial_learning_rate": 1e-3})
  np.testing.assert_allclose(run(stream.tx)["w"], run(mo.recommended(1e-3))["w"], rtol=1e-6)
  np.testing.assert_allclose(
    run(finite.tx)["w"], run(mo.recommended(1e-3, total_steps=500))["w"], rtol=1e-6
  )
  with pytest.raises(optimizer_lib.OptimizerError, match="horizon"):
    optimizer_lib.build_optimizer("recommended", 500, {"horizon": "no"})


@pytest.mark.parametrize("name", STREAM_CONFIGS + STUDY_CONFIGS)
def test_stream_configs_compare_every_peer(name):
  config = config_lib.load_config(CONFIGS / f"{name}.yaml")
  workload = plan.resolve(config).workload
  assert workload.primary_metric == "online_loss"
  names = {o.name for o in config.optimizers}
  peers = {"adamw", "sgdm", "cocob", "dog", "dowg", "mechanic", "prodigy", "momo_adam"}
  assert peers <= names
  # MetaOptimize without an end (no finite call on a stream), from starts two decades apart.
  calls = [o for o in config.optimizers if o.name in ("metaoptimize", "recommended")]
  assert calls and all(o.name != "recommended" or o.params.get("horizon") is False for o in calls)
  starts = {o.params["initial_learning_rate"] for o in calls}
  assert max(starts) / min(starts) >= 99
  tuned = [o for o in config.optimizers if o.name in ("adamw", "sgdm")]
  assert all("learning_rate" in o.grid for o in tuned)
  if name.startswith("stream_study/"):  # The study: IDBD and Autostep too, 3 seeds.
    assert {"idbd", "autostep"} <= names and len(config.seeds) == 3


def test_stream_configs_exist():
  assert {
    "stream_label_permuted_mnist1d",
    "stream_input_permuted_mnist1d",
    "stream_slowly_changing_regression",
    "stream_tracking",
  } <= set(STREAM_CONFIGS)
  assert len(STUDY_CONFIGS) == 6  # The stream study: six streams.
