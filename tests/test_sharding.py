"""Under 8 simulated CPU devices, a sharded run equals a one-device run.

Two kinds of mesh: Auto axes (``jax.sharding.Mesh``) with tensor-parallel
weights and the batch over "data", and Explicit axes (``jax.make_mesh``'s
default, sharding in types, under ``jax.set_mesh``) with FSDP weights (each
weight's rows over "d", gathered where they are used) and the batch over "d".
One subprocess runs every configuration on both.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

CONFIGS = {
  "free-scalar": {},
  "free-per_layer": {"blocks": "per_layer"},
  "free-per_weight": {"blocks": "per_weight"},
  "hvp-scalar-b1": {"hessian": "hvp", "meta_parameters": {"b1": "logit"}},
  "free-per_layer-b2-weight_decay": {
    "blocks": "per_layer",
    "meta_parameters": {"b2": "logit", "weight_decay": "log"},
  },
}

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import metaoptimize_optax as mo

    configs = json.loads(sys.argv[1])
    assert jax.device_count() == 8
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    params = {"l1": {"w": jax.random.normal(k1, (16, 32)) / 4, "b": jnp.zeros(32)},
              "l2": {"w": jax.random.normal(k2, (32, 8)) / 6, "b": jnp.zeros(8)}}
    x, y = jax.random.normal(k3, (64, 16)), jax.random.normal(k4, (64, 8))

    def loss(p, x, y):
      if not jax.sharding.get_abstract_mesh().empty:  # FSDP: gather the weights to use them.
        p = jax.tree.map(lambda a: jax.sharding.reshard(a, P()), p)
      h = jnp.tanh(x @ p["l1"]["w"] + p["l1"]["b"])
      return jnp.mean((h @ p["l2"]["w"] + p["l2"]["b"] - y) ** 2)

    def run(tx, hvp, p, x, y):
      def step(p, s, x, y):
        value_fn = lambda q: loss(q, x, y)
        extra = {"value_fn": value_fn} if hvp else {}
        u, s = tx.update(jax.grad(value_fn)(p), s, p, **extra)
        return optax.apply_updates(p, u), s, u
      s, f = tx.init(p), jax.jit(step)
      for _ in range(5):
        p, s, u = f(p, s, x, y)
      return u, mo.learning_rates(s), mo.meta_parameters(s)

    host = lambda t: [np.asarray(a, np.float64) for a in jax.tree.leaves(t)]
    results = {}
    for name, kwargs in configs.items():
      tx = mo.adamw(1e-3, meta_learning_rate=1e-2, **kwargs)
      hvp = kwargs.get("hessian") == "hvp"
      u1, lr1, meta1 = run(tx, hvp, jax.device_put(params, jax.devices()[0]), x, y)
      runs = {}
      mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
      put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
      p8 = jax.tree.map(lambda a: put(a, P(None, "model") if a.ndim == 2 else P("model")), params)
      runs["auto"] = run(tx, hvp, p8, put(x, P("data", None)), put(y, P("data", None)))
      with jax.set_mesh(jax.make_mesh((8,), ("d",))):
        p8 = jax.tree.map(lambda a: jax.device_put(a, P("d")), params)
        runs["explicit"] = run(tx, hvp, p8, jax.device_put(x, P("d")), jax.device_put(y, P("d")))
      for kind, (u8, lr8, meta8) in runs.items():
        log_error = lambda a, b: max(
          (float(np.max(np.abs(np.log(u) - np.log(v)))) for u, v in zip(host(a), host(b))),
          default=0.0)
        results[f"{name}/{kind}"] = {
          "err_u": max(float(np.max(np.abs(a - b))) for a, b in zip(host(u1), host(u8))),
          "err_lr": log_error(lr1, lr8),
          "err_meta": log_error(meta1, meta8),
          "moved": max(float(np.max(np.abs(np.log(a) - np.log(1e-3)))) for a in host(lr1)),
          "spec": str(u8["l1"]["w"].sharding.spec),
        }
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def sharded_runs():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  out = subprocess.run(
    [sys.executable, "-c", SCRIPT, json.dumps(CONFIGS)],
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
    check=False,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mesh, weights", [("auto", "model"), ("explicit", "d")])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_sharded_equals_single_device(sharded_runs, config, mesh, weights):
  result = sharded_runs[f"{config}/{mesh}"]
  assert result["err_u"] < 1e-6, result
  assert result["err_lr"] < 1e-6, result
  assert result["err_meta"] < 1e-6, result
  assert result["moved"] > 1e-3, result  # the learning rates did change
  assert weights in result["spec"], result  # updates keep the params' sharding
