"""Reports from a results directory: grid selection, table, plots."""

import json

import pytest
import yaml

from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments import plots, results
from metaoptimize_optax.experiments import summary as summary_lib


def _write_run(out, opt, point, seed, losses, lr=None, diverged_at=None, test_loss=1.0):
  directory = results.run_dir(out, opt, point, seed)
  directory.mkdir(parents=True)
  with (directory / results.METRICS_FILE).open("w") as f:
    results.write_record(f, {"event": "start", "seed": seed})
    for i, loss in enumerate(losses):
      rates = {"all": 1e-3 * (i + 1)} if lr is None else lr
      results.write_record(
        f,
        {
          "event": "train",
          "step": 10 * (i + 1),
          "loss": loss,
          "accuracy": 0.5,
          "learning_rate": rates,
          "step_time": None if i == 0 else 0.002,
        },
      )
    if diverged_at is not None:
      results.write_record(f, {"event": "diverged", "step": diverged_at, "reason": "nan"})
      results.write_record(f, {"event": "end", "status": "diverged", "step": diverged_at})
      return
    results.write_record(
      f,
      {
        "event": "eval",
        "step": 10 * len(losses),
        "test_loss": test_loss + seed,
        "test_accuracy": 0.25,
      },
    )
    results.write_record(f, {"event": "end", "status": "finished", "step": 10 * len(losses)})


@pytest.fixture
def results_dir(tmp_path):
  raw = {
    "workload": {"name": "noisy_quadratic"},
    "steps": 30,
    "seeds": [0, 1],
    "log_every": 10,
    "output_dir": str(tmp_path),
    "target_loss": 0.5,
    "optimizers": {
      "MO": {"name": "metaoptimize", "blocks": "per_layer"},
      "AdamW": {"name": "adamw", "grid": {"learning_rate": [1e-3, 1e-2, 1e-1]}},
      "Bad": {"name": "lion"},
    },
  }
  config = config_lib.from_dict(raw)
  (tmp_path / results.CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
  mo, adamw, bad = config.optimizers
  for seed in (0, 1):
    _write_run(
      tmp_path,
      mo,
      mo.points()[0],
      seed,
      [2.0, 0.6, 0.4],
      lr={"layer1": 1e-3 * (seed + 1), "layer2": 2e-3},
    )
    lo, mid, hi = adamw.points()
    _write_run(tmp_path, adamw, lo, seed, [2.0, 1.0, 0.9])
    _write_run(tmp_path, adamw, mid, seed, [2.0, 0.3, 0.2 + 0.1 * seed])
    _write_run(tmp_path, adamw, hi, seed, [2.0, 0.1], diverged_at=25 if seed else None)
    _write_run(tmp_path, bad, bad.points()[0], seed, [5.0], diverged_at=12)
  return tmp_path


def test_grid_keeps_the_best_finished_point(results_dir):
  found = results.load_results(results_dir)
  adamw = found.optimizers[1]
  # 1e-1 reached the lowest loss on seed 0 but diverged on seed 1: it scores infinite.
  assert adamw.chosen.point.label == "learning_rate=0.01"
  summary = summary_lib.summarize(found)
  row = summary["optimizers"][1]
  assert row["grid"]["best"] == "learning_rate=0.01"
  assert [p["final_train_loss"] for p in row["grid"]["points"]] == pytest.approx([0.9, 0.25, None])
  assert row["metrics"]["train_loss"] == pytest.approx({"mean": 0.25, "std": 0.05, "n": 2})
  assert row["metrics"]["test_loss"]["mean"] == pytest.approx(1.5)
  assert row["steps_to_target"] == {"reached": 2, "of": 2, "mean": 20.0, "std": 0.0, "n": 2}
  assert row["step_time"]["mean"] == pytest.approx(0.002)


def test_table(results_dir):
  table = summary_lib.table(summary_lib.write_summary(results_dir))
  lines = table.splitlines()
  # Without a recorded primary metric (results from before it was), the final training loss
  # ranks; the online means (step-weighted over the train records) stand beside it.
  assert lines[0] == (
    "| Optimizer | rank | train loss (primary) | online loss | test loss "
    "| online accuracy | train accuracy | test accuracy "
    "| steps to loss ≤ 0.5 | ms / step | notes |"
  )
  mo_row, adamw_row, bad_row = lines[2:]
  assert mo_row.startswith(
    "| MO | 2 | 0.4 ± 0 | 1 ± 0 | 1.5 ± 0.5 | 0.5 ± 0 | 0.5 ± 0 | 0.25 ± 0 | 30 | 2 ± 0 |"
  )
  assert adamw_row.startswith("| AdamW | 1 | 0.25 ± 0.05 |")
  assert (
    "tuned: learning_rate ∈ {0.001, 0.01, 0.1}; best learning_rate=0.01 by final training loss"
  ) in adamw_row
  assert bad_row.startswith(
    "| Bad | — | diverged | diverged | diverged | diverged | diverged | diverged | not reached |"
  )
  assert "diverged in 2/2 seeds (step 12, 12)" in bad_row
  md = (results_dir / "summary.md").read_text()
  assert table in md and "Grid of AdamW" in md and "learning_rate=0.01: 0.25  ← best" in md
  data = json.loads((results_dir / "summary.json").read_text())
  assert [r["optimizer"] for r in data["optimizers"]] == ["MO", "AdamW", "Bad"]
  # The file format, pinned: a rename of a key is a change of the format.
  assert set(data) == SUMMARY_KEYS
  assert set(data["optimizers"][0]) == SUMMARY_ROW_KEYS
  assert set(data["optimizers"][1]) == SUMMARY_ROW_KEYS | {"grid"}
  assert set(data["optimizers"][0]["online_curve"]) == {"step", "loss", "accuracy"}


SUMMARY_KEYS = {
  "workload", "steps", "seeds", "target_loss", "primary_metric", "selected_by", "optimizers",
}  # fmt: skip
SUMMARY_ROW_KEYS = {
  "optimizer", "name", "params", "metaoptimize", "seeds", "finished", "metrics", "step_time",
  "diverged", "incomplete", "online_curve", "meta_parameters", "steps_to_target", "rank",
}  # fmt: skip


def test_plots_hold_every_optimizer(results_dir):
  found = results.load_results(results_dir)
  fig = plots.loss_figure(found)
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert labels == ["MO", "AdamW (learning_rate=0.01)", "Bad"]
  assert fig.axes[0].get_yscale() == "log"
  assert len(fig.axes) == 2  # training loss and test loss
  # A curve of few points (these short runs' logs and evaluations) shows them as markers.
  assert all(line.get_marker() == "o" for ax in fig.axes for line in ax.get_lines()[:1])

  fig = plots.learning_rate_figure(found)
  visible = [ax for ax in fig.axes if ax.get_visible()]
  mo_ax, peers_ax = visible
  assert mo_ax.get_yscale() == "log"
  assert [t.get_text() for t in mo_ax.get_legend().get_texts()] == ["layer1", "layer2"]
  assert len(mo_ax.get_lines()) == 4  # two blocks x two seeds
  assert [t.get_text() for t in peers_ax.get_legend().get_texts()] == [
    "AdamW (learning_rate=0.01)",
    "Bad",
  ]


def test_columns_come_from_what_the_runs_recorded():
  """A workload's own metric reaches the table; the primary metric and train loss lead."""
  metrics = {
    k: {"mean": 1.0, "std": 0.0, "n": 1}
    for k in ("test_loss", "online_loss", "train_loss", "test_perplexity", "train_accuracy")
  }
  summary = {"optimizers": [{"metrics": metrics}], "primary_metric": "test_perplexity"}
  assert summary_lib._columns(summary) == [
    "test_perplexity",
    "train_loss",
    "online_loss",
    "test_loss",
    "train_accuracy",
  ]
