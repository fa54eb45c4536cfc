"""The cross-workload report: quality tables, learning-rate figure, robustness sweep."""

import dataclasses
import json

import pytest
import yaml

from metaoptimize_optax.experiments import cli, results
from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments.report import loading, robustness

CONFIGS = config_lib.BUILTIN_DIR
PNG = b"\x89PNG\r\n\x1a\n"


def _write_run(out, opt, point, seed, losses, *, rate=1e-3, evals=None, end="finished"):
  """One run's metrics.jsonl: train records of ``losses``, then ``evals`` and ``end``."""
  directory = results.run_dir(out, opt, point, seed)
  directory.mkdir(parents=True)
  rates = rate if isinstance(rate, dict) else {"all": rate}
  step = 10 * len(losses)
  with (directory / results.METRICS_FILE).open("w") as f:
    results.write_record(f, {"event": "start", "seed": seed})
    for i, loss in enumerate(losses):
      results.write_record(
        f,
        {
          "event": "train",
          "step": 10 * (i + 1),
          "loss": loss,
          "learning_rate": {k: v * (i + 1) for k, v in rates.items()},
          "step_time": 0.001,
        },
      )
    if end == "diverged":
      results.write_record(f, {"event": "diverged", "step": step, "reason": "nan"})
      results.write_record(f, {"event": "end", "status": "diverged", "step": step})
      return
    if evals:
      results.write_record(f, {"event": "eval", "step": step, **evals})
    if end == "finished":
      results.write_record(f, {"event": "end", "status": "finished", "step": step})


def _results_dir(path, config):
  path.mkdir()
  config = dataclasses.replace(config, output_dir=str(path))
  (path / results.CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
  return config, {o.display_name: o for o in config.optimizers}


def _config(workload, optimizers):
  return config_lib.from_dict(
    {"workload": {"name": workload}, "steps": 30, "seeds": [0, 1], "optimizers": optimizers}
  )


@pytest.fixture
def quadratic(tmp_path):
  """No held-out split: the report uses the train loss; no accuracy."""
  _, opts = _results_dir(
    tmp_path / "quad",
    _config(
      "noisy_quadratic",
      {
        "MO": {"name": "metaoptimize", "blocks": "per_layer"},
        "AdamW": {"name": "adamw", "grid": {"learning_rate": [1e-3, 1e-2]}},
        "Bad": {"name": "lion"},
        "Half": {"name": "sgdm"},
      },
    ),
  )
  mo, adamw, bad, half = opts.values()
  lo, hi = adamw.points()
  for seed in (0, 1):
    _write_run(
      tmp_path / "quad",
      mo,
      mo.points()[0],
      seed,
      [2.0, 0.5 + 0.2 * seed],
      rate={"layer1": 1e-3, "layer2": 4e-3},
    )
    _write_run(tmp_path / "quad", adamw, lo, seed, [2.0, 0.9])
    _write_run(tmp_path / "quad", adamw, hi, seed, [2.0, 0.4 + 0.2 * seed])
    _write_run(tmp_path / "quad", bad, bad.points()[0], seed, [5.0], end="diverged")
    _write_run(
      tmp_path / "quad",
      half,
      half.points()[0],
      seed,
      [1.0, 0.3],
      end="finished" if seed == 0 else "incomplete",
    )
  return tmp_path / "quad"


@pytest.fixture
def mlp(tmp_path):
  """A test split with accuracy; optimizers in another order, one new and unfinished."""
  _, opts = _results_dir(
    tmp_path / "mlp",
    _config(
      "mnist1d_mlp",
      {
        "AdamW": {"name": "adamw", "learning_rate": 1e-3},
        "MO": {"name": "metaoptimize"},
        "Prodigy": {"name": "prodigy"},
      },
    ),
  )
  adamw, mo, prodigy = opts.values()
  for seed in (0, 1):
    _write_run(
      tmp_path / "mlp",
      adamw,
      adamw.points()[0],
      seed,
      [2.0, 1.0],
      evals={"test_loss": 1.0 + 0.2 * seed, "test_accuracy": 0.6 + 0.1 * seed},
    )
    _write_run(
      tmp_path / "mlp",
      mo,
      mo.points()[0],
      seed,
      [2.0, 0.7],
      evals={"test_loss": 0.8, "test_accuracy": 0.7},
    )
    _write_run(tmp_path / "mlp", prodigy, prodigy.points()[0], seed, [2.0], end="incomplete")
  return tmp_path / "mlp"


def _table(markdown, heading):
  """The lines of the table after ``## heading``."""
  section = markdown.split(f"## {heading}\n", 1)[1]
  return [line for line in section.split("\n## ")[0].splitlines() if line.startswith("|")]


def test_quality_tables(quadratic, mlp, tmp_path, capsys):
  out = tmp_path / "report"
  assert cli.main(["report", str(quadratic), str(mlp), "--output-dir", str(out)]) == 0
  printed = capsys.readouterr().out
  md = (out / "quality.md").read_text()
  assert md in printed

  assert _table(md, "Final loss") == [
    "| Workload | MO | AdamW | Bad | Half | Prodigy |",
    "|---|---|---|---|---|---|",
    # Half's lower loss has one seed of two: it is not the row's best.
    "| noisy_quadratic | 0.6 ± 0.1 | **0.5 ± 0.1** | diverged | 0.3 (1/2 seeds) | — |",
    "| mnist1d_mlp | **0.8 ± 0** | 1.1 ± 0.1 | — | — | incomplete |",
  ]
  assert ("Metric of each row: train loss: noisy_quadratic; test loss: mnist1d_mlp.") in md
  assert _table(md, "Final accuracy") == [
    "| Workload | MO | AdamW | Bad | Half | Prodigy |",
    "|---|---|---|---|---|---|",
    "| mnist1d_mlp | **0.7 ± 0** | 0.65 ± 0.05 | — | — | incomplete |",
  ]
  assert "Metric of each row: test accuracy: mnist1d_mlp." in md

  by_optimizer = (out / "quality_by_optimizer.md").read_text()
  assert _table(by_optimizer, "Final loss") == [
    "| Optimizer | noisy_quadratic | mnist1d_mlp |",
    "|---|---|---|",
    "| MO | 0.6 ± 0.1 | **0.8 ± 0** |",
    "| AdamW | **0.5 ± 0.1** | 1.1 ± 0.1 |",
    "| Bad | diverged | — |",
    "| Half | 0.3 (1/2 seeds) | — |",
    "| Prodigy | — | incomplete |",
  ]

  data = json.loads((out / "quality.json").read_text())
  assert data["optimizers"] == ["MO", "AdamW", "Bad", "Half", "Prodigy"]
  quad, mlp_row = data["loss"]
  assert quad["metric"] == "train_loss" and mlp_row["metric"] == "test_loss"
  adamw = quad["cells"]["AdamW"]
  assert adamw["status"] == "finished" and adamw["best"]
  assert adamw["mean"] == pytest.approx(0.5) and adamw["std"] == pytest.approx(0.1)
  assert adamw["point"] == "learning_rate=0.01"  # the grid's best point
  assert quad["cells"]["Half"]["status"] == "partial" and not quad["cells"]["Half"]["best"]
  assert quad["cells"]["Bad"]["status"] == "diverged"
  assert mlp_row["cells"]["Bad"] == {"status": "missing", "text": "—", "best": False}
  assert [r["workload"] for r in data["accuracy"]] == ["mnist1d_mlp"]

  png = (out / "learning_rates.png").read_bytes()
  assert png[:8] == PNG and len(png) > 10_000
  assert not (out / "robustness.png").exists()  # no sweep here


def test_loss_train_writes_the_training_loss_once(quadratic, mlp, tmp_path):
  out = tmp_path / "report"
  args = ["report", str(quadratic), str(mlp), "--output-dir", str(out), "--loss", "train"]
  assert cli.main(args) == 0
  md = (out / "quality.md").read_text()
  assert md.count("## Final training loss") == 1 and "## Final loss" not in md
  assert _table(md, "Final training loss")[2:] == [
    "| noisy_quadratic | 0.6 ± 0.1 | **0.5 ± 0.1** | diverged | 0.3 (1/2 seeds) | — |",
    "| mnist1d_mlp | **0.7 ± 0** | 1 ± 0 | — | — | incomplete |",
  ]


def test_optimizers_choose_and_order_the_columns(quadratic, mlp, tmp_path):
  out = tmp_path / "report"
  assert (
    cli.main(
      [
        "report",
        str(quadratic),
        str(mlp),
        "--output-dir",
        str(out),
        "--optimizers",
        "AdamW,MO",
        "--lr-optimizers",
        "MO",
      ]
    )
    == 0
  )
  assert _table((out / "quality.md").read_text(), "Final loss") == [
    "| Workload | AdamW | MO |",
    "|---|---|---|",
    "| noisy_quadratic | **0.5 ± 0.1** | 0.6 ± 0.1 |",
    "| mnist1d_mlp | 1.1 ± 0.1 | **0.8 ± 0** |",
  ]


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ["--optimizers", "MO,Nope"],
      "--optimizers 'Nope': not found; the optimizers of these results: MO, AdamW, Bad, Half",
    ),
    (
      ["--lr-optimizers", "AdamW"],
      "--lr-optimizers 'AdamW': not found; the MetaOptimize optimizers",
    ),
  ],
)
def test_unknown_optimizers_are_an_error(quadratic, tmp_path, capsys, args, message):
  assert cli.main(["report", str(quadratic), "--output-dir", str(tmp_path / "r"), *args]) == 2
  assert message in capsys.readouterr().err


def test_bad_directories_are_an_error(quadratic, tmp_path, capsys):
  assert cli.main(["report", str(quadratic), "--output-dir", str(quadratic)]) == 2
  assert "is one of the results directories" in capsys.readouterr().err
  assert cli.main(["report", str(tmp_path), "--output-dir", str(tmp_path / "r")]) == 2
  assert "is not a results directory" in capsys.readouterr().err


# The final test loss of each point of the built-in config robustness (None: diverged).
ROBUST_LOSS = {
  "AdamW": {1e-5: 2.0, 1e-4: 1.5, 1e-3: 1.0, 1e-2: 0.8, 1e-1: None},
  "MetaOptimize": {1e-5: 1.0, 1e-4: 0.9, 1e-3: 0.85, 1e-2: 0.9},
  "MetaOptimize (recommended)": {1e-5: 0.95, 1e-4: 0.9, 1e-3: 0.8, 1e-2: 0.85},
}


@pytest.fixture
def robustness_dir(tmp_path):
  """Fake results of the built-in config robustness, every grid point."""
  config, opts = _results_dir(
    tmp_path / "robustness", config_lib.load_config(CONFIGS / "robustness.yaml")
  )
  assert config.workload.name == "mnist1d_mlp" and config.steps == 3000
  assert len(config.seeds) == 3
  for name, losses in ROBUST_LOSS.items():
    opt = opts[name]
    points = opt.points()
    assert [
      p.params.get("learning_rate", p.params.get("initial_learning_rate")) for p in points
    ] == list(losses)
    for point, loss in zip(points, losses.values(), strict=True):
      rate = point.params.get("initial_learning_rate", 1e-3)
      for seed in config.seeds:
        if loss is None:
          _write_run(tmp_path / "robustness", opt, point, seed, [2.0], end="diverged")
        else:
          _write_run(
            tmp_path / "robustness",
            opt,
            point,
            seed,
            [2.0, loss],
            rate=rate,
            evals={"test_loss": loss + 0.01 * (seed - 1), "test_accuracy": 0.5},
          )
  return tmp_path / "robustness"


def test_robustness_sweep(robustness_dir, mlp, tmp_path, capsys):
  out = tmp_path / "report"
  assert cli.main(["report", str(robustness_dir), str(mlp), "--output-dir", str(out)]) == 0
  assert "# Robustness to the learning rate" in capsys.readouterr().out
  md = (out / "robustness.md").read_text()
  assert [line for line in md.splitlines() if line.startswith("|")] == [
    "| learning rate | AdamW: learning rate | MetaOptimize: initial learning rate "
    "| MetaOptimize (recommended): initial learning rate |",
    "|---|---|---|---|",
    "| 1e-05 | 2 ± 0.0082 | 1 ± 0.0082 | 0.95 ± 0.0082 |",
    "| 0.0001 | 1.5 ± 0.0082 | 0.9 ± 0.0082 | 0.9 ± 0.0082 |",
    "| 0.001 | 1 ± 0.0082 | **0.85 ± 0.0082** | **0.8 ± 0.0082** |",
    "| 0.01 | **0.8 ± 0.0082** | 0.9 ± 0.0082 | 0.85 ± 0.0082 |",
    "| 0.1 | diverged | — | — |",
    "| best rate | 0.01 | 0.001 | 0.001 |",
    "| median | — | 0.9 | 0.875 |",
    "| worst − best | ∞ (a rate diverged) | 0.15 | 0.15 |",
  ]
  (entry,) = json.loads((out / "robustness.json").read_text())["workloads"]
  assert entry["metric"] == "test_loss"
  adamw, meta, recommended = entry["sweeps"]
  assert (adamw["parameter"], adamw["metaoptimize"]) == ("learning_rate", False)
  assert meta["settings"] == {"base": "adamw", "meta": "lion"}
  assert meta["spread"] == pytest.approx(0.15) and adamw["spread"] is None
  assert [p["mean"] for p in recommended["points"]] == pytest.approx([0.95, 0.9, 0.8, 0.85])
  # The file format: each point names its optimizer (display name) under "optimizer".
  assert set(adamw["points"][0]) >= {"rate", "optimizer", "point", "mean", "std"}
  for name in ("robustness.png", "learning_rates.png"):
    png = (out / name).read_bytes()
    assert png[:8] == PNG and len(png) > 10_000

  # The quality table shows each optimizer's best grid point.
  (row, _) = json.loads((out / "quality.json").read_text())["loss"]
  assert row["workload"] == "mnist1d_mlp (robustness)"
  assert row["cells"]["MetaOptimize"]["point"] == "initial_learning_rate=0.001"


def test_sweeps_from_separate_entries(tmp_path):
  """Entries that differ only in the rate make one family; other settings another."""
  config, opts = _results_dir(
    tmp_path / "r",
    _config(
      "noisy_quadratic",
      {
        "MO 1e-4": {"name": "metaoptimize", "initial_learning_rate": 1e-4},
        "MO 1e-3": {"name": "metaoptimize", "initial_learning_rate": 1e-3},
        "MO gamma 0.9": {"name": "metaoptimize", "initial_learning_rate": 1e-3, "gamma": 0.9},
        "AdamW": {"name": "adamw", "learning_rate": 1e-3},
      },
    ),
  )
  for i, opt in enumerate(opts.values()):
    for seed in config.seeds:
      _write_run(
        tmp_path / "r",
        opt,
        opt.points()[0],
        seed,
        [1.0, 0.5 + 0.1 * i],
        evals={"test_loss": 0.5 + 0.1 * i},
      )
  (workload,) = loading.load_workloads([tmp_path / "r"])
  (sweep,) = robustness.find_sweeps(workload)  # one rate alone is no sweep
  assert (sweep.label, sweep.parameter) == ("MO", "initial_learning_rate")
  assert [(p.rate, p.display_name) for p in sweep.points] == [(1e-4, "MO 1e-4"), (1e-3, "MO 1e-3")]
  assert [p.cell["mean"] for p in sweep.points] == pytest.approx([0.5, 0.6])
  assert robustness.has_robustness_sweep([sweep])


def test_report_of_a_real_compare(tmp_path, capsys):
  """compare's own files, end to end: a MetaOptimize sweep and AdamW, one seed."""
  out = tmp_path / "results"
  (tmp_path / "tiny.yaml").write_text(f"""\
workload: {{name: noisy_quadratic, options: {{dim: 4, batch_size: 2}}}}
steps: 10
log_every: 5
eval_every: 0
output_dir: {out}
optimizers:
  MetaOptimize: {{name: metaoptimize, meta_learning_rate: 0.05,
                 grid: {{initial_learning_rate: [1.0e-3, 1.0e-2]}}}}
  AdamW: {{name: adamw, learning_rate: 1.0e-2}}
""")
  assert cli.main(["compare", str(tmp_path / "tiny.yaml"), "--no-progress"]) == 0
  summary = json.loads((out / "summary.json").read_text())
  report = tmp_path / "report"
  assert cli.main(["report", str(out), "--output-dir", str(report)]) == 0
  assert capsys.readouterr().out
  data = json.loads((report / "quality.json").read_text())
  for row in summary["optimizers"]:
    cell = data["loss"][0]["cells"][row["optimizer"]]
    assert cell["mean"] == pytest.approx(row["metrics"]["test_loss"]["mean"])
  (entry,) = json.loads((report / "robustness.json").read_text())["workloads"]
  assert [s["label"] for s in entry["sweeps"]] == ["MetaOptimize"]  # one AdamW rate
  assert [p["rate"] for p in entry["sweeps"][0]["points"]] == [1e-3, 1e-2]
  for name in ("learning_rates.png", "robustness.png"):
    assert (report / name).read_bytes()[:8] == PNG


def test_help(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["report", "--help"])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for word in ("RESULTS_DIR", "--output-dir", "--optimizers", "--lr-optimizers", "robustness"):
    assert word in text


def test_train_loss_option(mlp):
  from metaoptimize_optax.experiments.report import loading

  (held_out,) = loading.load_workloads([mlp])
  (train,) = loading.load_workloads([mlp], loss="train")
  assert held_out.loss_metric == "test_loss" and train.loss_metric == "train_loss"
  assert held_out.accuracy_metric == train.accuracy_metric == "test_accuracy"
