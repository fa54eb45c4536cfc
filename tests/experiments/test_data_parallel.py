"""With 8 simulated devices the runner splits the batch and equals one device (both traces)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    from exp_helpers import tiny_classifier, tiny_config
    from metaoptimize_optax.experiments import results, runner

    assert jax.device_count() == 8
    out = {}
    for parallel in (True, False):
      config = tiny_config(f"{sys.argv[1]}/{parallel}", seeds=1, steps=30, checkpoint_every=0,
                           data_parallel=parallel, optimizers={
          "MetaOptimize": {"name": "metaoptimize", "initial_learning_rate": 1e-3,
                           "meta_learning_rate": 0.05, "blocks": "per_layer"},
          "MetaOptimize hvp": {"name": "metaoptimize", "hessian": "hvp",
                               "initial_learning_rate": 1e-3, "meta_learning_rate": 0.05}})
      runner.run_experiment(config, tiny_classifier(), progress=False)
      for opt in config.optimizers:
        path = results.run_dir(config.output_dir, opt, opt.points()[0], 0) / results.METRICS_FILE
        out.setdefault(opt.display_name, {})[parallel] = results.read_records(path)
    print(json.dumps(out))
""")


def test_eight_devices_equal_one(tmp_path):
  env = {
    **os.environ,
    "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
    "JAX_PLATFORMS": "cpu",
    "PYTHONPATH": os.pathsep.join(
      [str(pathlib.Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    ),
  }
  done = subprocess.run(
    [sys.executable, "-c", SCRIPT, str(tmp_path)],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr
  runs = json.loads(done.stdout.strip().splitlines()[-1])
  for name, by_mode in runs.items():
    eight, one = by_mode["true"], by_mode["false"]
    assert eight[0]["devices"] == 8 and one[0]["devices"] == 1
    assert [r["event"] for r in eight] == [r["event"] for r in one]
    for a, b in zip(eight, one, strict=True):
      for key in ("loss", "accuracy", "test_loss", "train_loss"):
        if key in a:
          assert abs(a[key] - b[key]) <= 1e-4 * abs(b[key]) + 1e-6, (name, key, a, b)
      for block, rate in a.get("learning_rate", {}).items():
        assert abs(rate - b["learning_rate"][block]) <= 1e-4 * rate, (name, block, a, b)
    # The rates were learned (the curvature-aware run was handed value_fn).
    last = [r for r in one if r["event"] == "train"][-1]["learning_rate"]
    assert all(abs(rate / 1e-3 - 1) > 0.2 for rate in last.values()), (name, last)
