"""The CLI with a user's workload ("module:factory"), Optax aliases as peers and as MetaOptimize
bases, --set reflected in the summary, and one final training loss in console and table."""

import json
import os
import re
import sys
import textwrap

import numpy as np
import pytest

import metaoptimize_optax as mo
from metaoptimize_optax.experiments import cli, results
from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments.config import slugify
from metaoptimize_optax.experiments.workloads import get_workload

CONFIG = """\
description: A check of 40 steps on a user's workload.
workload: {name: "user_workloads:linear", options: {dim: 3}}
steps: 40
seeds: 2
log_every: 4
eval_every: 0
output_dir: OUT
optimizers:
  Adafactor: {name: optax.adafactor, learning_rate: 0.05}
  MO Adafactor:
    name: metaoptimize
    base: adafactor
    base_options: {decay_rate: 0.9}
    meta: adam
    meta_learning_rate: 0.01
    initial_learning_rate: 0.01
  COCOB: {name: optax.contrib.cocob}
"""


def _write(tmp_path, text=CONFIG):
  path = tmp_path / "user.yaml"
  path.write_text(text.replace("OUT", str(tmp_path / "results")))
  return path


def test_user_workload_optax_peers_and_set(tmp_path, capsys):
  code = cli.main(["compare", str(_write(tmp_path)), "--no-progress", "--set", "steps=12"])
  out = capsys.readouterr().out
  assert code == 0, out
  # The console and the summary describe the config that ran: 12 steps, not the file's 40.
  assert "user_workloads:linear (dim=3): 12 steps, seeds [0, 1]" in out
  md = (tmp_path / "results" / "summary.md").read_text()
  assert "12 steps" in md and "40 steps" not in md and "--set steps=12" in md
  summary = json.loads((tmp_path / "results" / "summary.json").read_text())
  assert summary["steps"] == 12
  rows = {row["optimizer"]: row for row in summary["optimizers"]}
  assert set(rows) == {"Adafactor", "MO Adafactor", "COCOB"}
  assert rows["MO Adafactor"]["metaoptimize"] and not rows["Adafactor"]["metaoptimize"]
  # One final training loss: what the console prints is what the table averages.
  printed = re.findall(
    r"^(.+?) seed (\d): finished at step 12; final training loss (\S+)$", out, re.M
  )
  assert len(printed) == 6, out
  for name, row in rows.items():
    console = [float(v) for n, _, v in printed if n == name]
    assert np.mean(console) == pytest.approx(row["metrics"]["train_loss"]["mean"], rel=2e-3)
    run = tmp_path / "results" / slugify(name) / "seed0"
    records = results.read_records(run / results.METRICS_FILE)
    last_interval = [r for r in records if r.get("event") == "train"][-1]["loss"]
    assert results.final_train_loss(records) != pytest.approx(last_interval)  # it is the eval
  assert "final training loss: the loss on the workload's training split" in out


def test_user_workload_imported_from_the_current_directory(tmp_path, monkeypatch):
  (tmp_path / "my_digits.py").write_text(
    textwrap.dedent("""\
      import user_workloads

      def make(*, dim):
        return user_workloads.linear(dim=dim)
      """)
  )
  # As under the `metaoptimize-optax` script: the current directory is not on sys.path.
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
  monkeypatch.chdir(tmp_path)
  workload = get_workload("my_digits:make", dim=2)
  assert workload.name == "linear"
  with pytest.raises(TypeError, match="requires option"):
    get_workload("my_digits:make")


@pytest.mark.parametrize(
  "name, message",
  [
    ("no_such_module:make", "cannot import 'no_such_module'"),
    ("user_workloads:missing", "has no callable 'missing'"),
    ("user_workloads:not_a_workload", "returned a dict, not a"),
    ("user_workloads:", "is not 'package.module:factory'"),
  ],
)
def test_bad_user_workload_is_one_clear_error(tmp_path, capsys, name, message):
  text = CONFIG.replace('"user_workloads:linear", options: {dim: 3}', f'"{name}"')
  code = cli.main(["run", str(_write(tmp_path, text)), "--no-progress"])
  err = capsys.readouterr().err
  assert code == 2 and message in err, err
  assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
  "entry, message",
  [
    ("{name: optax.nothing}", "optax.nothing is not an Optax optimizer"),
    ("{name: optax.adafactor, lr: 1.0}", "unknown parameter(s) lr"),
    ("{name: metaoptimize, base: nothing}", "is not a MetaOptimize preset"),
    (
      "{name: metaoptimize, base: adafactor, base_options: {learning_rate: 2.0}}",
      "used at learning rate 1",
    ),
  ],
)
def test_bad_optax_alias_is_one_clear_error(tmp_path, capsys, entry, message):
  text = CONFIG.replace("{name: optax.contrib.cocob}", entry)
  code = cli.main(["run", str(_write(tmp_path, text)), "--no-progress"])
  err = capsys.readouterr().err
  assert code == 2 and message in err, err


def test_optax_alias_entries():
  peer = optimizer_lib.build_optimizer("optax.adafactor", 10, {"learning_rate": 0.05})
  assert float(peer.logged_rates(None, 0)["all"]) == pytest.approx(0.05)
  assert "decay_rate" in optimizer_lib.parameters("optax.adafactor")
  based = optimizer_lib.build_optimizer(
    "metaoptimize", 10, {"base": "optax.adafactor", "initial_learning_rate": 1e-3, "hessian": "hvp"}
  )
  assert based.is_metaoptimize and based.needs_value_fn
  params = {"w": np.zeros((4, 3), np.float32)}
  state = based.tx.init(params)
  assert float(mo.learning_rates(state)) == pytest.approx(1e-3)
  # Presets keep their names; base_options is for alias bases only.
  with pytest.raises(optimizer_lib.OptimizerError, match="base_options"):
    optimizer_lib.build_optimizer("metaoptimize", 10, {"base": "adamw", "base_options": {}})
