"""Over two processes (``jax.distributed`` on 127.0.0.1, gloo CPU collectives), a
data-parallel run learns the same rates and meta-parameters as one process, on a
mesh of Auto axes and on one of Explicit axes."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    process_id, num_processes, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if num_processes > 1:
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
      jax.distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id)
    import jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import metaoptimize_optax as mo

    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    params = {"l1": {"w": jax.random.normal(k1, (8, 16)) / 3, "b": jnp.zeros(16)},
              "l2": {"w": jax.random.normal(k2, (16, 4)) / 4, "b": jnp.zeros(4)}}
    x, y = jax.random.normal(k3, (32, 8)), jax.random.normal(k4, (32, 4))

    def loss(p, x, y):
      if not jax.sharding.get_abstract_mesh().empty:  # FSDP: gather the weights to use them.
        p = jax.tree.map(lambda a: jax.sharding.reshard(a, P()), p)
      h = jnp.tanh(x @ p["l1"]["w"] + p["l1"]["b"])
      return jnp.mean((h @ p["l2"]["w"] + p["l2"]["b"] - y) ** 2)

    tx = mo.adamw(1e-3, meta="adam", meta_learning_rate=3e-2, blocks="per_layer",
                  meta_parameters={"b2": "logit", "weight_decay": "log"})

    def train(mesh, weights):
      replicated = NamedSharding(mesh, P())
      batch = NamedSharding(mesh, P("data"))
      rows = len(x) // num_processes
      local = slice(process_id * rows, (process_id + 1) * rows)
      xg = jax.make_array_from_process_local_data(batch, np.asarray(x[local]), x.shape)
      yg = jax.make_array_from_process_local_data(batch, np.asarray(y[local]), y.shape)
      p = jax.device_put(params, NamedSharding(mesh, weights))
      state = jax.jit(tx.init)(p)

      @jax.jit
      def step(p, s, x, y):
        u, s = tx.update(jax.grad(loss)(p, x, y), s, p)
        return optax.apply_updates(p, u), s

      for _ in range(6):
        p, state = step(p, state, xg, yg)
      return {"rates": {k: float(v) for k, v in mo.learning_rates(state).items()},
              "meta": {k: float(v) for k, v in mo.meta_parameters(state).items()}}

    # Auto axes (jax.sharding.Mesh) and replicated weights, then Explicit axes
    # (jax.make_mesh's default) and FSDP: each weight's rows over the devices.
    out = {"auto": train(Mesh(np.array(jax.devices()), ("data",)), P())}
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    with jax.set_mesh(mesh):
      out["explicit"] = train(mesh, P("data"))
    out.update(devices=jax.device_count(), processes=jax.process_count())
    print("RESULT " + json.dumps(out), flush=True)
""")


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _result(stdout):
  line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT ") :])


def test_two_processes_equal_one():
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
  port = str(_free_port())
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", SCRIPT, str(i), "2", port],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  outs = []
  for proc in procs:
    try:
      stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("the two-process run did not finish in 300 s")
    assert proc.returncode == 0, stderr[-3000:]
    outs.append(_result(stdout))
  single = subprocess.run(
    [sys.executable, "-c", SCRIPT, "0", "1", "0"],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=True,
  )
  one = _result(single.stdout)
  assert [o["processes"] for o in outs] == [2, 2] and outs[0]["devices"] == 4
  assert one["processes"] == 1
  for out in outs:
    for mesh in ("auto", "explicit"):
      for kind in ("rates", "meta"):
        got, want = out[mesh][kind], one["auto"][kind]
        assert set(got) == set(want)
        for name, value in want.items():
          np.testing.assert_allclose(got[name], value, rtol=1e-5, err_msg=f"{mesh} {kind} {name}")
  assert one["explicit"] == one["auto"]
  assert one["auto"]["meta"]["b2"] != pytest.approx(0.999, abs=1e-5)  # it was learned
