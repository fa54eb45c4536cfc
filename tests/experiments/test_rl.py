"""Reinforcement learning: the PPO agent workload, the runner's agent path, scoring by return."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from metaoptimize_optax.experiments import cli, plan, results, runner
from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments.workloads import base, get_workload
from metaoptimize_optax.experiments.workloads import ppo as ppo_lib

pytest.importorskip("gymnax")

TINY = {"num_envs": 2, "num_steps": 16, "update_epochs": 1, "num_minibatches": 2}


@pytest.fixture(scope="module")
def tiny_ppo():
  return get_workload("ppo", **TINY)


def _config(tmp_path, optimizers, steps=20, seeds=(0, 1), log_every=2):
  return config_lib.from_dict(
    {
      "workload": {"name": "ppo", "options": TINY},
      "steps": steps,
      "seeds": list(seeds),
      "log_every": log_every,
      "eval_every": 0,
      "output_dir": str(tmp_path / "out"),
      "optimizers": optimizers,
    }
  )


# ----------------------------------------------------------------------------
# The workload.


def test_advantages_match_a_transcription_of_the_recursion():
  rng = np.random.default_rng(0)
  t, n, discount, lam = 7, 3, 0.9, 0.8
  rewards, values = rng.normal(size=(t, n)), rng.normal(size=(t, n))
  dones = rng.random((t, n)) < 0.3
  last = rng.normal(size=n)
  expected = np.zeros((t, n))
  gae, next_value = np.zeros(n), last
  for k in reversed(range(t)):
    delta = rewards[k] + discount * next_value * (1 - dones[k]) - values[k]
    gae = delta + discount * lam * (1 - dones[k]) * gae
    expected[k], next_value = gae, values[k]
  got = ppo_lib.advantages(
    jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(dones), jnp.asarray(last), discount, lam
  )
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # lambda 1 and no episode end: the discounted return to go, bootstrapped, minus the value.
  got = ppo_lib.advantages(
    jnp.asarray(rewards), jnp.asarray(values), jnp.zeros((t, n), bool), jnp.asarray(last), 0.9, 1.0
  )
  to_go = np.stack([sum(0.9**j * rewards[k + j] for j in range(t - k)) for k in range(t)])
  to_go += 0.9 ** np.arange(t, 0, -1)[:, None] * last
  np.testing.assert_allclose(got, to_go - values, rtol=1e-5, atol=1e-5)


def test_ppo_workload_shape_and_defaults():
  w = get_workload("ppo")
  assert isinstance(w, base.AgentWorkload)
  # PureJaxRL's CartPole: 5e5 // (4 * 128) = 976 rollouts of 4 epochs x 4 minibatches.
  assert w.updates_per_iteration == 16 and w.default_steps == 976 * 16
  assert w.primary_metric == "final_return" and base.higher_is_better(w.primary_metric)
  params, state = w.init(jax.random.PRNGKey(0))
  assert set(params) == {"actor", "critic"} and state == {}
  actor, critic = params["actor"], params["critic"]
  # CartPole: 4 inputs, 2 actions; two hidden layers of 64.
  assert [actor[f"dense_{i}"]["kernel"].shape for i in range(3)] == [(4, 64), (64, 64), (64, 2)]
  assert [critic[f"dense_{i}"]["kernel"].shape for i in range(3)] == [(4, 64), (64, 64), (64, 1)]


@pytest.mark.parametrize(
  "options, message",
  [
    ({"num_minibatches": 3}, "num_minibatches=3 must divide num_envs * num_steps = 512"),
    ({"env": "Pendulum-v1"}, "continuous actions"),
    ({"env": "NoSuchEnv-v0"}, "is not a gymnax environment; gymnax has: CartPole-v1"),
    ({"env": "MNISTBandit-bsuite"}, "downloads its data"),
    ({"activation": "gelu"}, "option activation must be one of ['tanh', 'relu']"),
    ({"num_envs": 0}, "option num_envs must be a positive integer"),
  ],
)
def test_bad_ppo_options(options, message):
  with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("*", r"\*")):
    get_workload("ppo", **options)


def test_a_missing_gymnax_names_the_extra(monkeypatch):
  import builtins

  real_import = builtins.__import__

  def no_gymnax(name, *args, **kwargs):
    if name == "gymnax":
      raise ModuleNotFoundError("No module named 'gymnax'", name="gymnax")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_gymnax)
  with pytest.raises(ValueError, match=r"pip install 'metaoptimize-optax\[rl\]'"):
    ppo_lib.ppo()


def test_agent_iterations_record_loss_and_episode_returns(tiny_ppo):
  opt = optimizer_lib.build_optimizer("adamw", 100, {"learning_rate": 2.5e-4})
  agent = tiny_ppo.agent(opt.tx.init, opt.update)
  carry = agent.start(jax.random.PRNGKey(0))
  assert math.isnan(float(carry.last_return))
  iterate = runner.agent_jit(agent.iterate)
  returns = []
  for _ in range(8):  # 8 x 16 steps x 2 envs: CartPole's first episodes end (about 20 steps).
    carry, metrics = iterate(carry)
    assert np.isfinite(metrics["loss"])
    returns.append(float(metrics["return"]))
  finite = [r for r in returns if np.isfinite(r)]
  assert finite and all(5 <= r <= 500 for r in finite)  # CartPole: +1 per step, at most 500
  # The same key, the same numbers.
  again = agent.start(jax.random.PRNGKey(0))
  for _ in range(8):
    again, metrics = iterate(again)
  np.testing.assert_allclose(metrics["return"], returns[-1])


# ----------------------------------------------------------------------------
# The runner's agent path and the scores.


def test_compare_of_an_agent_writes_records_and_ranks_by_return(tmp_path, capsys):
  config = _config(
    tmp_path,
    {
      "Adam": {"name": "adamw", "weight_decay": 0.0, "grid": {"learning_rate": [1e-4, 1e-2]}},
      "DoG": {"name": "dog"},
    },
  )
  path = tmp_path / "config.yaml"
  path.write_text(yaml.safe_dump(config.to_dict()))
  assert cli.main(["compare", str(path), "--no-progress"]) == 0
  assert "final return" in capsys.readouterr().out

  adam = config.optimizers[0]
  run = results.run_dir(tmp_path / "out", adam, adam.points()[0], 0)
  start, *train, evaluation, end = results.read_records(run / results.METRICS_FILE)
  assert start["primary_metric"] == "final_return" and start["steps"] == 20
  assert [r["step"] for r in train] == [2 * k for k in range(1, 11)]  # one iteration a record
  keys = {"event", "step", "loss", "return", "learning_rate", "step_time"}
  assert all(set(r) == keys for r in train)
  assert set(evaluation) == {"event", "step", "final_return"} and end["status"] == "finished"
  # final_return: the mean return of the last 10% of the iterations (here the last one).
  assert evaluation["final_return"] == pytest.approx(train[-1]["return"])

  found = results.load_results(tmp_path / "out")
  assert found.primary_metric == "final_return"
  scores = [p.score("online_return") for p in found.optimizers[0].points]
  assert found.optimizers[0].chosen is found.optimizers[0].points[int(np.argmax(scores))]

  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["primary_metric"] == "final_return"
  assert summary["selected_by"] == "online_return"
  rows = sorted(summary["optimizers"], key=lambda r: r["rank"])
  means = [r["metrics"]["final_return"]["mean"] for r in rows]
  assert means == sorted(means, reverse=True)  # rank 1: the highest return
  assert "online_return" in rows[0]["metrics"]
  grid = next(r["grid"] for r in summary["optimizers"] if "grid" in r)
  assert grid["selected_by"].startswith("highest online return")
  assert (tmp_path / "out" / "loss.png").exists()


def test_vmapped_seeds_equal_each_seed_alone(tmp_path):
  optimizers = {"R": {"name": "recommended", "initial_learning_rate": 1e-3}}
  both = _config(tmp_path / "both", optimizers, seeds=(0, 1))
  alone = _config(tmp_path / "alone", optimizers, seeds=(1,))
  runner.run_experiment(both, plan.resolve(both), progress=False)
  runner.run_experiment(alone, plan.resolve(alone), progress=False)

  def metrics(root):
    records = results.read_records(root / "out" / "R" / "seed1" / results.METRICS_FILE)
    return [(r.get("loss"), r.get("return"), r.get("learning_rate")) for r in records[1:-1]]

  for a, b in zip(metrics(tmp_path / "both"), metrics(tmp_path / "alone"), strict=True):
    np.testing.assert_allclose(
      [x for x in (a[0], a[1], *(a[2] or {}).values()) if x is not None],
      [x for x in (b[0], b[1], *(b[2] or {}).values()) if x is not None],
      rtol=1e-4,
    )


def test_a_non_finite_loss_ends_that_seed_as_diverged(tmp_path):
  path = tmp_path / "metrics.jsonl"
  history: list[float] = []
  with path.open("w") as stream:
    live = runner._log_agent_interval(
      stream,
      done=32,
      per_iteration=16,
      losses=np.asarray([1.0, 2.0, np.nan, 3.0]),
      returns=np.asarray([np.nan, 10.0, 20.0, 30.0]),
      values={"learning_rate": {"all": 1e-3}},
      step_time=0.5,
      history=history,
    )
  assert not live and history[1] == 10.0 and len(history) == 2
  train, diverged, end = results.read_records(path)
  assert train["step"] == 32 + 2 * 16 and train["loss"] == 1.5 and train["return"] == 10.0
  assert diverged["event"] == "diverged" and diverged["step"] == 32 + 3 * 16
  assert end == {"event": "end", "status": "diverged", "step": 80, "reason": diverged["reason"]}


@pytest.mark.parametrize(
  "change, message",
  [
    ({"steps": 21}, "steps=21 must be a multiple of the 2 optimizer updates of one iteration"),
    ({"eval_every": 4}, "eval_every=4 is not supported by workload 'ppo_CartPole-v1'"),
    ({"checkpoint_every": 2}, "checkpoint_every=2 is not supported"),
  ],
)
def test_agent_configs_that_cannot_run_are_refused(tmp_path, change, message):
  raw = yaml.safe_load(yaml.safe_dump(_config(tmp_path, {"A": {"name": "adamw"}}).to_dict()))
  config = config_lib.from_dict({**raw, **change})
  with pytest.raises(config_lib.ConfigError, match=message):
    plan.resolve(config)


def test_agent_trainer_starts_each_seed_alone(tiny_ppo):
  """The seeds' carries are started one at a time (no batched LAPACK: PPO's orthogonal init
  is a QR per layer, which can deadlock XLA:CPU's pool when batched) and stacked."""
  opt = optimizer_lib.build_optimizer("adamw", 100, {"learning_rate": 2.5e-4})
  keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 1)])
  carry = runner.make_agent_trainer(tiny_ppo, opt).start(keys)
  start = jax.jit(tiny_ppo.agent(opt.tx.init, opt.update).start)
  for i, key in enumerate(keys):
    alone = start(key)
    for x, y in zip(jax.tree.leaves(carry), jax.tree.leaves(alone), strict=True):
      np.testing.assert_array_equal(np.asarray(x)[i], np.asarray(y))
  kernel = carry.params["actor"]["dense_0"]["kernel"]
  assert kernel.shape[0] == 2 and not np.allclose(kernel[0], kernel[1])  # A seed each.


def test_agent_programs_compile_without_the_scheduler_that_stalled():
  """The option exists in this jaxlib (an unknown one is an error) and the agent's jit uses it."""
  assert runner.XLA_CPU_AGENT_OPTIONS == {"xla_cpu_enable_concurrency_optimized_scheduler": False}
  assert float(runner.agent_jit(lambda x: x + 1.0)(1.0)) == 2.0
