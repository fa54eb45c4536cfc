"""Bad configs get one clear message, and nothing is written."""

import re

import jax
import pytest
import yaml

import metaoptimize_optax as mo
from metaoptimize_optax.experiments import cli, plan
from metaoptimize_optax.experiments import config as config_lib
from metaoptimize_optax.experiments import optimizers as optimizer_lib
from metaoptimize_optax.experiments.models.pure import PureModel
from metaoptimize_optax.experiments.models.resnet import ResNet18
from metaoptimize_optax.experiments.workloads import get_workload

GOOD = """\
workload: {name: noisy_quadratic, options: {dim: 4, batch_size: 2}}
steps: 10
seeds: 1
log_every: 5
output_dir: OUT
optimizers:
  AdamW: {name: adamw, learning_rate: 1e-2}
"""


def _write(tmp_path, text):
  path = tmp_path / "config.yaml"
  path.write_text(text.replace("OUT", str(tmp_path / "out")))
  return path


def _fails(tmp_path, capsys, text, *args):
  """Runs the CLI on ``text``; returns its one error message (nothing written)."""
  path = _write(tmp_path, text)
  assert cli.main(["compare", str(path), "--no-progress", *args]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("metaoptimize-optax: error: "), captured.err
  assert not (tmp_path / "out").exists()
  return lines[0]


@pytest.mark.parametrize(
  "text, expected",
  [
    (GOOD + "stepz: 5\n", ["unknown key(s) 'stepz'", "valid keys: description, workload, steps"]),
    (
      GOOD.replace("noisy_quadratic", "mnist2d"),
      ["unknown workload 'mnist2d'", "valid workloads:", "mnist1d_mlp", "noisy_quadratic"],
    ),
    (GOOD.replace("dim: 4", "dims: 4"), ["unknown option(s) dims", "accepted options: dim"]),
    (
      GOOD.replace("name: adamw", "name: adamw2"),
      ["unknown optimizer 'adamw2'", "valid names: adamw, adamw_cosine", "prodigy"],
    ),
    (
      GOOD.replace("learning_rate:", "lr:"),
      [
        "optimizers['AdamW']: optimizer 'adamw': unknown parameter(s) lr",
        "valid parameters: learning_rate",
      ],
    ),
    (
      GOOD.replace(
        "{name: adamw, learning_rate: 1e-2}", "{name: adamw, grid: {learning_rate: 1e-2}}"
      ),
      ["grid must map"],
    ),
    (
      GOOD.replace(
        "{name: adamw, learning_rate: 1e-2}", "{name: metaoptimize, grid: {gamma: [0.9, 2.0]}}"
      ),
      ["(grid point gamma=2)", "gamma"],
    ),
    (GOOD.replace("steps: 10", "steps: -3"), ["steps must be an integer >= 1, got -3"]),
    (GOOD + "checkpoint_every: 7\n", ["checkpoint_every (7) must be a multiple of log_every (5)"]),
    (GOOD.replace("seeds: 1", "seeds: [0, 0]"), ["seeds must not repeat"]),
    (
      GOOD.replace("AdamW: {name: adamw, learning_rate: 1e-2}", "AdamW: adamw"),
      ["optimizers['AdamW'] must be a mapping with a 'name'"],
    ),
    (GOOD + '  "AdamW!": {name: adamw}\n', ["map to the same directory name"]),
    ("workload: [\n", ["not valid YAML"]),
    (
      "workload: {name: cifar10_resnet18, options: {data_path: /nonexistent/cifar}}\n"
      "steps: 10\noptimizers: {A: {name: adamw}}\n",
      ["workload 'cifar10_resnet18'", "/nonexistent/cifar", "cifar-10-batches-py"],
    ),
    (
      "workload: {name: tinystories_llama, options: {data_path: /nonexistent/ts}}\n"
      "steps: 10\noptimizers: {A: {name: adamw}}\n",
      ["workload 'tinystories_llama'", "/nonexistent/ts", "expected"],
    ),
    (
      "workload: {name: cifar10_resnet18}\nsteps: 10\noptimizers: {A: {name: adamw}}\n",
      ["requires option(s) data_path"],
    ),
  ],
)
def test_bad_config(tmp_path, capsys, text, expected):
  message = _fails(tmp_path, capsys, text)
  for part in expected:
    assert part in message, message


def test_missing_config_file(tmp_path, capsys):
  assert cli.main(["run", str(tmp_path / "nope.yaml")]) == 2
  assert "cannot read config" in capsys.readouterr().err


def test_unknown_optimizer_selection(tmp_path, capsys):
  path = _write(tmp_path, GOOD)
  assert cli.main(["run", str(path), "--optimizer", "Adam"]) == 2
  err = capsys.readouterr().err
  assert "--optimizer Adam: not in the config; its optimizers: AdamW" in err
  assert not (tmp_path / "out").exists()


def test_existing_results_need_resume_or_overwrite(tmp_path, capsys):
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "config.yaml").write_text("steps: 1\n")
  path = _write(tmp_path, GOOD)
  assert cli.main(["compare", str(path), "--no-progress"]) == 2
  assert "already holds results; pass --resume" in capsys.readouterr().err
  assert cli.main(["compare", str(path), "--resume", "--overwrite"]) == 2
  assert "exclude each other" in capsys.readouterr().err
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.yaml"]


def test_plot_of_a_non_results_dir(tmp_path, capsys):
  assert cli.main(["summarize", str(tmp_path)]) == 2
  assert "is not a results directory" in capsys.readouterr().err


def test_yaml_numbers_and_overrides(tmp_path):
  path = _write(tmp_path, GOOD + "target_loss: 1e-2\n")
  config = config_lib.load_config(
    path,
    ["steps=20", "optimizers.AdamW.learning_rate=3e-3", "optimizers.Lion={name: lion}", "seeds=3"],
  )
  assert config.steps == 20 and config.seeds == (0, 1, 2) and config.target_loss == 0.01
  assert [o.display_name for o in config.optimizers] == ["AdamW", "Lion"]
  assert config.optimizers[0].params == {"learning_rate": 3e-3}
  with pytest.raises(config_lib.ConfigError, match="expected KEY=VALUE"):
    config_lib.load_config(path, ["steps"])
  # The resolved config reads back to itself.
  again = config_lib.from_dict(config_lib.parse_yaml(yaml.safe_dump(config.to_dict())))
  assert again == config


def test_grid_points(tmp_path):
  config = config_lib.load_config(
    _write(
      tmp_path,
      GOOD.replace(
        "{name: adamw, learning_rate: 1e-2}",
        "{name: adamw, b1: 0.8, grid: {learning_rate: [1e-3, 1e-2], b2: [0.99, 0.999]}}",
      ),
    )
  )
  points = config.optimizers[0].points()
  assert [p.label for p in points] == [
    "learning_rate=0.001,b2=0.99",
    "learning_rate=0.001,b2=0.999",
    "learning_rate=0.01,b2=0.99",
    "learning_rate=0.01,b2=0.999",
  ]
  assert points[1].params == {"b1": 0.8, "learning_rate": 1e-3, "b2": 0.999}


def test_shipped_configs_are_valid():
  root = config_lib.BUILTIN_DIR
  paths = sorted(root.glob("*.yaml"))
  assert {p.stem for p in paths} >= {
    "quickstart",
    "noisy_quadratic",
    "tracking",
    "mnist1d_mlp",
    "mnist1d_cnn",
    "continual_mnist1d",
    "charlm",
    "cifar10_resnet18",
    "tinystories_llama",
  }
  for path in config_lib.builtin_configs().values():  # Those in subdirectories too.
    config = config_lib.load_config(path)
    assert config.optimizers


def test_paper_resnet_blocks_match_the_model():
  """The stem/stage/head blocks of the CIFAR-10 config label every ResNet-18 weight."""
  root = config_lib.BUILTIN_DIR
  config = config_lib.load_config(root / "cifar10_resnet18.yaml")
  (opt,) = [o for o in config.optimizers if isinstance(o.params.get("blocks"), dict)]
  model = PureModel.from_constructor(lambda rngs: ResNet18(10, 4, rngs=rngs))
  params, _ = jax.eval_shape(model.init, jax.random.PRNGKey(0))
  tx = optimizer_lib.build_optimizer(opt.name, config.steps, opt.params).tx
  state = jax.eval_shape(tx.init, params)
  assert set(mo.find_state(state).log_learning_rate) == {
    "stem",
    "stage1",
    "stage2",
    "stage3",
    "stage4",
    "head",
  }


@pytest.mark.parametrize(
  "name",
  [
    "quickstart",
    "noisy_quadratic",
    "tracking",
    "mnist1d_mlp",
    "mnist1d_cnn",
    "continual_mnist1d",
    "charlm",
  ],
)
def test_shipped_configs_initialize(name):
  """Every optimizer of the CPU configs initializes on its workload's params."""
  config = config_lib.load_config(config_lib.BUILTIN_DIR / f"{name}.yaml")
  resolved = plan.resolve(config)
  assert len(resolved.optimizers) == sum(len(o.points()) for o in config.optimizers)


def test_steps_default_to_the_workload_run_length():
  """A config without steps runs the workload's default_steps (a stream: its whole length)."""
  raw = {"workload": {"name": "noisy_quadratic"}, "optimizers": {"A": {"name": "adamw"}}}
  config = config_lib.from_dict(raw)
  assert config.steps == get_workload("noisy_quadratic").default_steps
  assert config.log_every == max(1, config.steps // 100)
  assert config_lib.from_dict({**raw, "steps": 7}).steps == 7


@pytest.mark.parametrize(
  "optimizer, message",
  [
    ("{name: adamw, learning_rate: -1.0e-3}", "learning_rate=-0.001 is invalid"),
    ("{name: adamw_cosine, learning_rate: 0.0}", "learning_rate=0.0 is invalid"),
    ("{name: sgdm, learning_rate: -0.1}", "learning_rate=-0.1 is invalid"),
    ("{name: prodigy, learning_rate: -1.0}", "learning_rate=-1.0 is invalid"),
    ("{name: schedule_free_adamw, learning_rate: 0}", "learning_rate=0 is invalid"),
    ("{name: adamw, grid: {learning_rate: [1.0e-3, -1.0e-2]}}", "learning_rate=-0.01 is invalid"),
    ("{name: optax.adafactor, learning_rate: -1.0}", "learning_rate=-1.0 is invalid"),
    ("{name: cocob, alpha: 0}", "alpha=0 is invalid; expected a finite number > 0"),
    ("{name: adamw, b2: 1.5}", "b2=1.5 is invalid; expected a number in [0, 1]"),
    ("{name: mechanic, num_betas: 2.5}", "num_betas=2.5 is invalid; expected an integer >= 1"),
    ("{name: dog, weight_decay: -0.1}", "weight_decay=-0.1 is invalid"),
    ("{name: adamw, learning_rate: '1e-3'}", "learning_rate='1e-3' is not a real scalar"),
  ],
)
def test_bad_peer_settings_are_refused_before_anything_is_written(
  tmp_path, capsys, optimizer, message
):
  text = GOOD.replace("{name: adamw, learning_rate: 1e-2}", optimizer)
  assert message in _fails(tmp_path, capsys, text)


def test_run_of_one_optimizer_builds_only_that_one(tmp_path, capsys):
  """Another optimizer of the config that cannot be built (recommended needs >= 10 steps)
  does not stop a run of the selected one, nor the summary of its results."""
  text = GOOD.replace("steps: 10", "steps: 6").replace(
    "  AdamW:", "  MetaOptimize: {name: recommended}\n  AdamW:"
  )
  path = _write(tmp_path, text)
  assert cli.main(["run", str(path), "--optimizer", "AdamW", "--no-progress"]) == 0
  assert cli.main(["summarize", str(tmp_path / "out")]) == 0
  assert re.search(r"^ *1  AdamW ", capsys.readouterr().out, re.M)  # rank 1 in the table
  assert cli.main(["compare", str(path), "--no-progress", "--overwrite"]) == 2
  assert "total_steps=6 is invalid" in capsys.readouterr().err


def test_compare_builds_each_optimizer_once_per_grid_point(tmp_path, capsys, monkeypatch):
  """Config, plan, run and summary: one build of each grid point's optimizer in all."""
  built = []
  real = optimizer_lib.build_optimizer
  monkeypatch.setattr(
    optimizer_lib, "build_optimizer", lambda *a, **k: built.append(a[0]) or real(*a, **k)
  )
  text = GOOD.replace(
    "  AdamW: {name: adamw, learning_rate: 1e-2}",
    "  AdamW: {name: adamw, grid: {learning_rate: [1e-2, 1e-3]}}\n"
    "  MetaOptimize: {name: recommended}",
  )
  path = _write(tmp_path, text)
  assert cli.main(["compare", str(path), "--no-progress"]) == 0
  assert sorted(built) == ["adamw", "adamw", "recommended"]
  assert re.search(r"^ *\d  MetaOptimize ", capsys.readouterr().out, re.M)


def test_a_config_by_built_in_name(tmp_path, monkeypatch):
  """A built-in config runs by name from any directory; a file that exists wins over a name."""
  monkeypatch.chdir(tmp_path)
  by_name = config_lib.load_config("quickstart")
  by_path = config_lib.load_config(config_lib.BUILTIN_DIR / "quickstart.yaml")
  assert by_name == by_path
  assert config_lib.load_config("meta_parameters/tracking.yaml").workload.name == "tracking"
  assert {"quickstart", "stream_tracking", "meta_parameters/charlm"} <= set(
    config_lib.builtin_configs()
  )
  (tmp_path / "quickstart").write_text(
    "workload: {name: tracking}\noptimizers: {S: {name: sgdm}}\n"
  )
  assert config_lib.load_config("quickstart").workload.name == "tracking"
  with pytest.raises(config_lib.ConfigError, match=r"not a built-in config; the built-in ones: .*"):
    config_lib.load_config("quickstrat")


def test_cli_lists_the_built_in_configs(capsys):
  assert cli.main(["configs"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in lines] == list(config_lib.builtin_configs())
  assert all(len(line) <= 100 for line in lines)
