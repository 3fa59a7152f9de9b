"""MAPPO (multi-agent PPO with a centralised critic) for hybrid actions.

Structure follows PureJaxRL: ``make_train(env, config)`` returns a pure
``train(key, params) -> (policy_params, metrics)`` whose whole loop — rollout
``lax.scan``, GAE, epochs × minibatches ``lax.scan`` — sits inside one
``lax.scan`` over updates, over ``config.num_envs`` vmapped envs. Hence

    jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, params)      # many seeds
    jax.jit(jax.vmap(train))(keys, stacked_params)                # seeds × a swept axis

train in one compiled call (``params`` is the env's params pytree; a swept
numeric field is a stacked leaf). ``policy_params`` are the actor parameters.

Design decisions
----------------
* **Learning class.** The agents of ``config.agent_class`` (sgin:
  ``"follower"``) share one :class:`~agents.networks.HybridActor`; each agent
  feeds its own observation concatenated with a one-hot agent id. The actor
  is applied to the whole ``(envs, agents, features)`` array (Dense layers
  act on the last axis), so there is no Python loop over agents.
* **Other classes** act with ``fixed_actions(env, params)``; the default is
  the scenario adapter's (sgin: the leader posts ``params.price`` to every DT).
  The leader is not learned in this version (with ``price_mode="leader"`` that
  makes the price constant).
* **Centralised critic.** Global state = all of the learning class's
  observations flattened, plus every other class's observations flattened.
  The critic gives one value *per agent*, ``V(global state, one-hot id)``
  (MAPPO's agent-specific global state), trained on each agent's own reward
  (``team_reward=False``, the default) or on the mean reward of the class
  broadcast to every agent (``team_reward=True``, fully cooperative MAPPO).
* **Reward normalisation.** sgin's follower reward ``Q·D + V·F`` is
  O(10²–10⁴). Rewards are multiplied by ``reward_scale`` and then, with
  ``normalize_rewards=True`` (default), divided by the running standard
  deviation of the (scaled) per-agent rewards seen so far — a Welford/Chan
  batch update of count, mean and variance carried in the scan state (no mean
  subtraction). The normalisation only shapes training; the policy does not
  depend on it, and every reported reward metric is raw.
* **Advantages and done handling.** ``env.step`` auto-resets, so the
  observation after a ``done`` step belongs to the next episode. The critic
  is evaluated on ``info["final_observation"]`` at every step (it equals the
  next observation when the episode goes on): ``δ_t = r_t + γ·(1 −
  terminated_t)·V(final_obs_t) − V(obs_t)`` and ``A_t = δ_t + γλ·(1 −
  done_t)·A_{t+1}`` with ``done = terminated | truncated``. Truncation (the
  horizon) therefore bootstraps from the value of the true last observation
  and termination does not; no trajectory crosses an episode boundary, and
  the last step of each rollout needs no extra bootstrap value.
* **Loss.** Clipped surrogate on per-agent ratios ``exp(log π_new − log
  π_old)`` of the joint hybrid action (log-probs summed over the heads),
  advantages normalised per minibatch, clipped value loss, entropy bonus
  (the hybrid distribution's entropy; for tanh-normal heads the standard
  approximation of ``agents.networks``), one Adam optimiser over actor
  and critic with global-norm clipping and optional linear LR annealing.
* **Masks.** ``env.avail_actions(state, params)[agent_class]`` masks the
  Categorical heads (sgin: invisible LEOs, and offloading when no LEO is
  visible); masks are stored with the rollout and reused in the update.

CPU runtime hazard (jaxlib 0.10.x): on a 2-core CPU, ``jax.jit(jax.vmap(train))``
can wedge in ``block_until_ready`` (every XLA thread idle) unless the process
starts with ``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false``
(read once, at the first compilation; ``compiler_options`` on the jit do not
help, nor does ``--xla_cpu_multi_thread_eigen=false``). The un-vmapped
``train`` has not wedged. ``tests/test_mappo.py`` trains in a subprocess with
that flag.

``make_policy(env, config, policy_params, deterministic=True)`` gives a
policy with the standard signature ``policy(key, obs, state, params) ->
action`` (mode of the distribution, or a sample). ``save_params`` /
``load_params`` serialise parameters with ``flax.serialization`` (atomic
write: temp file then rename).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import optax

from agents import core
from agents.adapters import for_env
from agents.networks import CONTINUOUS_DISTS, HybridActor, ValueCritic, box_bounds, hybrid_heads
from jaxsg.wrappers import scalar_metrics


@dataclasses.dataclass(frozen=True)
class Config:
    """Static MAPPO hyperparameters (hashable; sizes and loop lengths)."""

    num_envs: int = 16
    num_steps: int = 20  # rollout length per env per update
    num_updates: int = 100
    update_epochs: int = 4
    num_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    lr: float = 1e-3  # better than 3e-4 on the small sgin config (64-unit MLPs)
    anneal_lr: bool = True
    max_grad_norm: float = 0.5
    actor_hidden: Sequence[int] = (64, 64)
    critic_hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    continuous_dist: str = "tanh_normal"  # or "beta" (see agents.networks)
    reward_scale: float | None = None  # None: the scenario adapter's scale
    normalize_rewards: bool = True
    team_reward: bool = False
    agent_class: str | None = None  # None: the scenario adapter's learning class

    BOUNDS: ClassVar = dict(
        num_envs=core.COUNT, num_steps=core.COUNT, num_updates=core.COUNT,
        update_epochs=core.COUNT, num_minibatches=core.COUNT, gamma=core.UNIT,
        gae_lambda=core.UNIT, clip_eps=core.POSITIVE, ent_coef=core.NON_NEGATIVE,
        vf_coef=core.NON_NEGATIVE, lr=core.POSITIVE, max_grad_norm=core.POSITIVE,
        reward_scale=core.POSITIVE)

    def __post_init__(self):
        core.check_config(self)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                "Config: field 'num_minibatches' must divide num_envs * num_steps = "
                f"{self.num_envs * self.num_steps}, got {self.num_minibatches}")
        if self.continuous_dist not in CONTINUOUS_DISTS:
            raise ValueError(f"Config: field 'continuous_dist' must be one of "
                             f"{CONTINUOUS_DISTS}, got {self.continuous_dist!r}")
        object.__setattr__(self, "actor_hidden", tuple(int(h) for h in self.actor_hidden))
        object.__setattr__(self, "critic_hidden", tuple(int(h) for h in self.critic_hidden))


class RunningStats(NamedTuple):
    """Running count, mean and variance (Chan et al. parallel update)."""

    count: jnp.ndarray
    mean: jnp.ndarray
    var: jnp.ndarray

    @classmethod
    def create(cls) -> "RunningStats":
        scalar = lambda v: jnp.asarray(v, jnp.float32)
        return cls(scalar(1e-4), scalar(0.0), scalar(1.0))

    def update(self, x: jnp.ndarray) -> "RunningStats":
        b_count = jnp.asarray(x.size, jnp.float32)
        b_mean, b_var = jnp.mean(x), jnp.var(x)
        total = self.count + b_count
        delta = b_mean - self.mean
        mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        return RunningStats(total, mean, m2 / total)


class Transition(NamedTuple):
    obs: jnp.ndarray  # (E, n, d) learning-class observations
    global_obs: jnp.ndarray  # (E, G)
    masks: dict  # {name: (E, n, k)}
    action: dict  # {name: (E, n)}
    log_prob: jnp.ndarray  # (E, n)
    value: jnp.ndarray  # (E, n)
    next_value: jnp.ndarray  # (E, n) V(final observation)
    reward: jnp.ndarray  # (E, n) raw
    terminated: jnp.ndarray  # (E,)
    done: jnp.ndarray  # (E,)
    metrics: dict  # {name: (E,)}


class _Nets(NamedTuple):
    actor: HybridActor
    critic: ValueCritic
    n: int
    obs_dim: int
    global_dim: int
    agent_class: str
    discrete: tuple
    continuous: tuple


def _build(env, config: Config) -> _Nets:
    cls = config.agent_class or for_env(env).learning_class(env)
    if cls not in env.agent_classes:
        raise ValueError(f"Config: agent_class '{cls}' not in {env.agent_classes}")
    n = env.num_agents(cls)
    obs_dim = int(env.observation_space(cls).shape[-1])
    global_dim = sum(math.prod(env.observation_space(c).shape) for c in env.agent_classes)
    discrete, continuous = hybrid_heads(env.action_space(cls))
    actor = HybridActor(
        discrete, continuous, config.actor_hidden, config.activation, config.continuous_dist
    )
    critic = ValueCritic(config.critic_hidden, config.activation)
    return _Nets(actor, critic, n, obs_dim, global_dim, cls, discrete, continuous)


def _global_obs(obs: dict, agent_classes: Sequence[str]) -> jnp.ndarray:
    """Global state for one env: every class's observations flattened, concatenated."""
    return jnp.concatenate([jnp.reshape(obs[c], (-1,)) for c in agent_classes])


def _critic_input(global_obs: jnp.ndarray, n: int) -> jnp.ndarray:
    """``(..., G) -> (..., n, G + n)``: the global state repeated per agent, plus its id."""
    shape = global_obs.shape[:-1] + (n, global_obs.shape[-1])
    g = jnp.broadcast_to(global_obs[..., None, :], shape)
    return core.with_agent_id(g)


def init_policy_params(env, config: Config, key: chex.PRNGKey):
    """Fresh actor parameters (also the template for :func:`agents.core.load_checkpoint`)."""
    nets = _build(env, config)
    return nets.actor.init(key, jnp.zeros((nets.n, nets.obs_dim + nets.n), jnp.float32))


def make_train(env, config: Config, fixed_actions: Callable | None = None):
    """Build ``train(key, params) -> (policy_params, metrics)``.

    ``metrics`` has one entry per update (leading axis ``num_updates``): raw
    ``reward_mean`` of the learning class per agent-step, every scalar metric of
    the env's ``info`` averaged over the rollout (sgin: ``throughput_mbit``,
    ``queue_mean_mbit``, ...), and the losses ``actor_loss``, ``value_loss``,
    ``entropy``, ``approx_kl``, ``clip_frac``, ``reward_std`` (the running std used
    for normalisation).
    """
    nets, ad = _build(env, config), for_env(env)
    fixed_actions = ad.fixed_actions if fixed_actions is None else fixed_actions
    n, cls, classes = nets.n, nets.agent_class, tuple(env.agent_classes)
    E, T = config.num_envs, config.num_steps
    batch_size = E * T
    mb_size = batch_size // config.num_minibatches
    steps_per_update = config.update_epochs * config.num_minibatches

    lr = optax.linear_schedule(config.lr, 0.0, config.num_updates * steps_per_update) \
        if config.anneal_lr else config.lr
    tx = core.adam(lr, config.max_grad_norm, eps=1e-5)

    def dist_fn(actor_params, obs, masks, low, high):
        return nets.actor.apply(actor_params, core.with_agent_id(obs), masks, low, high)

    def value_fn(critic_params, global_obs):
        return nets.critic.apply(critic_params, _critic_input(global_obs, n))

    def step_one(key, state, action, params):
        obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        final_obs = info["final_observation"]
        return obs, state, reward, terminated, truncated, final_obs, scalar_metrics(info)

    def train(key: chex.PRNGKey, params: Any):
        scale = ad.reward_scale(env, params) if config.reward_scale is None \
            else config.reward_scale
        key, k_actor, k_critic, k_reset = jax.random.split(key, 4)
        actor_params = nets.actor.init(k_actor, jnp.zeros((n, nets.obs_dim + n), jnp.float32))
        critic_params = nets.critic.init(k_critic, jnp.zeros((n, nets.global_dim + n), jnp.float32))
        net_params = {"actor": actor_params, "critic": critic_params}
        opt_state = tx.init(net_params)

        low, high = box_bounds(env.action_space(cls, params))  # (n,) each
        others = fixed_actions(env, params)
        others = jax.tree.map(lambda a: jnp.broadcast_to(a, (E,) + a.shape), others)

        reset_keys = jax.random.split(k_reset, E)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        stats = RunningStats.create()

        def env_step(carry, step_key):
            net_params, env_state, obs = carry
            k_act, k_env = jax.random.split(step_key)
            masks = jax.vmap(env.avail_actions, in_axes=(0, None))(env_state, params)[cls]
            dist = dist_fn(net_params["actor"], obs[cls], masks, low, high)
            action, log_prob = dist.sample_and_log_prob(seed=k_act)
            g_obs = jax.vmap(_global_obs, in_axes=(0, None))(obs, classes)
            value = value_fn(net_params["critic"], g_obs)
            full_action = {cls: action, **others}
            obs_next, env_state, reward, terminated, truncated, final_obs, metrics = jax.vmap(
                step_one, in_axes=(0, 0, 0, None)
            )(jax.random.split(k_env, E), env_state, full_action, params)
            g_final = jax.vmap(_global_obs, in_axes=(0, None))(final_obs, classes)
            next_value = value_fn(net_params["critic"], g_final)
            transition = Transition(
                obs=obs[cls],
                global_obs=g_obs,
                masks=masks,
                action=action,
                log_prob=log_prob,
                value=value,
                next_value=next_value,
                reward=reward[cls],
                terminated=terminated,
                done=terminated | truncated,
                metrics=metrics,
            )
            return (net_params, env_state, obs_next), transition

        def loss_fn(net_params, mb: Transition, adv, target):
            dist = dist_fn(net_params["actor"], mb.obs, mb.masks, low, high)
            log_prob = dist.log_prob(mb.action)
            entropy = jnp.mean(dist.entropy())
            log_ratio = log_prob - mb.log_prob
            ratio = jnp.exp(log_ratio)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            surrogate = jnp.minimum(
                ratio * adv, jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps) * adv
            )
            actor_loss = -jnp.mean(surrogate)
            value = value_fn(net_params["critic"], mb.global_obs)
            value_clipped = mb.value + jnp.clip(value - mb.value, -config.clip_eps, config.clip_eps)
            value_loss = 0.5 * jnp.mean(
                jnp.maximum(jnp.square(value - target), jnp.square(value_clipped - target))
            )
            total = actor_loss + config.vf_coef * value_loss - config.ent_coef * entropy
            aux = {
                "actor_loss": actor_loss,
                "value_loss": value_loss,
                "entropy": entropy,
                "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
                "clip_frac": jnp.mean(jnp.abs(ratio - 1.0) > config.clip_eps),
            }
            return total, aux

        def update_minibatch(carry, mb):
            net_params, opt_state = carry
            traj, adv, target = mb
            grads, aux = jax.grad(loss_fn, has_aux=True)(net_params, traj, adv, target)
            updates, opt_state = tx.update(grads, opt_state, net_params)
            return (optax.apply_updates(net_params, updates), opt_state), aux

        def update_epoch(carry, epoch_key):
            net_params, opt_state, batch = carry
            perm = jax.random.permutation(epoch_key, batch_size)
            shuffled = jax.tree.map(
                lambda x: jnp.take(x.reshape((batch_size,) + x.shape[2:]), perm, axis=0), batch
            )
            minibatches = jax.tree.map(
                lambda x: x.reshape((config.num_minibatches, mb_size) + x.shape[1:]), shuffled
            )
            (net_params, opt_state), aux = jax.lax.scan(
                update_minibatch, (net_params, opt_state), minibatches
            )
            return (net_params, opt_state, batch), aux

        def update(carry, update_key):
            net_params, opt_state, env_state, obs, stats = carry
            k_roll, k_epochs = jax.random.split(update_key)
            (net_params, env_state, obs), traj = jax.lax.scan(
                env_step, (net_params, env_state, obs), jax.random.split(k_roll, T)
            )
            raw = traj.reward  # (T, E, n)
            if config.team_reward:
                rewards = jnp.broadcast_to(raw.mean(axis=-1, keepdims=True), raw.shape)
            else:
                rewards = raw
            rewards = rewards * scale
            if config.normalize_rewards:
                stats = stats.update(rewards)
                rewards = rewards / jnp.sqrt(stats.var + 1e-8)
            adv, target = core.gae(rewards, traj.value, traj.next_value,
                                   traj.terminated[..., None], traj.done[..., None],
                                   config.gamma, config.gae_lambda)
            batch = (traj._replace(metrics={}), adv, target)
            (net_params, opt_state, _), aux = jax.lax.scan(
                update_epoch,
                (net_params, opt_state, batch),
                jax.random.split(k_epochs, config.update_epochs),
            )
            metrics = {k: jnp.mean(v) for k, v in traj.metrics.items()}
            metrics.update({k: jnp.mean(v) for k, v in aux.items()})
            metrics["reward_mean"] = jnp.mean(raw)
            metrics["reward_std"] = jnp.sqrt(stats.var)
            return (net_params, opt_state, env_state, obs, stats), metrics

        carry = (net_params, opt_state, env_state, obs, stats)
        (net_params, *_), metrics = jax.lax.scan(
            update, carry, jax.random.split(key, config.num_updates)
        )
        return net_params["actor"], metrics

    return train


def make_policy(env, config: Config, policy_params, deterministic: bool = True,
                fixed_actions: Callable | None = None):
    """Policy ``policy(key, obs, state, params) -> action`` from trained actor parameters.

    ``deterministic=True`` plays the mode of the hybrid distribution (argmax of
    each categorical, mode of each continuous head); ``False`` samples it (the
    stochastic policy PPO trained). In sgin the mode can be much worse than the
    stochastic policy: with one shared actor, early in training every DT's
    argmax channel is the same one, so all offloaders collide on it, while
    sampling spreads them. Other classes act with ``fixed_actions`` (default:
    the scenario adapter's). Masks come from ``env.avail_actions``.
    """
    nets = _build(env, config)
    fixed_actions = for_env(env).fixed_actions if fixed_actions is None else fixed_actions
    cls = nets.agent_class

    def policy(key, obs, state, params):
        masks = env.avail_actions(state, params)[cls]
        low, high = box_bounds(env.action_space(cls, params))
        dist = nets.actor.apply(policy_params, core.with_agent_id(obs[cls]), masks, low, high)
        action = dist.mode() if deterministic else dist.sample(seed=key)
        return {cls: action, **fixed_actions(env, params)}

    policy.__name__ = "mappo"
    return policy

