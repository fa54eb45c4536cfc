"""Under 8 simulated CPU devices, a sharded run equals a one-device run."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import metaoptimize_optax as mo

    hessian, blocks, meta_parameters = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    assert jax.device_count() == 8
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    params = {"l1": {"w": jax.random.normal(k1, (16, 32)) / 4, "b": jnp.zeros(32)},
              "l2": {"w": jax.random.normal(k2, (32, 8)) / 6, "b": jnp.zeros(8)}}
    x, y = jax.random.normal(k3, (64, 16)), jax.random.normal(k4, (64, 8))

    def loss(p, x, y):
      h = jnp.tanh(x @ p["l1"]["w"] + p["l1"]["b"])
      return jnp.mean((h @ p["l2"]["w"] + p["l2"]["b"] - y) ** 2)

    tx = mo.adamw(1e-3, meta_learning_rate=1e-2, blocks=blocks, hessian=hessian,
                  meta_parameters=meta_parameters or None)

    def step(p, s, x, y):
      value_fn = lambda q: loss(q, x, y)
      extra = {"value_fn": value_fn} if hessian == "hvp" else {}
      u, s = tx.update(jax.grad(value_fn)(p), s, p, **extra)
      return optax.apply_updates(p, u), s, u

    def run(p, x, y):
      s, f = tx.init(p), jax.jit(step)
      for _ in range(5):
        p, s, u = f(p, s, x, y)
      return u, (mo.learning_rates(s), mo.meta_parameters(s))

    u1, lr1 = run(jax.device_put(params, jax.devices()[0]), x, y)
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    shard_w = lambda a: jax.device_put(a, NamedSharding(mesh, P(None, "model") if a.ndim == 2
                                                         else P("model")))
    p8 = jax.tree.map(shard_w, params)
    x8 = jax.device_put(x, NamedSharding(mesh, P("data", None)))
    y8 = jax.device_put(y, NamedSharding(mesh, P("data", None)))
    u8, lr8 = run(p8, x8, y8)
    host = lambda t: [np.asarray(a, np.float64) for a in jax.tree.leaves(t)]
    err_u = max(np.max(np.abs(a - b)) for a, b in zip(host(u1), host(u8)))
    err_lr = max(np.max(np.abs(np.log(a) - np.log(b))) for a, b in zip(host(lr1), host(lr8)))
    moved = max(np.max(np.abs(np.log(a) - np.log(1e-3))) for a in host(lr1))
    print(json.dumps({"err_u": float(err_u), "err_lr": float(err_lr), "moved": float(moved),
                      "sharded": str(u8["l1"]["w"].sharding.spec)}))
""")


@pytest.mark.parametrize(
  "hessian, blocks, meta_parameters",
  [
    ("free", "scalar", {}),
    ("free", "per_weight", {}),
    ("hvp", "scalar", {"b1": "logit"}),
    # The same sharding rules again (-m slow).
    pytest.param("free", "per_layer", {}, marks=pytest.mark.slow),
    pytest.param("hvp", "per_layer", {}, marks=pytest.mark.slow),
    pytest.param(
      "free", "per_layer", {"b2": "logit", "weight_decay": "log"}, marks=pytest.mark.slow
    ),
  ],
)
def test_sharded_equals_single_device(hessian, blocks, meta_parameters):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  out = subprocess.run(
    [sys.executable, "-c", SCRIPT, hessian, blocks, json.dumps(meta_parameters)],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["err_u"] < 1e-6, result
  assert result["err_lr"] < 1e-6, result
  assert result["moved"] > 1e-3, result  # the learning rates did change
  assert "model" in result["sharded"]  # updates keep the params' sharding
