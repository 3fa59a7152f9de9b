"""Federated DDQN with an elected aggregator (spectrum paper, Alg. 1-2): one double DQN per
agent, ε-greedy (eq. 19), y = κ·r + γ·Q_T(s', argmax_a Q(s', a)) (eq. 15-18), elected FedAvg
if ``federated`` (docs/learners.md §Federated DDQN). Metrics per update: the env's,
``reward`` per agent, the adapter's, ``aggregator`` (−2: no aggregation, −1: nobody
elected, else the id), ``aggregator_reputation``, ``loss``, ``q_mean``, ``epsilon``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Sequence

import jax
import jax.numpy as jnp
from flax import struct

from agents import core, replay
from agents.adapters import for_env
from agents.federated import broadcast, weighted_average
from agents.networks import MLPHead


@dataclasses.dataclass(frozen=True)
class Config:
    num_envs: int = 4
    num_updates: int = 600
    buffer_size: int = 4096  # items (one env step of every agent each)
    batch_size: int = 64
    warmup_updates: int = 32
    gamma: float = 0.9
    lr: float = 1e-3
    max_grad_norm: float = 10.0
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_fraction: float = 0.5
    local_round: int = 10  # updates per local training round (target-network period)
    federated: bool = True
    aggregation_rounds: int = 5  # κ: local rounds between aggregations
    reward_scale: float | None = None  # None: the scenario adapter's scale
    hidden: Sequence[int] = (64, 64)

    BOUNDS: ClassVar = dict(local_round=core.COUNT, aggregation_rounds=core.COUNT)

    def __post_init__(self):
        core.check_config(self)


def q_network(num_actions: int, config: Config) -> MLPHead:
    return MLPHead(num_actions, 1.0, "q", config.hidden)


@struct.dataclass
class TrainState:
    q: dict
    target: dict
    opt: dict
    buffer: replay.Replay
    env_state: object
    obs: dict
    key: jnp.ndarray
    update: jnp.ndarray


def make_train(env, config: Config):
    """Build ``train(key, env_params) -> (policy_params, metrics)`` (pure, jit-able)."""
    cfg, ad = config, for_env(env)
    cls = ad.learning_class(env)
    n, n_a = env.num_agents(cls), env.action_space(cls).n
    obs_dim = env.observation_space(cls).shape[-1]
    net = q_network(n_a, cfg)
    q_values = lambda p, o: core.stacked_apply(net.apply, p, o)  # noqa: E731
    tx = core.adam(cfg.lr, cfg.max_grad_norm)
    reset, step = core.vec_env(env, cfg.num_envs)
    epsilon = core.linear(cfg.eps_start, cfg.eps_end, cfg.eps_decay_fraction * cfg.num_updates)
    agg_period = cfg.local_round * cfg.aggregation_rounds

    def train(key, env_params):
        k_init, k_env, k_run = jax.random.split(key, 3)
        q = core.stacked_init(net.init, k_init, n, jnp.zeros((obs_dim,)))
        obs, env_state = reset(k_env, env_params)
        item = {"obs": jnp.zeros((n, obs_dim)), "action": jnp.zeros((n,), jnp.int32),
                "reward": jnp.zeros((n,)), "next_obs": jnp.zeros((n, obs_dim)),
                "term": jnp.zeros((), jnp.float32)}
        scale = core.reward_scale(cfg, env, env_params)
        state = TrainState(q, q, jax.vmap(tx.init)(q), replay.init(item, cfg.buffer_size),
                           env_state, obs, k_run, jnp.zeros((), jnp.int32))

        def loss_fn(params, target, batch):
            q_sa = jnp.take_along_axis(q_values(params, batch["obs"]),
                                       batch["action"][..., None], -1)[..., 0]  # (B, n)
            y = core.double_q_target(batch["reward"] * scale, q_values(params, batch["next_obs"]),
                                     q_values(target, batch["next_obs"]),
                                     cfg.gamma * (1.0 - batch["term"][:, None]))
            # independent per-agent losses summed: each gradient only touches its own net
            return jnp.sum(jnp.mean((q_sa - y) ** 2, axis=0)), q_sa

        def update_step(ts: TrainState, _):
            key, k_eps, k_rand, k_env, k_sample = jax.random.split(ts.key, 5)
            eps = epsilon(ts.update)
            greedy = jnp.argmax(q_values(ts.q, ts.obs[cls]), -1)  # (E, n)
            action = core.epsilon_greedy(k_eps, eps, greedy,
                                         jax.random.randint(k_rand, greedy.shape, 0, n_a))
            obs2, env_state, reward, term, _, info = step(k_env, ts.env_state, {cls: action},
                                                          env_params)
            buf = replay.add_batch(ts.buffer, {
                "obs": ts.obs[cls], "action": action, "reward": reward[cls],
                "next_obs": info["final_observation"][cls], "term": term.astype(jnp.float32)})
            batch = replay.sample(buf, k_sample, cfg.batch_size)
            (loss, q_sa), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                ts.q, ts.target, batch)
            learn = ts.update >= cfg.warmup_updates
            q, opt = core.gate(learn, core.stacked_step(tx, ts.q, ts.opt, grads), (ts.q, ts.opt))

            # elected federated aggregation (Alg. 2) every κ local rounds
            weights, aggregator, ledger = ad.election(env, env_state, env_params)
            before = env_state
            due_agg = (ts.update + 1) % agg_period == 0
            if cfg.federated:
                do = due_agg & (aggregator >= 0)
                q = core.gate(do, broadcast(weighted_average(q, weights), n), q)
                env_state = core.gate(do, ad.settle(env, env_state, aggregator, env_params),
                                      env_state)
                log_id = jnp.where(due_agg, aggregator, -2)
            else:
                log_id = jnp.full((), -2, jnp.int32)
            target = core.hard_update(q, ts.target, ts.update + 1, cfg.local_round)
            metrics = core.env_metrics(info)
            metrics.update(ad.train_metrics(env, before, env_state))
            metrics.update(
                reward=reward[cls].mean(0), aggregator=log_id,
                aggregator_reputation=jnp.where(log_id >= 0, ledger[jnp.maximum(log_id, 0)],
                                                jnp.nan),
                loss=loss, q_mean=q_sa.mean(), epsilon=eps)
            return TrainState(q, target, opt, buf, env_state, obs2, key, ts.update + 1), metrics

        final, metrics = jax.lax.scan(update_step, state, None, cfg.num_updates)
        return final.q, metrics

    return train


def make_policy(env, config: Config, policy_params):
    """``policy(key, obs, state, params) -> action``: greedy on the trained per-agent Q
    networks."""
    cls = for_env(env).learning_class(env)
    net = q_network(env.action_space(cls).n, config)

    def policy(key, obs, state, params):
        del state, params
        q = core.stacked_apply(net.apply, policy_params, obs[cls])
        return {cls: core.greedy(q)}

    return policy
