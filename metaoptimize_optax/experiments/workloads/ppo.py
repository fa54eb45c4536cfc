"""PPO on a gymnax environment: an agent workload (reinforcement learning).

Written after PureJaxRL's ``ppo.py`` (Lu et al., 2022, "Discovered policy
optimisation"; github.com/luchris429/purejaxrl) with its default CartPole
settings: 4 environments x 128 steps a rollout, generalized advantage estimation
(gamma 0.99, lambda 0.95), 4 epochs of 4 shuffled minibatches, the clipped
surrogate (0.2) with the clipped value loss (coefficient 0.5) and an entropy
bonus (0.01), and separate actor and critic MLPs (64-64, tanh, orthogonal
init). Each minibatch's gradient is clipped to global norm 0.5 (PureJaxRL's
``clip_by_global_norm``) before the optimizer sees it, for every optimizer.
One iteration is one rollout and its ``update_epochs * num_minibatches`` optimizer
updates, so a run of PureJaxRL's 5e5 environment steps is 976 iterations,
15,616 updates. As in PureJaxRL, an episode's end by time limit is treated as
an end (no bootstrapping).

The environments come from gymnax (the ``rl`` extra), stepped with the
observation flattened. Episodic returns are tracked per environment; an
iteration's ``return`` is the mean return of the episodes that ended in it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metaoptimize_optax._extras import missing_extra
from metaoptimize_optax.experiments.workloads import options
from metaoptimize_optax.experiments.workloads.base import Agent, AgentWorkload

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _dense(key: jax.Array, n_in: int, n_out: int, scale: float) -> dict[str, jax.Array]:
  kernel = jax.nn.initializers.orthogonal(scale)(key, (n_in, n_out), jnp.float32)
  return {"kernel": kernel, "bias": jnp.zeros((n_out,), jnp.float32)}


def _mlp_init(key: jax.Array, sizes: list[int], last_scale: float) -> dict[str, Any]:
  keys = jax.random.split(key, len(sizes) - 1)
  layers = {}
  for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
    last = i == len(sizes) - 2
    layers[f"dense_{i}"] = _dense(k, n_in, n_out, last_scale if last else math.sqrt(2.0))
  return layers


def _mlp_apply(layers: dict[str, Any], x: jax.Array, activation) -> jax.Array:
  n = len(layers)
  for i in range(n):
    x = x @ layers[f"dense_{i}"]["kernel"] + layers[f"dense_{i}"]["bias"]
    if i < n - 1:
      x = activation(x)
  return x


class Transition(NamedTuple):
  done: jax.Array
  action: jax.Array
  value: jax.Array
  reward: jax.Array
  log_prob: jax.Array
  obs: jax.Array


class Carry(NamedTuple):
  params: Any
  opt_state: Any
  env_state: Any
  obs: jax.Array
  key: jax.Array
  episode_return: jax.Array  # The running return of each environment's episode.
  last_return: jax.Array  # The latest iteration's mean return of ended episodes (NaN: none yet).


def ppo(
  *,
  env: str = "CartPole-v1",
  num_envs: int = 4,
  num_steps: int = 128,
  update_epochs: int = 4,
  num_minibatches: int = 4,
  discount: float = 0.99,
  gae_lambda: float = 0.95,
  clip_eps: float = 0.2,
  ent_coef: float = 0.01,
  vf_coef: float = 0.5,
  max_grad_norm: float = 0.5,
  hidden: int = 64,
  activation: str = "tanh",
) -> AgentWorkload:
  """PPO (PureJaxRL's defaults) on the gymnax environment ``env``.

  Args:
    env: a gymnax environment with discrete actions (``"CartPole-v1"``,
      ``"Acrobot-v1"``, ``"Catch-bsuite"``, a MinAtar game, ...).
    num_envs: environments stepped in parallel.
    num_steps: steps of each environment per rollout.
    update_epochs: passes over each rollout.
    num_minibatches: minibatches per pass (they split ``num_envs * num_steps``).
    discount: the return's discount (PPO's gamma; not MetaOptimize's).
    gae_lambda: the advantage estimate's lambda.
    clip_eps: the surrogate's and the value loss's clipping.
    ent_coef: the entropy bonus's weight.
    vf_coef: the value loss's weight.
    max_grad_norm: each minibatch gradient's global norm is clipped to this
      before the optimizer (0: no clipping).
    hidden: the width of the actor's and the critic's two hidden layers.
    activation: ``"tanh"`` or ``"relu"``.
  """
  num_envs = options.positive_int("num_envs", num_envs)
  num_steps = options.positive_int("num_steps", num_steps)
  update_epochs = options.positive_int("update_epochs", update_epochs)
  num_minibatches = options.positive_int("num_minibatches", num_minibatches)
  hidden = options.positive_int("hidden", hidden)
  discount = options.fraction("discount", discount) if discount != 1 else 1.0
  gae_lambda = options.non_negative_float("gae_lambda", gae_lambda)
  clip_eps = options.non_negative_float("clip_eps", clip_eps)
  ent_coef = options.non_negative_float("ent_coef", ent_coef)
  vf_coef = options.non_negative_float("vf_coef", vf_coef)
  max_grad_norm = options.non_negative_float("max_grad_norm", max_grad_norm)
  act = ACTIVATIONS[options.one_of("activation", activation, tuple(ACTIVATIONS))]
  batch_size = num_envs * num_steps
  if batch_size % num_minibatches:
    raise ValueError(
      f"option num_minibatches={num_minibatches} must divide num_envs * num_steps = {batch_size}"
    )
  minibatch_size = batch_size // num_minibatches
  environment, env_params = _make_env(env)
  obs_size = int(np.prod(environment.observation_space(env_params).shape))
  action_space = environment.action_space(env_params)
  if not hasattr(action_space, "n"):
    raise ValueError(f"option env={env!r} has continuous actions; this PPO takes discrete ones")
  num_actions = int(action_space.n)

  def init(key):
    actor_key, critic_key = jax.random.split(key)
    params = {
      "actor": _mlp_init(actor_key, [obs_size, hidden, hidden, num_actions], 0.01),
      "critic": _mlp_init(critic_key, [obs_size, hidden, hidden, 1], 1.0),
    }
    return params, {}

  def policy(params, obs):
    logits = _mlp_apply(params["actor"], obs, act)
    value = _mlp_apply(params["critic"], obs, act)[..., 0]
    return jax.nn.log_softmax(logits), value

  def env_step(carry: Carry, _):
    params, key = carry.params, carry.key
    key, act_key, step_key = jax.random.split(key, 3)
    log_probs, value = policy(params, carry.obs)
    action = jax.random.categorical(act_key, log_probs)
    log_prob = jnp.take_along_axis(log_probs, action[:, None], axis=-1)[:, 0]
    step_keys = jax.random.split(step_key, num_envs)
    obs, env_state, reward, terminated, truncated, _ = jax.vmap(
      environment.step, in_axes=(0, 0, 0, None)
    )(step_keys, carry.env_state, action, env_params)
    done = jnp.logical_or(terminated, truncated)
    episode_return = carry.episode_return + reward
    ended = (jnp.sum(jnp.where(done, episode_return, 0.0)), jnp.sum(done))
    transition = Transition(done, action, value, reward, log_prob, carry.obs)
    carry = carry._replace(
      env_state=env_state,
      obs=_flat(obs, num_envs),
      key=key,
      episode_return=jnp.where(done, 0.0, episode_return),
    )
    return carry, (transition, ended)

  def loss(params, batch):
    traj, adv, targets = batch
    log_probs, value = policy(params, traj.obs)
    log_prob = jnp.take_along_axis(log_probs, traj.action[:, None], axis=-1)[:, 0]
    value_clipped = traj.value + jnp.clip(value - traj.value, -clip_eps, clip_eps)
    value_loss = 0.5 * jnp.mean(
      jnp.maximum(jnp.square(value - targets), jnp.square(value_clipped - targets))
    )
    ratio = jnp.exp(log_prob - traj.log_prob)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    actor_loss = -jnp.mean(
      jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    )
    entropy = -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))
    return actor_loss + vf_coef * value_loss - ent_coef * entropy

  def agent(init_opt, update) -> Agent:
    def minibatch_update(state, batch):
      params, opt_state = state
      value, grads = jax.value_and_grad(loss)(params, batch)
      if max_grad_norm:
        norm = optax.global_norm(grads)
        grads = jax.tree.map(lambda g: g * jnp.minimum(1.0, max_grad_norm / norm), grads)
      updates, opt_state = update(
        grads, opt_state, params, value_fn=lambda p: loss(p, batch), value=value
      )
      params = optax.apply_updates(params, updates)
      return (params, opt_state), value

    def epoch(state, key):
      params, opt_state, batch = state
      order = jax.random.permutation(key, batch_size)
      shuffled = jax.tree.map(
        lambda x: x[order].reshape((num_minibatches, minibatch_size, *x.shape[1:])), batch
      )
      (params, opt_state), losses = jax.lax.scan(minibatch_update, (params, opt_state), shuffled)
      return (params, opt_state, batch), losses

    def start(key):
      init_key, reset_key, key = jax.random.split(key, 3)
      params, _ = init(init_key)
      obs, env_state = jax.vmap(environment.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params
      )
      return Carry(
        params=params,
        opt_state=init_opt(params),
        env_state=env_state,
        obs=_flat(obs, num_envs),
        key=key,
        episode_return=jnp.zeros((num_envs,), jnp.float32),
        last_return=jnp.asarray(jnp.nan, jnp.float32),
      )

    def iterate(carry: Carry):
      carry, (traj, (ended_sum, ended_count)) = jax.lax.scan(
        env_step, carry, None, length=num_steps
      )
      _, last_value = policy(carry.params, carry.obs)
      adv = advantages(traj.reward, traj.value, traj.done, last_value, discount, gae_lambda)
      targets = adv + traj.value
      batch = jax.tree.map(lambda x: x.reshape((batch_size, *x.shape[2:])), (traj, adv, targets))
      key, *epoch_keys = jax.random.split(carry.key, update_epochs + 1)
      (params, opt_state, _), losses = jax.lax.scan(
        epoch, (carry.params, carry.opt_state, batch), jnp.stack(epoch_keys)
      )
      count = jnp.sum(ended_count)
      last_return = jnp.where(count > 0, jnp.sum(ended_sum) / count, carry.last_return)
      carry = carry._replace(params=params, opt_state=opt_state, key=key, last_return=last_return)
      return carry, {"loss": jnp.mean(losses), "return": last_return}

    return Agent(start=start, iterate=iterate, optimizer_state=lambda carry: carry.opt_state)

  return AgentWorkload(
    name=f"ppo_{env}",
    init=init,
    agent=agent,
    updates_per_iteration=update_epochs * num_minibatches,
    default_steps=(500_000 // batch_size) * update_epochs * num_minibatches,
  )


def advantages(
  rewards: jax.Array,
  values: jax.Array,
  dones: jax.Array,
  last_value: jax.Array,
  discount: float,
  gae_lambda: float,
) -> jax.Array:
  """Generalized advantage estimates (Schulman et al., 2016) of a rollout, time first::

    delta_t = r_t + discount * V_{t+1} * (1 - done_t) - V_t
    A_t     = delta_t + discount * gae_lambda * (1 - done_t) * A_{t+1}

  with ``V_T = last_value`` (the value of the observation after the rollout) and
  ``A_T = 0``; ``done_t`` says the episode ended at step ``t``.
  """

  def backward(state, t):
    gae, next_value = state
    reward, value, done = t
    not_done = 1.0 - done.astype(value.dtype)
    delta = reward + discount * next_value * not_done - value
    gae = delta + discount * gae_lambda * not_done * gae
    return (gae, value), gae

  start = (jnp.zeros_like(last_value), last_value)
  _, adv = jax.lax.scan(backward, start, (rewards, values, dones), reverse=True, unroll=16)
  return adv


def _flat(obs: jax.Array, num_envs: int) -> jax.Array:
  return jnp.reshape(obs, (num_envs, -1)).astype(jnp.float32)


def _make_env(name: str):
  """The gymnax environment ``name`` and its default parameters."""
  try:
    import gymnax
  except ModuleNotFoundError as e:  # A ValueError, so that the config error names the workload.
    raise ValueError(str(missing_extra(e, "PPO's environments"))) from None
  if name not in gymnax.registered_envs:
    raise ValueError(
      f"option env={name!r} is not a gymnax environment; gymnax has: "
      f"{', '.join(gymnax.registered_envs)}"
    )
  if name == "MNISTBandit-bsuite":
    raise ValueError("option env='MNISTBandit-bsuite' downloads its data; choose another")
  return gymnax.make(name)
