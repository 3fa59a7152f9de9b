"""DDQN per satellite with reputation-elected federated aggregation (spectrum paper, Alg. 1-2).

One double deep Q-network per satellite (agent), parameters stacked on the
satellite axis and vmapped — no Python loop over agents. Each update step:

1. act ε-greedily (ε decays linearly from ``eps_start`` to ``eps_end`` over
   ``eps_decay_fraction`` of training; eq. 19) in ``num_envs`` parallel
   episodes; store (s, a, r, s', terminated) in a pure-JAX replay buffer
   (:mod:`agents.replay`; one item = one env step of every satellite);
2. one gradient step per satellite on a sampled batch, double-DQN target
   y = κ_r·r + γ·Q_target(s', argmax_a Q(s', a)) (eq. 15-18; truncated
   episodes bootstrap from ``info["final_observation"]``);
3. every ``local_round`` updates (a local training round) the target network
   is replaced by the online network (Alg. 1: "the target network will be
   updated for every local training round");
4. ``federated=True`` (the proposed scheme, Alg. 2): every ``aggregation_rounds``
   (κ) local rounds, :func:`jaxsg.consensus.select_aggregator` elects the
   online server with the highest reputation; it FedAvg-aggregates the Q
   networks of the online satellites (:func:`agents.federated.weighted_average`,
   uniform weights over the online ones), the global model is issued to every
   satellite (:func:`agents.federated.broadcast`, targets included), and the
   env's :meth:`~jaxsg.scenarios.spectrum.SpectrumEnv.settle_block` pays it
   the block reward B_s and resets its reputation to 0
   (:func:`jaxsg.consensus.reputation_reset`). Nobody online → no aggregation.

Decisions: the reputation ledger the election reads is the mean over the
parallel episodes of the env's per-satellite reputation, and the online flags
are those of episode 0 (the parallel episodes are extra experience of the
same satellites; the ledger is one); the block is settled in every episode.
``reward_scale`` None scales rewards by 1/(p_max·cap) (revenue in [0, 1]).

``make_train(env, config) -> train(key, env_params) -> (policy_params, metrics)``
runs the whole loop in one ``lax.scan``; ``jax.jit(jax.vmap(train))`` trains
many seeds at once. Metrics per update: revenue, price and reward per
satellite (mean over episodes), the myopic optimum, the reputation ledger,
online flags, and the block log ``aggregator`` (−2: no aggregation this
update, −1: nobody online, else the elected id) with
``aggregator_reputation`` (its reputation before the reset).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from agents import replay
from agents.federated import broadcast, weighted_average
from agents.networks import MLP, orthogonal_dense
from jaxsg.consensus import select_aggregator

AGENT = "satellite"


@dataclasses.dataclass(frozen=True)
class DDQNConfig:
    num_envs: int = 4
    total_updates: int = 600
    buffer_size: int = 4096  # items (one env step of every satellite each)
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
    reward_scale: float | None = None
    hidden: Sequence[int] = (64, 64)

    def __post_init__(self):
        for name in ("num_envs", "total_updates", "buffer_size", "batch_size", "local_round",
                     "aggregation_rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DDQNConfig.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.warmup_updates, int) or self.warmup_updates < 0:
            raise ValueError(f"DDQNConfig.warmup_updates must be an integer >= 0, "
                             f"got {self.warmup_updates!r}")
        for name in ("gamma", "eps_start", "eps_end", "eps_decay_fraction"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DDQNConfig.{name} must be in [0, 1], got {value}")
        for name in ("lr", "max_grad_norm"):
            if not float(getattr(self, name)) > 0.0:
                raise ValueError(f"DDQNConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.reward_scale is not None and not float(self.reward_scale) > 0.0:
            raise ValueError(f"DDQNConfig.reward_scale must be > 0 or None, "
                             f"got {self.reward_scale}")


class QNetwork(nn.Module):
    num_actions: int
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs):
        h = MLP(tuple(self.hidden), "relu", name="torso")(obs)
        return orthogonal_dense(self.num_actions, 1.0, name="q")(h)


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


def q_values(net, params, obs):
    """Stacked params (S, ...) and obs (..., S, d) → Q (..., S, A)."""
    return jax.vmap(net.apply, in_axes=(0, -2), out_axes=-2)(params, obs)


def make_train(env, config: DDQNConfig):
    """Build ``train(key, env_params) -> (policy_params, metrics)`` (pure, jit-able)."""
    cfg = config
    n_s = env.num_agents(AGENT)
    n_a = env.action_space(AGENT).n
    obs_dim = env.observation_space(AGENT).shape[-1]
    net = QNetwork(n_a, tuple(cfg.hidden))
    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    vreset = jax.vmap(env.reset, in_axes=(0, None))
    vsettle = jax.vmap(env.settle_block, in_axes=(0, None, None))
    decay = max(int(cfg.eps_decay_fraction * cfg.total_updates), 1)
    agg_period = cfg.local_round * cfg.aggregation_rounds

    def train(key, env_params):
        k_init, k_env, k_run = jax.random.split(key, 3)
        q = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(k_init, n_s),
                                                  jnp.zeros((obs_dim,)))
        obs, env_state = vreset(jax.random.split(k_env, cfg.num_envs), env_params)
        item = {"obs": jnp.zeros((n_s, obs_dim)), "action": jnp.zeros((n_s,), jnp.int32),
                "reward": jnp.zeros((n_s,)), "next_obs": jnp.zeros((n_s, obs_dim)),
                "term": jnp.zeros((), jnp.float32)}
        buf = replay.init(item, cfg.buffer_size)
        scale = cfg.reward_scale
        if scale is None:
            scale = 1.0 / (env_params.price_max * env.capacity)
        state = TrainState(q, q, jax.vmap(tx.init)(q), buf, env_state, obs, k_run,
                           jnp.zeros((), jnp.int32))

        def loss_fn(params, target, batch):
            q_sa = jnp.take_along_axis(q_values(net, params, batch["obs"]),
                                       batch["action"][..., None], -1)[..., 0]  # (B, S)
            a_next = jnp.argmax(q_values(net, params, batch["next_obs"]), -1)
            q_next = jnp.take_along_axis(q_values(net, target, batch["next_obs"]),
                                         a_next[..., None], -1)[..., 0]
            y = batch["reward"] * scale + cfg.gamma * (1.0 - batch["term"][:, None]) * q_next
            y = jax.lax.stop_gradient(y)
            # independent per-satellite losses summed: each gradient only touches its own net
            return jnp.sum(jnp.mean((q_sa - y) ** 2, axis=0)), q_sa

        def update_step(ts: TrainState, _):
            key, k_eps, k_rand, k_env, k_sample = jax.random.split(ts.key, 5)
            eps = cfg.eps_start + (cfg.eps_end - cfg.eps_start) * jnp.minimum(
                ts.update / decay, 1.0)
            greedy = jnp.argmax(q_values(net, ts.q, ts.obs[AGENT]), -1)  # (E, S)
            explore = jax.random.uniform(k_eps, greedy.shape) < eps
            random_a = jax.random.randint(k_rand, greedy.shape, 0, n_a)
            action = jnp.where(explore, random_a, greedy).astype(jnp.int32)
            obs2, env_state, reward, term, _, info = vstep(
                jax.random.split(k_env, cfg.num_envs), ts.env_state, {AGENT: action}, env_params)
            items = {"obs": ts.obs[AGENT], "action": action, "reward": reward[AGENT],
                     "next_obs": info["final_observation"][AGENT],
                     "term": term.astype(jnp.float32)}
            buf = replay.add_batch(ts.buffer, items)
            batch = replay.sample(buf, k_sample, cfg.batch_size)
            (loss, q_sa), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                ts.q, ts.target, batch)
            upd, opt = jax.vmap(tx.update)(grads, ts.opt, ts.q)
            new_q = optax.apply_updates(ts.q, upd)
            learn = ts.update >= cfg.warmup_updates
            pick = lambda new, old: jax.tree.map(  # noqa: E731
                lambda a, b: jnp.where(learn, a, b), new, old)
            q, opt = pick(new_q, ts.q), pick(opt, ts.opt)

            # reputation-elected federated aggregation (Alg. 2) every κ local rounds
            ledger = jnp.mean(env_state.reputation, axis=0)
            online = env_state.online[0]
            due_agg = (ts.update + 1) % agg_period == 0
            aggregator = select_aggregator(ledger, online)
            if cfg.federated:
                weights = online.astype(jnp.float32)
                issued = broadcast(weighted_average(q, weights), n_s)
                do = due_agg & (aggregator >= 0)
                q = jax.tree.map(lambda a, b: jnp.where(do, a, b), issued, q)
                settled = vsettle(env_state, aggregator, env_params)
                env_state = jax.tree.map(lambda a, b: jnp.where(do, a, b), settled, env_state)
                log_id = jnp.where(due_agg, aggregator, -2)
            else:
                log_id = jnp.full((), -2, jnp.int32)
            agg_rep = jnp.where(log_id >= 0, ledger[jnp.maximum(log_id, 0)], jnp.nan)
            # target network: replaced by the online network every local round
            due_target = (ts.update + 1) % cfg.local_round == 0
            target = jax.tree.map(lambda a, b: jnp.where(due_target, a, b), q, ts.target)
            metrics = {
                "revenue_total": info["revenue_total"].mean(),
                "myopic_optimal_revenue": info["myopic_optimal_revenue"].mean(),
                "revenue": info["revenue"].mean(0),
                "price": info["price"].mean(0),
                "power_ctrl_w": info["power_ctrl_w"].mean(0),
                "reward": reward[AGENT].mean(0),
                "leases_total": info["leases_total"].mean(),
                "malicious_leases": info["malicious_leases"].mean(),
                "interference_w": info["interference_w"].mean(),
                "honest_utility_mean": info["honest_utility_mean"].mean(),
                "reputation": ledger,
                "online": online,
                "aggregator": log_id,
                "aggregator_reputation": agg_rep,
                "block_income": env_state.block_income.mean(0),
                "loss": loss,
                "q_mean": q_sa.mean(),
                "epsilon": eps,
            }
            new_ts = TrainState(q, target, opt, buf, env_state, obs2, key, ts.update + 1)
            return new_ts, metrics

        final, metrics = jax.lax.scan(update_step, state, None, cfg.total_updates)
        return final.q, metrics

    return train


def make_policy(env, config: DDQNConfig, policy_params, eps: float = 0.0):
    """``policy(key, obs, state, params) -> action``: ε-greedy (greedy by default) on the
    trained per-satellite Q networks."""
    n_a = env.action_space(AGENT).n
    net = QNetwork(n_a, tuple(config.hidden))

    def policy(key, obs, state, params):
        del state, params
        greedy = jnp.argmax(q_values(net, policy_params, obs[AGENT]), -1)
        if eps > 0.0:
            k1, k2 = jax.random.split(key)
            explore = jax.random.uniform(k1, greedy.shape) < eps
            greedy = jnp.where(explore, jax.random.randint(k2, greedy.shape, 0, n_a), greedy)
        return {AGENT: greedy.astype(jnp.int32)}

    return policy
