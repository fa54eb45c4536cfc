"""Tests of the experiment workloads: data, models and losses.

Every workload is built at a tiny size; CIFAR-10 and TinyStories read tiny
files written here in their real formats.
"""

import os
import pickle
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metaoptimize_optax.experiments.models import PureModel, Transformer, TransformerConfig
from metaoptimize_optax.experiments.workloads import (
  WORKLOADS,
  Workload,
  get_workload,
  workload_options,
)
from metaoptimize_optax.experiments.workloads.cifar10_data import random_crop_flip
from metaoptimize_optax.experiments.workloads.continual_mnist1d import task_permutation
from metaoptimize_optax.experiments.workloads.mnist1d_data import load_mnist1d
from metaoptimize_optax.experiments.workloads.sampling import epoch_batch_indices
from metaoptimize_optax.experiments.workloads.stdlib_text import (
  DEFAULT_FILES,
  load_stdlib_text,
  stdlib_dir,
)
from metaoptimize_optax.experiments.workloads.tracking import target_weights

TINY_MNIST = {"num_samples": 300, "batch_size": 16}
TINY_LM = {"dim": 16, "n_layers": 1, "n_heads": 2, "batch_size": 4, "eval_sequences": 8}
TINY_OPTIONS = {
  "noisy_quadratic": {"dim": 10, "batch_size": 2},
  "tracking": {"batch_size": 3, "eval_size": 50},
  "mnist1d_mlp": {**TINY_MNIST, "hidden_sizes": [8, 8]},
  "mnist1d_cnn": {**TINY_MNIST, "channels": 4},
  "continual_mnist1d": {**TINY_MNIST, "task_steps": 5, "hidden_sizes": [8]},
  "input_permuted_mnist1d": {**TINY_MNIST, "task_steps": 5, "hidden_sizes": [8]},
  "slowly_changing_regression": {"batch_size": 3, "flip_every": 5, "eval_size": 50},
  "drifting_regression": {"batch_size": 3, "hidden_sizes": [4], "eval_size": 50},
  "charlm": {**TINY_LM, "seq_len": 16},
  "cifar10_resnet18": {"batch_size": 4, "width": 4, "eval_batch_size": 8},
  "tinystories_llama": {**TINY_LM, "seq_len": 8, "vocab_size": 64},
}
# Agent workloads (their data come from acting; tested in test_rl.py).
AGENT_WORKLOADS = {"ppo"}
CIFAR_PER_BATCH = 6


def fast_compiling_jit(fn):
  """``jax.jit`` without XLA's backend optimisations: compiles the tiny test models
  about twice as fast on CPU (compilation dominates these tests)."""
  return jax.jit(fn, compiler_options={"xla_backend_optimization_level": 0})


SHARD_TOKENS = 500


# ----------------------------------------------------------------------------
# Tiny data files in the real formats.


def write_cifar10(directory, per_batch=CIFAR_PER_BATCH, seed=0):
  """Writes data_batch_1..5 and test_batch as CIFAR-10 python pickles."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    batch = {
      b"batch_label": name.encode(),
      b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
      b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
      b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
    }
    with open(os.path.join(directory, name), "wb") as f:
      pickle.dump(batch, f, protocol=2)
  return directory


def write_shards(directory, tokens_per_shard):
  """Writes llama2.c-style uint16 shards; shard k holds tokens of range k."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(0)
  for k, (low, high) in enumerate(tokens_per_shard):
    tokens = rng.integers(low, high, SHARD_TOKENS).astype(np.uint16)
    tokens.tofile(os.path.join(directory, f"data{k:02d}.bin"))
  return directory


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
  return write_cifar10(str(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"))


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
  # Test shard (first) holds tokens 0..9, the training shards 10..63.
  return write_shards(str(tmp_path_factory.mktemp("tinystories")), [(0, 10), (10, 64), (10, 64)])


def tiny_options(name, cifar_dir, shards_dir):
  paths = {"cifar10_resnet18": cifar_dir, "tinystories_llama": shards_dir}
  return {**TINY_OPTIONS[name], **({"data_path": paths[name]} if name in paths else {})}


@pytest.fixture(scope="module")
def built(cifar_dir, shards_dir):
  """Tiny workloads, built once per module."""
  return {
    name: get_workload(name, **tiny_options(name, cifar_dir, shards_dir)) for name in TINY_OPTIONS
  }


def assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


def batches_differ(a, b):
  return any(not np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------
# Registry and options.


def test_every_workload_has_tiny_options():
  assert set(TINY_OPTIONS) == set(WORKLOADS) - AGENT_WORKLOADS


def test_unknown_workload_lists_valid_names():
  with pytest.raises(ValueError, match="unknown workload 'nope'") as e:
    get_workload("nope")
  for name in WORKLOADS:
    assert name in str(e.value)


def test_unknown_option_is_named_with_accepted_ones():
  with pytest.raises(TypeError, match="bogus") as e:
    get_workload("tracking", bogus=1)
  assert "flip_every" in str(e.value) and "batch_size" in str(e.value)


def test_missing_required_option():
  with pytest.raises(TypeError, match="requires option.*data_path"):
    get_workload("cifar10_resnet18")


@pytest.mark.parametrize("value", [0, -3, 2.5, "8", True])
def test_bad_option_value_is_named(value):
  with pytest.raises(ValueError, match="batch_size"):
    get_workload("mnist1d_mlp", batch_size=value)


def test_options_have_small_defaults():
  for name in set(WORKLOADS) - AGENT_WORKLOADS:
    opts = workload_options(name)
    assert "batch_size" in opts
  ppo = workload_options("ppo")  # PureJaxRL's CartPole defaults.
  assert (ppo["num_envs"], ppo["num_steps"], ppo["update_epochs"], ppo["num_minibatches"]) == (
    4,
    128,
    4,
    4,
  )
  mnist = workload_options("mnist1d_mlp")
  assert mnist["num_samples"] == 5000 and mnist["train_split"] == 0.8  # 4000 / 1000.
  charlm = workload_options("charlm")
  assert (charlm["dim"], charlm["n_layers"], charlm["n_heads"], charlm["seq_len"]) == (64, 2, 4, 64)
  llama = workload_options("tinystories_llama")
  assert (llama["dim"], llama["n_layers"], llama["n_heads"]) == (288, 6, 6)
  assert (llama["vocab_size"], llama["seq_len"]) == (32000, 256)


# ----------------------------------------------------------------------------
# Every workload.


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_train_batch_is_a_pure_function_of_seed_and_step(built, name):
  w = built[name]
  assert isinstance(w, Workload) and w.name == name
  batch = w.train_batch(3, 7)
  assert_batches_equal(batch, w.train_batch(3, 7))
  assert batches_differ(batch, w.train_batch(3, 8))
  assert batches_differ(batch, w.train_batch(4, 7))
  sizes = {v.shape[0] for v in batch.values()}
  assert sizes == {TINY_OPTIONS[name]["batch_size"]}
  for v in batch.values():
    assert isinstance(v, np.ndarray)
    assert v.dtype in (np.float32, np.int32, np.uint8)


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_eval_batches(built, name):
  w = built[name]
  train_keys = w.train_batch(0, 0).keys()
  evals = w.eval_batches(0, 0)
  assert evals and "test" in evals
  for batches in evals.values():
    assert len(batches) >= 1
    for batch in batches:
      assert batch.keys() == train_keys
      assert len({v.shape[0] for v in batch.values()}) == 1
  for split, batches in w.eval_batches(0, 0).items():
    for a, b in zip(batches, evals[split], strict=True):
      assert_batches_equal(a, b)


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_init_loss_grad_sgd_step_and_eval(built, name):
  w = built[name]

  @fast_compiling_jit  # One compilation per workload.
  def run(key, batch, eval_batch):
    params, model_state = w.init(key)
    (loss, (metrics, new_state)), grads = jax.value_and_grad(w.loss, has_aux=True)(
      params, model_state, batch, True
    )
    new_params = jax.tree.map(lambda p, g: p - 1e-2 * g, params, grads)
    eval_loss, (eval_metrics, eval_state) = w.loss(new_params, new_state, eval_batch, False)
    return params, model_state, new_state, loss, metrics, grads, eval_loss, eval_metrics, eval_state

  eval_batch = next(iter(w.eval_batches(0, 0).values()))[0]
  out = run(jax.random.PRNGKey(0), w.train_batch(0, 0), eval_batch)
  params, state0, state1, loss, metrics, grads, eval_loss, eval_metrics, eval_state = out
  for leaf in jax.tree.leaves(params):
    assert leaf.dtype == jnp.float32
  for tree in (params, state0):
    for path, _ in jax.tree_util.tree_leaves_with_path(tree):
      assert all(isinstance(k.key, str) for k in path)  # Checkpoint-friendly keys.
  assert set(metrics) == set(w.metrics) and "loss" in w.metrics
  assert loss.shape == () and np.isfinite(loss)
  assert all(np.isfinite(v) for v in metrics.values())
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert any(np.any(g != 0) for g in jax.tree.leaves(grads))
  assert jax.tree.structure(state1) == jax.tree.structure(state0)
  assert np.isfinite(eval_loss) and set(eval_metrics) == set(w.metrics)
  for a, b in zip(jax.tree.leaves(eval_state), jax.tree.leaves(state1), strict=True):
    np.testing.assert_array_equal(a, b)  # Evaluation leaves the model state alone.
  if name == "cifar10_resnet18":  # Training updates every BatchNorm running statistic.
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state0)]
    assert paths and all(p.endswith(("['mean']", "['var']")) for p in paths)
    for a, b in zip(jax.tree.leaves(state0), jax.tree.leaves(state1), strict=True):
      assert not np.allclose(a, b)
  # Same key, same initial parameters; another key, other ones (where keyed).
  again = run(jax.random.PRNGKey(0), w.train_batch(0, 0), eval_batch)
  jax.tree.map(np.testing.assert_array_equal, params, again[0])
  other = run(jax.random.PRNGKey(1), w.train_batch(0, 0), eval_batch)[0]
  keyed = name not in ("noisy_quadratic", "tracking")  # These start at fixed points.
  pairs = zip(jax.tree.leaves(params), jax.tree.leaves(other), strict=True)
  assert any(not np.array_equal(a, b) for a, b in pairs) == keyed


# ----------------------------------------------------------------------------
# Sampling.


def test_epochs_visit_every_example_once():
  n, batch_size = 50, 8  # 6 batches per epoch; 2 examples skipped each epoch.
  epoch0 = np.concatenate([epoch_batch_indices(5, s, n, batch_size) for s in range(6)])
  epoch1 = np.concatenate([epoch_batch_indices(5, s, n, batch_size) for s in range(6, 12)])
  assert len(set(epoch0)) == len(set(epoch1)) == 48
  assert not np.array_equal(epoch0, epoch1)
  with pytest.raises(ValueError, match="batch_size"):
    epoch_batch_indices(0, 0, 4, 8)
  with pytest.raises(ValueError, match="step"):
    epoch_batch_indices(0, -1, 50, 8)


# ----------------------------------------------------------------------------
# Noisy quadratic and tracking.


def test_noisy_quadratic_eval_is_the_expected_loss(built):
  w = built["noisy_quadratic"]
  params, state = w.init(jax.random.PRNGKey(0))
  h = 1.0 / np.arange(1, 11)
  np.testing.assert_allclose(params["w"], 1.0 / np.sqrt(h), rtol=1e-6)  # Fixed, nonzero start.
  (batch,) = w.eval_batches(0, 0)["test"]
  value, _ = w.loss(params, state, batch, False)
  np.testing.assert_allclose(value, 0.5 * np.sum(h * (1.0 / h + 1.0 / h)), rtol=1e-5)
  # A Monte-Carlo average of training losses approaches the expectation.
  batches = [w.train_batch(0, s) for s in range(500)]
  samples = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  np.testing.assert_allclose(w.loss(params, state, samples, True)[0], value, rtol=0.1)


def test_tracking_flips_one_relevant_sign_every_20_steps():
  previous = target_weights(0, 0)
  assert set(np.abs(previous[:5])) == {1.0} and not previous[5:].any()
  for block in range(1, 30):
    for step in range(20 * block - 19, 20 * block):  # Constant within a block.
      np.testing.assert_array_equal(target_weights(0, step), previous)
    current = target_weights(0, 20 * block)
    changed = np.flatnonzero(current != previous)
    assert len(changed) == 1 and changed[0] < 5
    assert current[changed[0]] == -previous[changed[0]]
    previous = current
  # Also across the boundary of the generator blocks of 1024 flips.
  for flips in (1023, 1024, 1025, 2048):
    a, b = target_weights(0, 20 * flips - 1), target_weights(0, 20 * flips)
    assert np.sum(a != b) == 1
  assert not np.array_equal(
    [target_weights(0, 20 * k) for k in range(10)], [target_weights(1, 20 * k) for k in range(10)]
  )


def test_tracking_batches_follow_the_current_target(built):
  w = built["tracking"]
  for step in (0, 19, 20, 321):
    batch = w.train_batch(2, step)
    np.testing.assert_allclose(batch["y"], batch["x"] @ target_weights(2, step), rtol=1e-5)
    (test,) = w.eval_batches(2, step)["test"]
    np.testing.assert_allclose(test["y"], test["x"] @ target_weights(2, step), rtol=1e-5)
  params, state = w.init(jax.random.PRNGKey(0))
  assert not params["w"].any()
  perfect = {"w": jnp.asarray(target_weights(2, 45))}
  assert w.loss(perfect, state, w.train_batch(2, 45), True)[0] < 1e-10


# ----------------------------------------------------------------------------
# MNIST-1D.


def test_mnist1d_data(built):
  data = load_mnist1d(num_samples=300)
  assert data.x_train.shape == (240, 40) and data.x_test.shape == (60, 40)
  assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
  assert set(np.unique(data.y_train)) == set(range(10))
  assert not data.x_train.flags.writeable
  evals = built["mnist1d_mlp"].eval_batches(0, 0)
  assert sum(len(b["y"]) for b in evals["train"]) == 240
  assert sum(len(b["y"]) for b in evals["test"]) == 60


def test_mnist1d_generation_keeps_global_rng_state_and_caches_on_disk(tmp_path):
  np.random.seed(123)  # noqa: NPY002
  random.seed(123)
  expected = (np.random.random(), random.random())  # noqa: NPY002
  np.random.seed(123)  # noqa: NPY002
  random.seed(123)
  generated = load_mnist1d(num_samples=100, cache_dir=tmp_path / "a")
  assert (np.random.random(), random.random()) == expected  # noqa: NPY002
  assert load_mnist1d(num_samples=100, cache_dir=tmp_path / "a") is generated  # Memoised.
  (cached,) = (tmp_path / "a").glob("*.npz")
  with np.load(cached) as f:
    np.testing.assert_array_equal(f["x_train"], generated.x_train)
    np.testing.assert_array_equal(f["y_test"], generated.y_test)
    arrays = {k: f[k] for k in f.files}
  # A new cache directory holding a (doctored) file: the file is read, not regenerated.
  (tmp_path / "b").mkdir()
  np.savez(tmp_path / "b" / cached.name, **{**arrays, "y_test": np.zeros_like(arrays["y_test"])})
  from_disk = load_mnist1d(num_samples=100, cache_dir=str(tmp_path / "b"))
  np.testing.assert_array_equal(from_disk.x_train, generated.x_train)
  assert not from_disk.y_test.any() and generated.y_test.any()


@pytest.mark.slow
def test_mnist1d_default_is_the_standard_split():
  data = load_mnist1d()
  assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)


def test_continual_mnist1d_permutes_labels_every_task(built):
  w, base = built["continual_mnist1d"], built["mnist1d_mlp"]  # Same data stream.
  k = TINY_OPTIONS["continual_mnist1d"]["task_steps"]
  perms = [task_permutation(0, t) for t in range(4)]
  for perm in perms:
    assert sorted(perm) == list(range(10))
  assert len({tuple(p) for p in perms}) == 4
  for step in range(4 * k):
    batch, plain = w.train_batch(0, step), base.train_batch(0, step)
    np.testing.assert_array_equal(batch["x"], plain["x"])
    np.testing.assert_array_equal(batch["y"], perms[step // k][plain["y"]])
  data = load_mnist1d(num_samples=300)
  for step in (0, k - 1, k, 3 * k + 2):
    test = w.eval_batches(0, step)["test"]
    labels = np.concatenate([b["y"] for b in test])
    np.testing.assert_array_equal(labels, perms[step // k][data.y_test])


# ----------------------------------------------------------------------------
# Character-level language model.


def test_charlm_reads_standard_library_text(built):
  corpus = load_stdlib_text()
  assert len(corpus.files) >= 15 and set(corpus.files) <= set(DEFAULT_FILES)
  assert list(corpus.files) == sorted(corpus.files)
  with open(os.path.join(stdlib_dir(), corpus.files[0]), "rb") as f:
    first = f.read()
  assert corpus.train[0].tobytes() + corpus.test[0].tobytes() == first
  assert len(corpus.train[0]) == int(0.9 * len(first))
  batch = built["charlm"].train_batch(0, 0)
  np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
  text = bytes(batch["inputs"][0].astype(np.uint8)).decode("utf-8", errors="replace")
  assert any(text[:8] in open(os.path.join(stdlib_dir(), f)).read() for f in corpus.files)
  assert batch["inputs"].max() < 256


def test_charlm_missing_files_are_skipped():
  corpus = load_stdlib_text(["abc.py", "no_such_module_xyz.py"])
  assert corpus.files == ("abc.py",)
  with pytest.raises(FileNotFoundError, match="no_such_module_xyz"):
    load_stdlib_text(["no_such_module_xyz.py"])


def test_transformer_is_causal():
  config = TransformerConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2)
  model = PureModel.from_constructor(lambda rngs: Transformer(config, rngs=rngs))

  @fast_compiling_jit
  def logits(tokens):
    params, state = model.init(jax.random.PRNGKey(0))
    return jax.vmap(lambda t: model.apply(params, state, t[None])[0][0])(tokens)

  tokens = jnp.arange(12, dtype=jnp.int32)[None] % 32
  a, b = logits(jnp.concatenate([tokens, tokens.at[0, 8].set(31)]))
  a, b = a[None], b[None]
  assert a.shape == (1, 12, 32)
  np.testing.assert_allclose(a[:, :8], b[:, :8], atol=1e-6)
  assert not np.allclose(a[:, 8:], b[:, 8:])


def test_llama2c_15m_parameter_count():
  config = TransformerConfig(vocab_size=32000, dim=288, n_layers=6, n_heads=6)
  abstract = jax.eval_shape(
    PureModel.from_constructor(lambda rngs: Transformer(config, rngs=rngs)).init,
    jax.random.PRNGKey(0),
  )
  assert sum(x.size for x in jax.tree.leaves(abstract[0])) == 15_191_712
  assert config.ffn_dim == 768


# ----------------------------------------------------------------------------
# CIFAR-10.


def test_cifar10_loader_reads_the_python_pickle_format(built, cifar_dir):
  with open(os.path.join(cifar_dir, "data_batch_2"), "rb") as f:
    raw = pickle.load(f, encoding="bytes")
  batches = built["cifar10_resnet18"].eval_batches(0, 0)["train"]
  batch = {k: np.concatenate([b[k] for b in batches]) for k in ("image", "label")}
  n = CIFAR_PER_BATCH
  assert batch["image"].shape == (5 * n, 32, 32, 3) and batch["image"].dtype == np.uint8
  image = batch["image"][n]  # First image of data_batch_2.
  row, col = 5, 17
  for channel in range(3):
    assert image[row, col, channel] == raw[b"data"][0, channel * 1024 + row * 32 + col]
  assert batch["label"][n] == raw[b"labels"][0]
  test = built["cifar10_resnet18"].eval_batches(0, 0)["test"]
  assert sum(len(b["label"]) for b in test) == n


def test_cifar10_parent_directory_is_accepted(cifar_dir):
  w = get_workload("cifar10_resnet18", data_path=os.path.dirname(cifar_dir), batch_size=4, width=4)
  assert w.train_batch(0, 0)["image"].shape == (4, 32, 32, 3)


def test_random_crop_flip():
  rng = np.random.default_rng(0)
  images = rng.integers(1, 256, (16, 32, 32, 3), dtype=np.uint8)
  out = random_crop_flip(images, np.random.default_rng(1))
  np.testing.assert_array_equal(out, random_crop_flip(images, np.random.default_rng(1)))
  assert out.shape == images.shape and out.dtype == np.uint8
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  flips = 0
  for i in range(16):
    windows = [padded[i, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
    plain = any(np.array_equal(out[i], w) for w in windows)
    mirrored = any(np.array_equal(out[i], w[:, ::-1]) for w in windows)
    assert plain or mirrored
    flips += mirrored and not plain
  assert 0 < flips < 16


def test_cifar10_missing_data_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist.*data_batch_1.*b'data'"):
    get_workload("cifar10_resnet18", data_path=str(tmp_path / "nowhere"))
  write_cifar10(str(tmp_path))
  os.remove(tmp_path / "test_batch")
  with pytest.raises(FileNotFoundError, match=r"\['test_batch'\] missing"):
    get_workload("cifar10_resnet18", data_path=str(tmp_path))


def test_cifar10_rejects_pickles_with_code(tmp_path):
  write_cifar10(str(tmp_path))
  with open(tmp_path / "data_batch_1", "wb") as f:
    pickle.dump({b"data": os.getcwd, b"labels": []}, f)
  w = get_workload("cifar10_resnet18", data_path=str(tmp_path), batch_size=2, width=4)
  with pytest.raises(pickle.UnpicklingError, match="posix.getcwd|nt.getcwd"):
    w.train_batch(0, 0)


# ----------------------------------------------------------------------------
# TinyStories.


def test_tinystories_holds_out_the_first_shard(built):
  w = built["tinystories_llama"]
  for step in range(5):
    batch = w.train_batch(0, step)
    assert batch["inputs"].shape == (4, 8) and batch["inputs"].dtype == np.int32
    assert batch["inputs"].min() >= 10 and batch["targets"].min() >= 10
    np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
  evals = w.eval_batches(0, 0)
  assert max(b["inputs"].max() for b in evals["test"]) < 10
  assert min(b["inputs"].min() for b in evals["train"]) >= 10
  assert sum(len(b["inputs"]) for b in evals["test"]) == 8


def test_tinystories_single_shard_and_bad_tokens(tmp_path):
  write_shards(str(tmp_path), [(0, 100)])
  opts = {**TINY_OPTIONS["tinystories_llama"], "data_path": str(tmp_path)}
  with pytest.raises(ValueError, match="exceeds vocab_size 64"):
    get_workload("tinystories_llama", **opts).train_batch(0, 0)
  w = get_workload("tinystories_llama", **{**opts, "vocab_size": 100})
  (test,) = w.eval_batches(0, 0)["test"]
  tokens = np.fromfile(tmp_path / "data00.bin", dtype=np.uint16)
  np.testing.assert_array_equal(test["inputs"][0], tokens[450:458])  # Last 10% held out.


def test_tinystories_missing_data_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist.*uint16"):
    get_workload("tinystories_llama", data_path=str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match=r"no \*.bin shards.*uint16"):
    get_workload("tinystories_llama", data_path=str(tmp_path))


# ----------------------------------------------------------------------------
# Full-size models (slow on CPU).


@pytest.mark.slow
def test_default_sizes_on_tiny_files(tmp_path):
  cifar = get_workload(
    "cifar10_resnet18", data_path=write_cifar10(str(tmp_path / "cifar"), per_batch=32)
  )
  shards = tmp_path / "shards"
  shards.mkdir()
  for k in range(2):
    tokens = np.random.default_rng(k).integers(0, 32000, 3000).astype(np.uint16)
    tokens.tofile(shards / f"data{k:02d}.bin")
  llama = get_workload("tinystories_llama", data_path=str(shards), batch_size=4)
  for w, num_params in ((cifar, 11_173_962), (llama, 15_191_712)):
    params, state = jax.jit(w.init)(jax.random.PRNGKey(0))
    assert sum(x.size for x in jax.tree.leaves(params)) == num_params
    grad = jax.jit(jax.value_and_grad(w.loss, has_aux=True), static_argnums=3)
    (loss, _), grads = grad(params, state, w.train_batch(0, 0), True)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
