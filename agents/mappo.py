"""MAPPO (multi-agent PPO with a centralised critic) for hybrid actions, PureJaxRL-style:
the learning class shares one :class:`~agents.networks.HybridActor` over MADFRL's action
encoding; other classes play the adapter's ``fixed_actions``. Decisions (and a CPU hazard
of ``jit(vmap(train))``): docs/learners.md §MAPPO.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import optax

from agents import core
from agents import networks as nw
from agents.adapters import for_env
from jaxsg.wrappers import scalar_metrics


@dataclasses.dataclass(frozen=True)
class Config:
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
    lr: float = 1e-3  # why: docs/learners.md §MAPPO
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
    #: the action encoding, MADFRL's options (agents.networks.encoding); None: the adapter's
    relative_heads: tuple[str, ...] | None = None
    ranked_heads: tuple[tuple[str, str], ...] | None = None
    mode_heads: tuple[tuple[str, str], ...] | None = None

    BOUNDS: ClassVar = dict(
        num_steps=core.COUNT, update_epochs=core.COUNT, num_minibatches=core.COUNT,
        gae_lambda=core.UNIT, clip_eps=core.POSITIVE, ent_coef=core.NON_NEGATIVE,
        vf_coef=core.NON_NEGATIVE)
    CHOICES: ClassVar = dict(continuous_dist=nw.CONTINUOUS_DISTS,
                             activation=tuple(nw.ACTIVATIONS))

    def __post_init__(self):
        core.check_config(self)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                "Config: field 'num_minibatches' must divide num_envs * num_steps = "
                f"{self.num_envs * self.num_steps}, got {self.num_minibatches}")
        object.__setattr__(self, "actor_hidden", tuple(int(h) for h in self.actor_hidden))
        object.__setattr__(self, "critic_hidden", tuple(int(h) for h in self.critic_hidden))


class RunningStats(NamedTuple):
    """Running count, mean and variance (Chan et al. parallel update)."""

    count: jnp.ndarray
    mean: jnp.ndarray
    var: jnp.ndarray

    def update(self, x: jnp.ndarray) -> "RunningStats":
        n, mean, var = jnp.asarray(x.size, jnp.float32), jnp.mean(x), jnp.var(x)
        total, delta = self.count + n, mean - self.mean
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        return RunningStats(total, self.mean + delta * n / total, m2 / total)


class Transition(NamedTuple):  # leading axes (envs, agents) unless noted
    obs: jnp.ndarray
    global_obs: jnp.ndarray  # (E, G)
    masks: dict  # in the actor's (ranked) option order
    action: dict  # encoded
    log_prob: jnp.ndarray
    value: jnp.ndarray
    next_value: jnp.ndarray  # V(final observation)
    reward: jnp.ndarray  # raw
    terminated: jnp.ndarray  # (E,)
    done: jnp.ndarray  # (E,)
    metrics: dict  # {name: (E,)}


class _Nets(NamedTuple):
    actor: nw.HybridActor
    critic: nw.ValueCritic
    n: int
    obs_dim: int
    global_dim: int
    agent_class: str
    group: nw.Group
    relative: tuple
    ranked: tuple
    blocks: tuple  # (component, head, mode head | None, option)


def _build(env, config: Config) -> _Nets:
    ad = for_env(env)
    cls = ad.learning_class(env, config.agent_class)
    relative, ranked, modes = nw.encoding(config, ad)
    group = nw.action_group(env.action_space(cls), modes)
    by, options, blocks = dict(group.modes), dict(group.discrete), []
    for k, size in group.continuous:
        if size != 1:
            raise ValueError(f"MAPPO: continuous action {k!r} must be one value per agent")
        blocks += ([(f"{k}/{j}", k, by[k], j) for j in range(options[by[k]])] if k in by
                   else [(k, k, None, 0)])
    actor = nw.HybridActor(group.discrete, tuple(b[0] for b in blocks), config.actor_hidden,
                           config.activation, config.continuous_dist)
    n = env.num_agents(cls)
    return _Nets(actor, nw.ValueCritic(config.critic_hidden, config.activation), n,
                 int(env.observation_space(cls).shape[-1]),
                 sum(math.prod(env.observation_space(c).shape) for c in env.agent_classes),
                 cls, group, relative, ranked, tuple(blocks))


def _distribution(env, nets: _Nets, actor_params, obs, masks):
    """``(dist, ranked masks, orders)`` of the encoded action for observations (..., n, d)."""
    orders = nw.head_orders(env, obs, nets.ranked, nets.agent_class)
    masks = nw.masks_in_rank_order(masks, orders)
    return nets.actor.apply(actor_params, core.with_agent_id(obs), masks), masks, orders


def log_prob_entropy(dist, action: dict, nets: _Nets):
    """``log π(action)`` and the entropy; a mode block counts in ``log π`` only where its
    option was chosen and in the entropy weighted by that option's probability."""
    log_p, ent = dist.component_log_probs(action), dist.component_entropies()
    for name, _, d, j in nets.blocks:
        if d is not None:
            log_p[name] = jnp.where(action[d] == j, log_p[name], 0.0)
            p = jax.nn.softmax(jax.lax.stop_gradient(dist.distributions[d].logits))[..., j]
            ent[name] = p * ent[name]
    return sum(log_p.values()), sum(ent.values())


def decode(nets: _Nets, encoded: dict, low: dict, high: dict, orders: dict) -> dict:
    """The env action of an encoded one, through MADFRL's :func:`~agents.networks.to_env_action`
    (one-hots; a mode head's blocks stacked as MADFRL's actor emits them)."""
    g = nets.group
    onehots = {k: jax.nn.one_hot(encoded[k], n) for k, n in g.discrete}  # INVALID → zeros
    unit = {k: jnp.stack([encoded[b[0]] for b in nets.blocks if b[1] == k], -1)
            for k, _ in g.continuous}
    return nw.to_env_action(onehots, nw.select_modes(onehots, unit, g), g, low, high,
                            nets.relative, orders)


def init_policy_params(env, config: Config, key: chex.PRNGKey):
    """Fresh actor parameters (also the template for :func:`agents.core.load_checkpoint`)."""
    nets = _build(env, config)
    return nets.actor.init(key, jnp.zeros((nets.n, nets.obs_dim + nets.n), jnp.float32))


def make_train(env, config: Config):
    """``train(key, params) -> (policy_params, metrics)``; ``metrics`` per update: raw
    ``reward_mean`` per agent-step, the env's scalar metrics, ``actor_loss``, ``value_loss``,
    ``entropy``, ``approx_kl``, ``clip_frac``, ``reward_std`` (the normalising std)."""
    nets, ad = _build(env, config), for_env(env)
    n, cls, classes = nets.n, nets.agent_class, tuple(env.agent_classes)
    E, T, M = config.num_envs, config.num_steps, config.num_minibatches
    batch_size = E * T
    lr = optax.linear_schedule(config.lr, 0.0, config.num_updates * config.update_epochs * M) \
        if config.anneal_lr else config.lr
    tx = core.adam(lr, config.max_grad_norm, eps=1e-5)
    reset, step = core.vec_env(env, E)

    def v_global(obs):  # (E, G): every class's observations flattened, concatenated
        return jnp.concatenate([jnp.reshape(obs[c], (E, -1)) for c in classes], -1)

    def value_fn(critic_params, global_obs):  # (..., G) -> (..., n): V(state, agent id)
        g = jnp.broadcast_to(global_obs[..., None, :], global_obs.shape[:-1] + (n,) +
                             global_obs.shape[-1:])
        return nets.critic.apply(critic_params, core.with_agent_id(g))

    def train(key: chex.PRNGKey, params: Any):
        scale = core.reward_scale(config, env, params)
        key, k_actor, k_critic, k_reset = jax.random.split(key, 4)
        net_params = {
            "actor": nets.actor.init(k_actor, jnp.zeros((n, nets.obs_dim + n), jnp.float32)),
            "critic": nets.critic.init(k_critic,
                                       jnp.zeros((n, nets.global_dim + n), jnp.float32))}
        opt_state = tx.init(net_params)
        low, high = nw.box_bounds(env.action_space(cls, params))
        others = jax.tree.map(lambda a: jnp.broadcast_to(a, (E,) + a.shape),
                              ad.fixed_actions(env, params))
        obs, env_state = reset(k_reset, params)
        stats = RunningStats(jnp.float32(1e-4), jnp.float32(0.0), jnp.float32(1.0))

        def env_step(carry, step_key):
            net_params, env_state, obs = carry
            k_act, k_env = jax.random.split(step_key)
            masks = jax.vmap(env.avail_actions, in_axes=(0, None))(env_state, params)[cls]
            dist, masks, orders = _distribution(env, nets, net_params["actor"], obs[cls], masks)
            action = dist.sample(seed=k_act)
            g_obs = v_global(obs)
            obs_next, env_state, reward, terminated, truncated, info = step(
                k_env, env_state, {cls: decode(nets, action, low, high, orders), **others},
                params)
            transition = Transition(
                obs[cls], g_obs, masks, action, log_prob_entropy(dist, action, nets)[0],
                value_fn(net_params["critic"], g_obs),
                value_fn(net_params["critic"], v_global(info["final_observation"])),
                reward[cls], terminated, terminated | truncated, jax.vmap(scalar_metrics)(info))
            return (net_params, env_state, obs_next), transition

        def loss_fn(net_params, mb: Transition, adv, target):
            dist = nets.actor.apply(net_params["actor"], core.with_agent_id(mb.obs), mb.masks)
            log_prob, entropy = log_prob_entropy(dist, mb.action, nets)
            entropy = jnp.mean(entropy)
            log_ratio = log_prob - mb.log_prob
            ratio = jnp.exp(log_ratio)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            clipped = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
            actor_loss = -jnp.mean(jnp.minimum(ratio * adv, clipped * adv))
            value = value_fn(net_params["critic"], mb.global_obs)
            value_clipped = mb.value + jnp.clip(value - mb.value, -config.clip_eps, config.clip_eps)
            value_loss = 0.5 * jnp.mean(
                jnp.maximum(jnp.square(value - target), jnp.square(value_clipped - target)))
            total = actor_loss + config.vf_coef * value_loss - config.ent_coef * entropy
            return total, {"actor_loss": actor_loss, "value_loss": value_loss,
                           "entropy": entropy, "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
                           "clip_frac": jnp.mean(jnp.abs(ratio - 1.0) > config.clip_eps)}

        def update_minibatch(carry, mb):
            net_params, opt_state = carry
            grads, aux = jax.grad(loss_fn, has_aux=True)(net_params, *mb)
            return core.opt_step(tx, net_params, opt_state, grads), aux

        def update_epoch(carry, epoch_key):
            net_params, opt_state, batch = carry
            perm = jax.random.permutation(epoch_key, batch_size)
            minibatches = jax.tree.map(
                lambda x: jnp.take(x.reshape((batch_size,) + x.shape[2:]), perm, axis=0)
                .reshape((M, batch_size // M) + x.shape[2:]), batch)
            (net_params, opt_state), aux = jax.lax.scan(
                update_minibatch, (net_params, opt_state), minibatches)
            return (net_params, opt_state, batch), aux

        def update(carry, update_key):
            net_params, opt_state, env_state, obs, stats = carry
            k_roll, k_epochs = jax.random.split(update_key)
            (net_params, env_state, obs), traj = jax.lax.scan(
                env_step, (net_params, env_state, obs), jax.random.split(k_roll, T))
            raw = traj.reward  # (T, E, n)
            rewards = jnp.broadcast_to(raw.mean(-1, keepdims=True), raw.shape) \
                if config.team_reward else raw
            rewards = rewards * scale
            if config.normalize_rewards:
                stats = stats.update(rewards)
                rewards = rewards / jnp.sqrt(stats.var + 1e-8)
            adv, target = core.gae(rewards, traj.value, traj.next_value,
                                   traj.terminated[..., None], traj.done[..., None],
                                   config.gamma, config.gae_lambda)
            (net_params, opt_state, _), aux = jax.lax.scan(
                update_epoch, (net_params, opt_state, (traj._replace(metrics={}), adv, target)),
                jax.random.split(k_epochs, config.update_epochs))
            metrics = {k: jnp.mean(v) for k, v in {**traj.metrics, **aux}.items()}
            metrics.update(reward_mean=jnp.mean(raw), reward_std=jnp.sqrt(stats.var))
            return (net_params, opt_state, env_state, obs, stats), metrics

        (net_params, *_), metrics = jax.lax.scan(
            update, (net_params, opt_state, env_state, obs, stats),
            jax.random.split(key, config.num_updates))
        return net_params["actor"], metrics

    return train


def make_policy(env, config: Config, policy_params, deterministic: bool = True):
    """The trained actor's policy: the mode of every encoded head (``deterministic``, for
    evaluation) or a sample; other classes play the adapter's ``fixed_actions``."""
    nets = _build(env, config)
    ad = for_env(env)
    cls = nets.agent_class

    def policy(key, obs, state, params):
        dist, _, orders = _distribution(env, nets, policy_params, obs[cls],
                                        env.avail_actions(state, params)[cls])
        encoded = dist.mode() if deterministic else dist.sample(seed=key)
        low, high = nw.box_bounds(env.action_space(cls, params))
        return {cls: decode(nets, encoded, low, high, orders), **ad.fixed_actions(env, params)}

    policy.__name__ = "mappo"
    return policy
