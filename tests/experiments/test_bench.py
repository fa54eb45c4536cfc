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
from metaoptimize_optax.experiments.benchmarks import command, memory, report, suites, timing
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
      "999", "1.5k", "1.04M", "50M"]


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
      f"+1P {scalars:+,d} B")


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


@pytest.mark.parametrize("extra, text", [
    (0, "+0 B"), (12, "+12 B"), (1000, "+1P"), (1012, "+1P +12 B"), (2996, "+3P -4 B"),
    (-995, "-1P +5 B")])
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
  out = timing.time_alternately({"base": base, "cand": cand}, "base", rounds=3,
                                min_seconds=1e-9)
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

ROW_KEYS = {"section", "setting", "optimizer", "registry", "ms_per_step", "ratio", "ratio_q1",
            "ratio_q3", "ratios", "state_bytes", "state_ratio", "extra_state_bytes",
            "extra_state", "params_bytes", "xla_bytes", "xla_flops", "xla_bytes_ratio",
            "xla_flops_ratio", "target", "met"}


def check_rows(rows, candidates, section):
  assert [r["optimizer"] for r in rows] == [c.label for c in candidates]
  for r in rows:
    assert set(r) == ROW_KEYS
    assert r["section"] == section
    assert r["ms_per_step"] > 0 and r["ratio"] > 0
    assert r["ratio_q1"] <= r["ratio"] <= r["ratio_q3"]
    assert r["xla_bytes"] > 0 and r["xla_bytes_ratio"] > 0
  base = rows[0]
  assert base["ratios"] == [1.0] * len(base["ratios"]) and base["state_ratio"] == 1.0
  assert base["xla_bytes_ratio"] == 1.0
  assert base["extra_state"] == "+0 B"


def test_update_suite_groups_under_a_memory_budget():
  cands = suites.UPDATE_CANDIDATES[:2]
  rows = suites.update_suite(TINY, cands, rounds=2, min_seconds=1e-3, memory_budget=1)
  check_rows(rows, cands, "update")


def test_step_suite_rows(workload):
  mo_candidate = suites.metaoptimize_candidate
  cands = (suites.ADAMW, mo_candidate("scalar", "lion"), mo_candidate("scalar", "lion", "hvp"),
           suites.PEERS[0])
  rows = suites.step_suite(workload, cands, rounds=2, min_seconds=1e-3)
  check_rows(rows, cands, "step")
  assert rows[0]["setting"].startswith("tiny_classifier")
  assert rows[1]["extra_state"].startswith("+1P")


def test_step_candidates_and_targets():
  charlm = {c.label: c for c in suites.step_candidates("charlm")}
  other = {c.label: c for c in suites.step_candidates("mnist1d_mlp")}
  assert list(charlm)[0] == suites.BASELINE
  for peer in ("Prodigy", "Mechanic", "DoG", "Schedule-free AdamW"):
    assert peer in charlm
  assert charlm["MetaOptimize free scalar (Lion meta)"].target == 1.05
  assert other["MetaOptimize free scalar (Lion meta)"].target is None
  assert charlm["MetaOptimize hvp per_layer (Lion meta)"].target == 3.0
  for c in charlm.values():
    assert suites.build(c).tx is not None


def test_suites_need_the_baseline_first():
  with pytest.raises(ValueError, match="baseline"):
    suites.update_suite(TINY, suites.UPDATE_CANDIDATES[1:], rounds=1, min_seconds=1e-3)


def fake_row(section, optimizer, ratio, target=None):
  return {"section": section, "setting": "s", "optimizer": optimizer, "ms_per_step": 1.5,
          "ratio": ratio, "ratio_q1": ratio, "ratio_q3": ratio, "xla_bytes_ratio": 2.2,
          "xla_flops_ratio": 1.0, "state_bytes": 2_000_000,
          "state_ratio": 1.5, "extra_state": "+1P +12 B", "target": target,
          "met": None if target is None else ratio <= target}


def test_markdown_table_structure():
  rows = [fake_row("update", "AdamW", 1.0), fake_row("update", "MO", 1.25, 1.3),
          fake_row("step", "AdamW", 1.0), fake_row("step", "MO", 1.1, 1.05)]
  text = report.markdown_table(rows)
  sections = text.split("\n\n### ")
  assert len(sections) == 2 and text.startswith("### ")
  for section in sections:
    lines = section.splitlines()
    assert lines[1] == ""
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == list(report.COLUMNS)
    assert set(lines[3]) == {"|", "-"}
    assert len(lines) == 6
    assert len({len(line) for line in lines[2:]}) == 1  # Aligned.
  assert "<= 1.30 met" in text and "<= 1.05 MISSED" in text


@pytest.mark.parametrize("value, text", [
    (0.0608, "0.0608"), (12.53, "12.5"), (1206.4, "1,206"), (6250.0, "6,250"), (0.5, "0.500"),
    (0.0, "0")])
def test_number(value, text):
  assert report.number(value) == text


# ----------------------------------------------------------------------------
# The command.


def test_parse_size():
  assert [command.parse_size(s) for s in ("1M", "10m", "500k", "1e6", "2000")] == [
      1_000_000, 10_000_000, 500_000, 1_000_000, 2000]
  with pytest.raises(argparse.ArgumentTypeError):
    command.parse_size("big")


def test_main_bench_prints_and_writes(tmp_path, capsys):
  status = command.main_bench(["--sizes", "20k", "--workloads", "none", "--rounds", "2",
                               "--min-seconds", "0.001", "--output-dir", str(tmp_path)])
  assert status == 0
  out = capsys.readouterr().out
  assert "### Optimizer update alone" in out and "Whole train step" not in out
  data = json.loads((tmp_path / "bench.json").read_text())
  assert set(data) == {"environment", "settings", "rows"}
  assert data["settings"]["sizes"] == [20_000] and data["settings"]["rounds"] == 2
  check_rows(data["rows"], suites.UPDATE_CANDIDATES, "update")
  scalar = data["rows"][1]
  params = tiny_params()
  assert scalar["optimizer"] == "MetaOptimize free scalar (Lion meta)"
  assert scalar["params_bytes"] == leaves_bytes(params)
  tx = suites.build(suites.UPDATE_CANDIDATES[1]).tx
  # The trace, beta, Lion's moment and the step counts beyond AdamW's.
  assert scalar["extra_state_bytes"] == leaves_bytes(params) + 8 + 4 * (counters(tx, params) - 1)
  assert scalar["target"] == 1.3 and isinstance(scalar["met"], bool)
  assert scalar["setting"].endswith(f"in {len(jax.tree.leaves(params))} leaves")
  md = (tmp_path / "bench.md").read_text()
  assert md.startswith("# metaoptimize-optax benchmarks") and report.markdown_table(
      data["rows"]) in md


@pytest.mark.parametrize("args, message", [
    (["--rounds", "0"], "--rounds"), (["--workloads", "nope"], "unknown nope")])
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


def test_cli_has_the_bench_command(tmp_path, capsys):
  from metaoptimize_optax.experiments import cli

  assert cli.main(["bench", "--rounds", "0", "--output-dir", str(tmp_path)]) == 2
  assert "--rounds must be at least 1" in capsys.readouterr().err
