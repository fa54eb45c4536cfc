"""The command line, end to end in a subprocess, on a tiny config."""

import json
import os
import subprocess
import sys

import pytest

CONFIG = """\
description: A tiny end-to-end check.
workload: {name: noisy_quadratic, options: {dim: 4, batch_size: 2}}
steps: 30
seeds: 2
log_every: 5
eval_every: 15
checkpoint_every: 15
output_dir: OUT
target_loss: 1.0
optimizers:
  MetaOptimize: {name: metaoptimize, initial_learning_rate: 1e-2, meta_learning_rate: 0.05}
  AdamW (tuned): {name: adamw, weight_decay: 0.0, grid: {learning_rate: [1e-2, 1e-1]}}
  Exploding SGD: {name: sgdm, learning_rate: 1e3}
"""
NAMES = ["MetaOptimize", "AdamW (tuned)", "Exploding SGD"]


def _cli(*args, cwd):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(
    [sys.executable, "-m", "metaoptimize_optax.experiments.cli", *args],
    capture_output=True,
    text=True,
    cwd=cwd,
    env=env,
    timeout=300,
  )


@pytest.mark.parametrize("command", [[], ["run"], ["compare"], ["summarize"]])
def test_help(command, tmp_path):
  done = _cli(*command, "--help", cwd=tmp_path)
  assert done.returncode == 0, done.stderr
  assert "usage: metaoptimize-optax" in done.stdout
  for word in {
    (): ["run", "compare", "summarize", "report", "bench"],
    ("run",): ["CONFIG", "--resume"],
    ("compare",): ["summary.md", "--overwrite"],
    ("summarize",): ["RESULTS_DIR"],
  }[tuple(command)]:
    assert word in done.stdout


def test_compare_and_summarize_end_to_end(tmp_path):
  out = tmp_path / "results"
  (tmp_path / "tiny.yaml").write_text(CONFIG.replace("OUT", str(out)))
  done = _cli("compare", "tiny.yaml", "--no-progress", cwd=tmp_path)
  assert done.returncode == 0, done.stderr
  lines = done.stdout.splitlines()
  # The console table: a header and one row per optimizer, in 100 columns, after every run's
  # own line; the whole table is summary.md's.
  start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "optimizer"])
  table = lines[start : start + 1 + len(NAMES)]
  assert lines[start].split()[2:] == ["test", "loss", "train", "loss", "ms/step"]
  assert all(len(line) <= 100 for line in table)
  for name in NAMES:
    assert any(f" {name} " in line for line in table[1:]), done.stdout
  ran = [i for i, line in enumerate(lines) if " seed " in line and " at step " in line]
  assert len(ran) == 2 * 4 and max(ran) < start  # 2 seeds of 4 settings, each as it ended

  for name in ("summary.md", "summary.json", "loss.png", "learning_rates.png", "config.yaml"):
    assert (out / name).stat().st_size > 0, name
  assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  summary = json.loads((out / "summary.json").read_text())
  assert [row["optimizer"] for row in summary["optimizers"]] == NAMES
  assert summary["optimizers"][0]["metaoptimize"] is True
  assert summary["optimizers"][1]["grid"]["best"].startswith("learning_rate=")
  for seed in (0, 1):
    assert (out / "MetaOptimize" / f"seed{seed}" / "metrics.jsonl").exists()
    assert (out / "MetaOptimize" / f"seed{seed}" / "checkpoints").is_dir()
    assert (out / "AdamW_tuned" / "learning_rate_0.1" / f"seed{seed}" / "metrics.jsonl").exists()
  md = (out / "summary.md").read_text()
  for name in NAMES:
    assert f"| {name} |" in md
  assert "best learning_rate=" in md  # the grid is reported
  assert "diverged in 2/2 seeds" in md

  # summarize regenerates the summary from the results alone.
  for name in ("summary.md", "loss.png", "learning_rates.png"):
    (out / name).unlink()
  done = _cli("summarize", str(out), cwd=tmp_path)
  assert done.returncode == 0, done.stderr
  assert (out / "summary.md").read_text() == md
  assert (out / "loss.png").exists() and (out / "learning_rates.png").exists()

  # Running again keeps the finished runs with --resume.
  done = _cli("compare", "tiny.yaml", "--no-progress", "--resume", cwd=tmp_path)
  assert done.returncode == 0, done.stderr
  assert (out / "summary.md").read_text() == md
