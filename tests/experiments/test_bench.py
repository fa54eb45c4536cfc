"""The benchmark machinery on tiny trees: table structure and state-size accounting.

No timing is asserted: only that every candidate is measured against the
baseline and reported, and that the optimizer state sizes are exactly what the
design promises (AdamW's, plus one params-sized trace, plus per-block scalars).
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaoptimize_optax as mo
from metaoptimize_optax.experiments.benchmarks import command, memory, suites, table, timing
from metaoptimize_optax.experiments.benchmarks import trees as trees_lib

TINY = 20_000  # Values in the tiny synthetic tree (two layers).
F32 = 4


def tiny_params():
  return trees_lib.synthetic_params(TINY)


def leaves_bytes(params):
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))


# ----------------------------------------------------------------------------
# Trees.


def test_synthetic_params_are_many_float32_leaves_of_about_the_size():
  for n in (TINY, 200_000):
    params = trees_lib.synthetic_params(n)
    leaves = jax.tree.leaves(params)
    assert all(x.dtype == jnp.float32 for x in leaves)
    assert len(leaves) >= 2 * 8
    assert 0.7 * n <= trees_lib.count(params) <= 1.3 * n
    assert trees_lib.nbytes(params) == leaves_bytes(params)


@pytest.mark.parametrize("n", [1_000_000, 10_000_000, 50_000_000])
def test_layer_shapes_of_the_benchmark_sizes(n):
  layers, width = trees_lib.layer_shapes(n)
  total = layers * (12 * width**2 + 7 * width)
  assert 0.9 * n <= total <= 1.1 * n
  assert width % 8 == 0 and layers >= 8


def test_describe():
  assert [trees_lib.describe(n) for n in (999, 1_500, 1_044_160, 50_000_000)] == [
    "999",
    "1.5k",
    "1.04M",
    "50M",
  ]


# ----------------------------------------------------------------------------
# State bytes: exactly AdamW's + one trace + per-block scalars.


def adamw_bytes(params):
  """optax.adamw: count (int32) and two params-sized moments."""
  return 4 + 2 * leaves_bytes(params)


def counters(tx, params):
  """The int32 step counts of a state (the base's, the meta optimizer's, ...)."""
  leaves = jax.tree.leaves(jax.eval_shape(tx.init, params))
  return sum(1 for x in leaves if x.shape == () and x.dtype == jnp.int32)


def test_adamw_state_bytes():
  params = tiny_params()
  assert memory.state_bytes(optax.adamw(1e-3), params) == adamw_bytes(params)


@pytest.mark.parametrize("meta, per_block", [("lion", 1), ("adam", 2)])
@pytest.mark.parametrize("blocks", ["scalar", "per_layer", "per_leaf"])
def test_hessian_free_state_is_adamw_plus_trace_plus_block_scalars(blocks, meta, per_block):
  params = tiny_params()
  num_blocks = {
    "scalar": 1,
    # Leaves under one parent share a block: attention, mlp/up, mlp/down, norm per layer.
    "per_layer": 4 * len(params),
    "per_leaf": len(jax.tree.leaves(params)),
  }[blocks]
  tx = mo.adamw(1e-3, meta=meta, blocks=blocks)
  n = counters(tx, params)
  assert n >= 2  # The base's and the meta optimizer's step counts.
  # A log learning rate and the meta optimizer's moments per block.
  scalars = num_blocks * (1 + per_block) * F32 + 4 * (n - 1)
  expected = adamw_bytes(params) + leaves_bytes(params) + scalars
  assert memory.state_bytes(tx, params) == expected
  assert memory.extra_text(expected - adamw_bytes(params), leaves_bytes(params)) == (
    f"+1P {scalars:+,d} B"
  )


@pytest.mark.parametrize("meta, per_block", [("lion", 1), ("adam", 2)])
def test_per_weight_state(meta, per_block):
  params = tiny_params()
  p = leaves_bytes(params)
  tx = mo.adamw(1e-3, meta=meta, blocks="per_weight")
  # Trace, log learning rates and meta moments are all params-sized.
  expected = adamw_bytes(params) + (2 + per_block) * p + 4 * (counters(tx, params) - 1)
  assert memory.state_bytes(tx, params) == expected


def test_hvp_state_has_a_column_per_block():
  params = {"a": {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}, "c": {"w": jnp.ones((4, 2))}}
  p = leaves_bytes(params)
  tx = mo.adamw(1e-3, blocks="per_layer", hessian="hvp")
  # Two blocks; per block a weight column and a column per Adam moment; Lion meta.
  expected = adamw_bytes(params) + 2 * 3 * p + 2 * 2 * F32 + 4 * (counters(tx, params) - 1)
  assert memory.state_bytes(tx, params) == expected


def test_state_bytes_allocates_nothing():
  params = jax.eval_shape(lambda: trees_lib.synthetic_params(TINY))
  assert memory.state_bytes(mo.adamw(1e-3), params) > 0


@pytest.mark.parametrize(
  "extra, text",
  [
    (0, "+0 B"),
    (12, "+12 B"),
    (1000, "+1P"),
    (1012, "+1P +12 B"),
    (2996, "+3P -4 B"),
    (-995, "-1P +5 B"),
  ],
)
def test_extra_text(extra, text):
  assert memory.extra_text(extra, 1000) == text


# ----------------------------------------------------------------------------
# Timing.


class FakeStepper:
  """Seconds per step from a list, one per call."""

  def __init__(self, seconds):
    self.seconds = list(seconds)
    self.calls = []

  def __call__(self, n):
    self.calls.append(n)
    return self.seconds.pop(0)


def test_time_alternately_divides_by_the_baseline_around_each_measurement():
  # Two calibration calls each; then per round: base, cand, base.
  base = FakeStepper([1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 2.0, 2.0])
  cand = FakeStepper([1.0, 1.0, 4.0, 2.0, 3.0])
  out = timing.time_alternately({"base": base, "cand": cand}, "base", rounds=3, min_seconds=1e-9)
  assert out["base"].ratios == (1.0, 1.0, 1.0)
  assert out["base"].seconds == (1.0, 3.0, 1.0, 1.0, 2.0, 2.0)
  assert out["cand"].ratios == (2.0, 2.0, 1.5)
  assert out["cand"].ratio == 2.0
  assert out["cand"].median_seconds == 3.0
  assert base.calls == [1] * 8 and not base.seconds and not cand.seconds


def test_time_alternately_reverses_the_order_every_other_round():
  order = []

  def stepper(name):
    def run(n):
      order.append(name)
      return 1.0

    return run

  steppers = {name: stepper(name) for name in ("b", "x", "y")}
  timing.time_alternately(steppers, "b", rounds=2, min_seconds=1e-9)
  assert order[6:] == ["b", "x", "b", "y", "b", "b", "y", "b", "x", "b"]


def test_time_alternately_rejects_a_missing_baseline():
  with pytest.raises(ValueError, match="baseline"):
    timing.time_alternately({"a": FakeStepper([])}, "b", rounds=1, min_seconds=0.1)


def test_pack_keeps_the_baseline_in_every_group():
  sizes = {"base": 4, "a": 3, "b": 3, "c": 9, "d": 1}
  groups = timing.pack(sizes, "base", budget=10)
  assert groups == [["base", "a", "b"], ["base", "c"], ["base", "d"]]
  assert timing.pack({"base": 1, "a": 1}, "base", budget=100) == [["base", "a"]]


def test_stepper_donates_and_carries():
  step = jax.jit(lambda x, y: (x + y,), donate_argnums=0)
  s = timing.Stepper(step, (jnp.zeros(3),), (jnp.ones(3),))
  assert s(4) > 0
  np.testing.assert_array_equal(s.carry[0], 4 * np.ones(3))


# ----------------------------------------------------------------------------
# Suites and the table.

ROW_KEYS = {
  "section",
  "setting",
  "donated",
  "dtype",
  "optimizer",
  "registry",
  "ms_per_step",
  "ratio",
  "ratio_q1",
  "ratio_q3",
  "ratios",
  "state_bytes",
  "state_ratio",
  "extra_state_bytes",
  "extra_state",
  "params_bytes",
  "xla_bytes",
  "xla_flops",
  "xla_bytes_ratio",
  "xla_flops_ratio",
  "compile_seconds",
  "target",
  "met",
}


def check_rows(rows, candidates, section):
  assert [r["optimizer"] for r in rows] == [c.label for c in candidates]
  for r in rows:
    assert set(r) == ROW_KEYS
    assert r["section"] == section
    assert r["donated"] == (section != "update_undonated")
    assert r["ms_per_step"] > 0 and r["ratio"] > 0
    assert r["ratio_q1"] <= r["ratio"] <= r["ratio_q3"]
    assert r["xla_bytes"] > 0 and r["xla_bytes_ratio"] > 0
    assert r["compile_seconds"] > 0
  base = rows[0]
  assert base["ratios"] == [1.0] * len(base["ratios"]) and base["state_ratio"] == 1.0
  assert base["xla_bytes_ratio"] == 1.0
  assert base["extra_state"] == "+0 B"


def test_update_suite_groups_under_a_memory_budget():
  cands = suites.UPDATE_CANDIDATES[:2]
  rows = suites.update_suite(TINY, cands, rounds=2, min_seconds=1e-3, memory_budget=1)
  check_rows(rows, cands, "update")


def test_update_suite_times_every_peer():
  cands = (suites.ADAMW, *suites.PEERS)
  assert {c.name for c in suites.PEERS} == {
    "prodigy",
    "mechanic",
    "cocob",
    "dowg",
    "momo_adam",
    "schedule_free_adamw",
    "dog",
  }
  rows = suites.update_suite(TINY, cands, rounds=1, min_seconds=1e-3)
  check_rows(rows, cands, "update")


def test_update_suite_without_donation_and_in_bfloat16():
  cands = suites.BF16_CANDIDATES
  rows = suites.update_suite(
    TINY, cands, rounds=1, min_seconds=1e-3, dtype=jnp.bfloat16, donate=False
  )
  check_rows(rows, cands, "update_undonated")
  assert {r["dtype"] for r in rows} == {"bfloat16"} and " bfloat16 in " in rows[0]["setting"]
  params = trees_lib.synthetic_params(TINY, dtype=jnp.bfloat16)
  p = leaves_bytes(params)
  own, wide = rows[1], rows[2]
  assert own["extra_state"].startswith("+1P") and own["target"] is None
  # A float32 trace of bfloat16 params is two params-sized units.
  assert wide["extra_state_bytes"] - own["extra_state_bytes"] == p
  assert "float32 trace" in wide["optimizer"]


def test_meta_parameter_candidates_state():
  params = tiny_params()
  p = leaves_bytes(params)
  labels = [c.label for c in suites.META_PARAMETER_CANDIDATES]
  assert [label.split(" learning ")[1] for label in labels] == [
    "b2",
    "weight_decay",
    "b1, b2, weight_decay",
  ]
  base = memory.state_bytes(suites.build(suites.UPDATE_CANDIDATES[1]).tx, params)
  extra = [
    memory.state_bytes(suites.build(c).tx, params) - base for c in suites.META_PARAMETER_CANDIDATES
  ]
  # Per learned name: a weight tangent and one tangent per Adam moment (3P), plus scalars.
  assert [round(e / p) for e in extra] == [3, 3, 9]


def test_step_suite_rows(workload):
  mo_candidate = suites.metaoptimize_candidate
  cands = (
    suites.ADAMW,
    mo_candidate("scalar", "lion"),
    mo_candidate("scalar", "lion", "hvp"),
    suites.PEERS[0],
  )
  rows = suites.step_suite(workload, cands, rounds=2, min_seconds=1e-3)
  check_rows(rows, cands, "step")
  assert rows[0]["setting"].startswith("tiny_classifier")
  assert rows[1]["extra_state"].startswith("+1P")


def test_step_candidates_and_targets():
  charlm = {c.label: c for c in suites.step_candidates("charlm")}
  other = {c.label: c for c in suites.step_candidates("mnist1d_mlp")}
  assert list(charlm)[0] == suites.BASELINE
  for peer in ("Prodigy", "Mechanic", "COCOB", "DoWG", "MoMo-Adam", "DoG", "Schedule-free AdamW"):
    assert peer in charlm
  # The stream call and its per-weight form, beside AdamW and COCOB (issue 22).
  assert charlm["mo.recommended(blocks='per_weight') (stream)"].params["blocks"] == "per_weight"
  assert "mo.recommended() (stream call)" in charlm
  assert charlm["MetaOptimize free scalar (Lion meta)"].target == 1.05
  assert other["MetaOptimize free scalar (Lion meta)"].target is None
  assert charlm["MetaOptimize hvp per_layer (Lion meta)"].target == 3.0
  for c in charlm.values():
    assert suites.build(c).tx is not None


def test_suites_need_the_baseline_first():
  with pytest.raises(ValueError, match="baseline"):
    suites.update_suite(TINY, suites.UPDATE_CANDIDATES[1:], rounds=1, min_seconds=1e-3)


def fake_row(section, optimizer, ratio, target=None):
  return {
    "section": section,
    "setting": "s",
    "optimizer": optimizer,
    "ms_per_step": 1.5,
    "ratio": ratio,
    "ratio_q1": ratio,
    "ratio_q3": ratio,
    "xla_bytes_ratio": 2.2,
    "xla_flops_ratio": 1.0,
    "state_bytes": 2_000_000,
    "state_ratio": 1.5,
    "extra_state": "+1P +12 B",
    "compile_seconds": 0.25,
    "target": target,
    "met": None if target is None else ratio <= target,
  }


def test_markdown_table_structure():
  rows = [
    fake_row("update", "AdamW", 1.0),
    fake_row("update", "MO", 1.25, 1.3),
    fake_row("step", "AdamW", 1.0),
    fake_row("step", "MO", 1.1, 1.05),
  ]
  text = table.markdown_table(rows)
  sections = text.split("\n\n### ")
  assert len(sections) == 2 and text.startswith("### ")
  for section in sections:
    lines = section.splitlines()
    assert lines[1] == ""
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == list(table.COLUMNS)
    assert set(lines[3]) == {"|", "-"}
    assert len(lines) == 6
    assert len({len(line) for line in lines[2:]}) == 1  # Aligned.
  assert "<= 1.30 met" in text and "<= 1.05 MISSED" in text


@pytest.mark.parametrize(
  "value, text",
  [
    (0.0608, "0.0608"),
    (12.53, "12.5"),
    (1206.4, "1,206"),
    (6250.0, "6,250"),
    (0.5, "0.500"),
    (0.0, "0"),
  ],
)
def test_number(value, text):
  assert table.number(value) == text


# ----------------------------------------------------------------------------
# The command.


def test_parse_size():
  assert [command.parse_size(s) for s in ("1M", "10m", "500k", "1e6", "2000")] == [
    1_000_000,
    10_000_000,
    500_000,
    1_000_000,
    2000,
  ]
  with pytest.raises(argparse.ArgumentTypeError):
    command.parse_size("big")


def small_default_suite(monkeypatch):
  """The default suite's candidate lists cut down (MoMo kept: it takes value=)."""
  update = (*suites.UPDATE_CANDIDATES[:3], suites.PEERS[4])
  monkeypatch.setattr(suites, "UPDATE_CANDIDATES", update)
  monkeypatch.setattr(suites, "META_PARAMETER_CANDIDATES", suites.META_PARAMETER_CANDIDATES[:1])
  monkeypatch.setattr(suites, "UNDONATED_CANDIDATES", suites.UPDATE_CANDIDATES[:2])
  monkeypatch.setattr(suites, "BF16_CANDIDATES", suites.BF16_CANDIDATES[::2])
  return update


@pytest.mark.slow  # 20-60 s; the update and step suites run by default.
def test_main_bench_prints_and_writes(tmp_path, capsys, monkeypatch):
  update = small_default_suite(monkeypatch)
  status = command.main_bench(
    [
      "--sizes",
      "20k",
      "--workloads",
      "none",
      "--rounds",
      "2",
      "--min-seconds",
      "0.001",
      "--output-dir",
      str(tmp_path),
    ]
  )
  assert status == 0
  out = capsys.readouterr().out
  assert "### Optimizer update alone" in out and "Whole train step" not in out
  assert "### Optimizer update alone, not donated" in out
  data = json.loads((tmp_path / "bench.json").read_text())
  assert set(data) == {"environment", "settings", "rows"}
  assert data["settings"]["sizes"] == [20_000] and data["settings"]["rounds"] == 2
  rows = data["rows"]
  donated = [r for r in rows if r["section"] == "update" and r["dtype"] == "float32"]
  check_rows(donated, (*update, *suites.META_PARAMETER_CANDIDATES), "update")
  check_rows(
    [r for r in rows if r["section"] == "update_undonated"],
    suites.UNDONATED_CANDIDATES,
    "update_undonated",
  )
  check_rows([r for r in rows if r["dtype"] == "bfloat16"], suites.BF16_CANDIDATES, "update")
  scalar = donated[1]
  params = tiny_params()
  assert scalar["optimizer"] == "MetaOptimize free scalar (Lion meta)"
  assert scalar["params_bytes"] == leaves_bytes(params)
  tx = suites.build(suites.UPDATE_CANDIDATES[1]).tx
  # The trace, beta, Lion's moment and the step counts beyond AdamW's.
  assert scalar["extra_state_bytes"] == leaves_bytes(params) + 8 + 4 * (counters(tx, params) - 1)
  assert scalar["target"] == 1.3 and isinstance(scalar["met"], bool)
  assert scalar["setting"].endswith(f"in {len(jax.tree.leaves(params))} leaves")
  md = (tmp_path / "bench.md").read_text()
  assert (
    md.startswith("# metaoptimize-optax benchmarks") and table.markdown_table(data["rows"]) in md
  )


def test_write_keeps_hand_written_sections(tmp_path):
  rows = [fake_row("update", "AdamW", 1.0), fake_row("update", "MO", 1.25, 1.3)]
  settings, env = {"rounds": 1, "min_seconds": 0.1}, {k: "x" for k in table.environment()}
  md, _ = table.write(tmp_path, rows, settings, env)
  assert not [line for line in md.read_text().splitlines() if line.startswith("## ")]
  md.write_text(md.read_text() + "\n## Profile\n\nnotes\n")
  table.write(tmp_path, rows[:1], settings, env)
  text = md.read_text()
  assert text.startswith(table.markdown(rows[:1], settings, env))
  assert text.endswith("\n## Profile\n\nnotes\n") and text.count("## Profile") == 1


def test_undonated_candidates_are_the_targets_and_schedule_free():
  labels = [c.label for c in suites.UNDONATED_CANDIDATES]
  assert labels[0] == suites.BASELINE and labels[-1] == "Schedule-free AdamW"
  assert all(c.target == 1.3 for c in suites.UNDONATED_CANDIDATES[1:-1])
  assert len(labels) == 6


# ----------------------------------------------------------------------------
# The device suite, at tiny sizes.


def test_device_sizes_and_model():
  from metaoptimize_optax.experiments.benchmarks import device

  assert device.scaled_sizes(1.0) == (10_000_000, 100_000_000, 1_000_000_000)
  assert device.scaled_model(1.0) == device.MODEL
  tiny = device.scaled_model(1e-5)
  assert tiny["dim"] == 32 and tiny["n_layers"] == 2 and tiny["batch_size"] == 2


def test_device_model_is_about_100m_parameters():
  from metaoptimize_optax.experiments.benchmarks import device
  from metaoptimize_optax.experiments.workloads import get_workload

  workload = get_workload("charlm", **device.MODEL)
  params, _ = jax.eval_shape(workload.init, jax.random.PRNGKey(0))
  assert 90e6 <= trees_lib.count(params) <= 115e6


def check_device_output(tmp_path, update, step, dtypes):
  data = json.loads((tmp_path / "bench.json").read_text())
  assert data["settings"]["suite"] == "device" and data["settings"]["scale"] == 1e-5
  rows = data["rows"]
  updates = [r for r in rows if r["section"] == "update"]
  assert len(updates) == 3 * len(dtypes) * len(update)
  for i in range(0, len(updates), len(update)):
    check_rows(updates[i : i + len(update)], update, "update")
  assert [r["dtype"] for r in updates[:: len(update)]] == list(dtypes) * 3
  steps = [r for r in rows if r["section"] == "step"]
  check_rows(steps, step, "step")
  assert steps[0]["setting"].startswith("transformer d32 x2 on charlm text")
  md = (tmp_path / "bench.md").read_text()
  assert table.markdown_table(rows) in md and "### Whole train step" in md


@pytest.mark.slow  # 20-60 s; the update and step suites run by default.
def test_device_suite_at_tiny_sizes(tmp_path, capsys, monkeypatch):
  from metaoptimize_optax.experiments.benchmarks import device

  update = device.UPDATE_CANDIDATES[:2]
  step = (*device.STEP_CANDIDATES[:2], device.STEP_CANDIDATES[3])
  monkeypatch.setattr(device, "UPDATE_CANDIDATES", update)
  monkeypatch.setattr(device, "STEP_CANDIDATES", step)
  status = command.main_bench(
    [
      "--suite",
      "device",
      "--scale",
      "1e-5",
      "--rounds",
      "1",
      "--min-seconds",
      "0.001",
      "--output-dir",
      str(tmp_path),
    ]
  )
  assert status == 0
  assert "### Optimizer update alone" in capsys.readouterr().out
  check_device_output(tmp_path, update, step, device.DTYPES)


@pytest.mark.slow
def test_device_suite_at_tiny_sizes_with_every_candidate(tmp_path):
  from metaoptimize_optax.experiments.benchmarks import device

  assert (
    command.main_bench(
      [
        "--suite",
        "device",
        "--scale",
        "1e-5",
        "--rounds",
        "1",
        "--min-seconds",
        "0.001",
        "--output-dir",
        str(tmp_path),
      ]
    )
    == 0
  )
  check_device_output(tmp_path, device.UPDATE_CANDIDATES, device.STEP_CANDIDATES, device.DTYPES)


def test_device_suite_refuses_sizes(tmp_path, capsys):
  assert (
    command.main_bench(["--suite", "device", "--sizes", "1M", "--output-dir", str(tmp_path)]) == 2
  )
  assert "--scale" in capsys.readouterr().err


@pytest.mark.parametrize(
  "args, message", [(["--rounds", "0"], "--rounds"), (["--workloads", "nope"], "unknown nope")]
)
def test_main_bench_rejects_bad_options(args, message, tmp_path, capsys):
  assert command.main_bench([*args, "--sizes", "none", "--output-dir", str(tmp_path)]) == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "bench.json").exists()


def test_quick_and_full_settings():
  parser = argparse.ArgumentParser()
  command.add_arguments(parser)
  quick = command.settings_of(parser.parse_args(["--quick"]))
  full = command.settings_of(parser.parse_args(["--rounds", "5"]))
  assert quick["sizes"] == (1_000_000,) and quick["quick"]
  assert full["sizes"] == (1_000_000, 10_000_000, 50_000_000) and full["rounds"] == 5
  assert quick["workloads"] == full["workloads"] == ("mnist1d_mlp", "charlm")
  assert full["suite"] == "default" and full["memory_budget_gb"] == 3.0
  device = command.settings_of(parser.parse_args(["--suite", "device", "--scale", "0.5"]))
  assert device["sizes"] == (5_000_000, 50_000_000, 500_000_000)
  assert device["memory_budget_gb"] == 64


def test_cli_has_the_bench_command(tmp_path, capsys):
  from metaoptimize_optax.experiments import cli

  assert cli.main(["bench", "--rounds", "0", "--output-dir", str(tmp_path)]) == 2
  assert "--rounds must be at least 1" in capsys.readouterr().err
