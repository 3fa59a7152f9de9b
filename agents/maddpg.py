"""MADDPG (Lowe et al. 2017) as the DTWN paper's Algorithm 1 (Lu et al., TII 2021, Sec. IV-B).

Every agent of the env's (single) agent class — the BSs of ``edge_assoc`` — has

* a deterministic actor π_i(o_i) → u_i ∈ [−1, 1]^A (tanh), mapped affinely onto
  the agent's Box action components (for ``edge_assoc``: N bids, N batch
  fractions, C bandwidth weights); exploration adds Ornstein-Uhlenbeck noise
  (eq. 21) to u_i and clips to [−1, 1];
* a centralised critic Q_i(s, u_1, …, u_M) on the global state s (all agents'
  observations concatenated) and every agent's action (eq. 23), trained on
  y = r_i·``reward_scale`` + γ·Q_i^T(s', π_1^T(o'_1), …, π_M^T(o'_M));
* the actor step of eq. 22: ascend Q_i(s, u_1, …, π_i(o_i), …, u_M) with the
  other agents' actions from the replay sample;
* target networks with soft updates θ^T ← β θ + (1 − β) θ^T (eq. 24-25, β = ``tau``).

Parameters are stacked on a leading agent axis and every per-agent computation
is a ``vmap``. The replay buffer is ``agents.replay`` (pure JAX); each item is
one env transition (all agents). ``make_train(env, config)`` returns
``train(key, env_params, gamma=None) -> (policy_params, metrics)`` (a traced
``gamma`` overrides ``config.gamma``: Fig. 7's γ sweep is one compile); the whole loop (one env
step of ``num_envs`` parallel envs, one gradient update, per iteration) runs in
``lax.scan``, so ``jax.jit(jax.vmap(train, in_axes=(0, None)))`` trains many seeds.
``metrics`` has one entry per iteration (means over the parallel envs): the
reward, every scalar env metric, and the critic/actor losses.

Decisions: the paper names the OU process but not its constants — θ_OU = 0.15,
σ decaying linearly from ``noise_start`` to ``noise_end``; episodes end only by
truncation, so targets always bootstrap from the pre-reset final observation;
rewards are scaled by ``reward_scale`` (the env's reward is −T/(1 − θ_G) in
seconds).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents import replay
from agents.networks import MLP, orthogonal_dense
from jaxsg import spaces


@dataclasses.dataclass(frozen=True)
class MADDPGConfig:
    num_envs: int = 8
    total_updates: int = 2000
    buffer_size: int = 20000  # transitions (one per env per iteration)
    batch_size: int = 128
    warmup_updates: int = 50
    updates_per_step: int = 1  # gradient updates per env step (of num_envs transitions)
    gamma: float = 0.9
    tau: float = 0.01  # β of eq. 24-25
    actor_lr: float = 3e-4
    critic_lr: float = 2e-3
    max_grad_norm: float = 10.0
    reward_scale: float = 0.01
    ou_theta: float = 0.15
    noise_start: float = 0.3
    noise_end: float = 0.05
    hidden: Sequence[int] = (128, 128)

    def __post_init__(self):
        for name in ("num_envs", "total_updates", "buffer_size", "batch_size",
                     "updates_per_step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MADDPGConfig.{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.warmup_updates, int) or self.warmup_updates < 0:
            raise ValueError(f"MADDPGConfig.warmup_updates must be an integer >= 0, "
                             f"got {self.warmup_updates!r}")
        for name in ("gamma", "tau", "ou_theta"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"MADDPGConfig.{name} must be in [0, 1], got {v}")
        for name in ("actor_lr", "critic_lr", "max_grad_norm", "reward_scale"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"MADDPGConfig.{name} must be a finite number > 0, got {v}")
        for name in ("noise_start", "noise_end"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"MADDPGConfig.{name} must be >= 0, got {v}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"MADDPGConfig.hidden must be non-empty positive widths, "
                             f"got {self.hidden!r}")


class Actor(nn.Module):
    action_dim: int
    hidden: Sequence[int] = (128, 128)

    @nn.compact
    def __call__(self, obs):
        h = MLP(self.hidden, "relu", name="torso")(obs)
        return jnp.tanh(orthogonal_dense(self.action_dim, 0.01, name="out")(h))


class Critic(nn.Module):
    hidden: Sequence[int] = (128, 128)

    @nn.compact
    def __call__(self, state, actions):
        h = MLP(self.hidden, "relu", name="torso")(jnp.concatenate([state, actions], -1))
        return orthogonal_dense(1, 1.0, name="q")(h)[..., 0]


class Nets(NamedTuple):
    actor: Any
    critic: Any
    target_actor: Any
    target_critic: Any
    actor_opt: Any
    critic_opt: Any


class ActionCodec:
    """Flatten a Dict of Box components (leading agent axis) to u ∈ [−1, 1]^A per agent."""

    def __init__(self, env, agent_class: str):
        space = env.action_space(agent_class)
        comps = space.spaces if isinstance(space, spaces.Dict) else {"action": space}
        for k, s in comps.items():
            if not isinstance(s, spaces.Box):
                raise ValueError(f"MADDPG needs continuous (Box) actions; component {k!r} "
                                 f"is {s!r}")
        self.is_dict = isinstance(space, spaces.Dict)
        self.names = tuple(comps)
        self.shapes = {k: tuple(s.shape[1:]) for k, s in comps.items()}
        self.sizes = {k: int(np.prod(self.shapes[k], dtype=np.int64)) for k in self.names}
        self.dim = sum(self.sizes.values())
        self.env, self.agent_class = env, agent_class

    def decode(self, u, params):
        """u (..., M, A) in [−1, 1] → env action dict with leaves (..., M, *shape)."""
        space = self.env.action_space(self.agent_class, params)
        comps = space.spaces if self.is_dict else {"action": space}
        out, col = {}, 0
        lead = u.shape[:-1]
        for k in self.names:
            size = self.sizes[k]
            x = u[..., col:col + size].reshape(lead + self.shapes[k])
            lo, hi = comps[k].low, comps[k].high
            out[k] = lo + 0.5 * (x + 1.0) * (hi - lo)
            col += size
        return out if self.is_dict else out["action"]


class TrainState(NamedTuple):
    nets: Nets
    buffer: replay.Replay
    env_state: Any
    obs: jnp.ndarray  # (E, M, d)
    noise: jnp.ndarray  # (E, M, A) OU state
    key: jnp.ndarray
    update: jnp.ndarray


def _agent_class(env) -> str:
    if len(env.agent_classes) != 1:
        raise ValueError(f"MADDPG here handles one agent class; env has {env.agent_classes}")
    return env.agent_classes[0]


def make_train(env, config: MADDPGConfig = MADDPGConfig()):
    """Build ``train(key, env_params) -> (policy_params, metrics)`` (pure, jit-able)."""
    cfg = config
    cls = _agent_class(env)
    m = env.num_agents(cls)
    obs_dim = env.observation_space(cls).shape[-1]
    codec = ActionCodec(env, cls)
    a_dim = codec.dim
    actor = Actor(a_dim, tuple(cfg.hidden))
    critic = Critic(tuple(cfg.hidden))
    actor_tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.actor_lr))
    critic_tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm),
                            optax.adam(cfg.critic_lr))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    vreset = jax.vmap(env.reset, in_axes=(0, None))

    def pi(params, obs):  # params stacked (M, ...), obs (..., M, d) -> (..., M, A)
        return jax.vmap(actor.apply, in_axes=(0, -2), out_axes=-2)(params, obs)

    def q_all(params, state, u):  # state (B, M·d), u (B, M, A) -> (B, M)
        flat = u.reshape(u.shape[:-2] + (-1,))
        return jax.vmap(critic.apply, in_axes=(0, None, None), out_axes=-1)(params, state, flat)

    def init_nets(key):
        k_a, k_c = jax.random.split(key)
        a = jax.vmap(actor.init, in_axes=(0, None))(jax.random.split(k_a, m),
                                                    jnp.zeros((obs_dim,)))
        c = jax.vmap(critic.init, in_axes=(0, None, None))(
            jax.random.split(k_c, m), jnp.zeros((m * obs_dim,)), jnp.zeros((m * a_dim,)))
        return Nets(a, c, a, c, jax.vmap(actor_tx.init)(a), jax.vmap(critic_tx.init)(c))

    def learn(nets: Nets, batch, gamma):
        s = batch["obs"].reshape(batch["obs"].shape[0], -1)
        s2 = batch["nobs"].reshape(s.shape)
        u2 = pi(nets.target_actor, batch["nobs"])
        y = batch["rew"] * cfg.reward_scale + gamma * (1.0 - batch["term"][:, None]) * q_all(
            nets.target_critic, s2, u2)
        y = jax.lax.stop_gradient(y)

        def critic_loss(p):  # Σ_i of the per-agent losses (independent parameters)
            return jnp.sum(jnp.mean((q_all(p, s, batch["u"]) - y) ** 2, axis=0))

        c_loss, c_grad = jax.value_and_grad(critic_loss)(nets.critic)
        c_upd, c_opt = jax.vmap(critic_tx.update)(c_grad, nets.critic_opt, nets.critic)
        critic_p = optax.apply_updates(nets.critic, c_upd)

        def actor_loss(p):
            mine = pi(p, batch["obs"])  # (B, M, A)
            eye = jnp.eye(m, dtype=bool)[:, None, :, None]  # (i, 1, j, 1)
            # joint action for critic i: agent i's own from π_i, others from the buffer
            joint = jnp.where(eye, mine[None], batch["u"][None])  # (M, B, M, A)
            flat = joint.reshape(m, joint.shape[1], -1)
            q = jax.vmap(critic.apply, in_axes=(0, None, 0))(critic_p, s, flat)  # (M, B)
            return -jnp.sum(jnp.mean(q, axis=1))

        a_loss, a_grad = jax.value_and_grad(actor_loss)(nets.actor)
        a_upd, a_opt = jax.vmap(actor_tx.update)(a_grad, nets.actor_opt, nets.actor)
        actor_p = optax.apply_updates(nets.actor, a_upd)
        soft = lambda t, x: (1.0 - cfg.tau) * t + cfg.tau * x  # noqa: E731
        new = Nets(actor_p, critic_p, jax.tree.map(soft, nets.target_actor, actor_p),
                   jax.tree.map(soft, nets.target_critic, critic_p), a_opt, c_opt)
        return new, {"critic_loss": c_loss, "actor_loss": a_loss}

    def train(key, env_params, gamma=None):
        """``gamma`` (optional, may be traced) overrides ``config.gamma``, so a γ sweep is
        one ``vmap`` of one compiled function."""
        gamma = jnp.asarray(cfg.gamma if gamma is None else gamma, jnp.float32)
        k_net, k_env, k_run = jax.random.split(key, 3)
        nets = init_nets(k_net)
        obs, env_state = vreset(jax.random.split(k_env, cfg.num_envs), env_params)
        example = {"obs": jnp.zeros((m, obs_dim)), "u": jnp.zeros((m, a_dim)),
                   "rew": jnp.zeros((m,)), "nobs": jnp.zeros((m, obs_dim)),
                   "term": jnp.zeros(())}
        buf = replay.init(example, cfg.buffer_size)
        noise = jnp.zeros((cfg.num_envs, m, a_dim))
        ts = TrainState(nets, buf, env_state, obs[cls], noise, k_run, jnp.zeros((), jnp.int32))

        def iteration(ts: TrainState, _):
            key, k_noise, k_env, k_sample = jax.random.split(ts.key, 4)
            frac = jnp.minimum(ts.update / max(cfg.total_updates - 1, 1), 1.0)
            sigma = cfg.noise_start + (cfg.noise_end - cfg.noise_start) * frac
            noise = ts.noise + cfg.ou_theta * (0.0 - ts.noise) + sigma * jax.random.normal(
                k_noise, ts.noise.shape)  # Ornstein-Uhlenbeck (dt = 1)
            u = jnp.clip(pi(ts.nets.actor, ts.obs) + noise, -1.0, 1.0)
            action = {cls: codec.decode(u, env_params)}
            obs2, env_state, reward, term, trunc, info = vstep(
                jax.random.split(k_env, cfg.num_envs), ts.env_state, action, env_params)
            items = {"obs": ts.obs, "u": u, "rew": reward[cls],
                     "nobs": info["final_observation"][cls], "term": term.astype(jnp.float32)}
            buf = replay.add_batch(ts.buffer, items)
            def one_update(nets, k):
                return learn(nets, replay.sample(buf, k, cfg.batch_size), gamma)

            new_nets, stats = jax.lax.scan(
                one_update, ts.nets, jax.random.split(k_sample, cfg.updates_per_step))
            stats = jax.tree.map(lambda x: x[-1], stats)
            go = ts.update >= cfg.warmup_updates
            nets = jax.tree.map(lambda a, b: jnp.where(go, a, b), new_nets, ts.nets)
            done = (term | trunc)[:, None, None]
            noise = jnp.where(done, 0.0, noise)  # OU restarts with the episode
            metrics = {k: jnp.mean(v) for k, v in info.items()  # per-env scalar metrics
                       if k != "final_observation" and getattr(v, "shape", None) == (cfg.num_envs,)}
            metrics.update(reward=jnp.mean(reward[cls]), critic_loss=stats["critic_loss"],
                           actor_loss=stats["actor_loss"], noise_sigma=sigma)
            return TrainState(nets, buf, env_state, obs2[cls], noise, key, ts.update + 1), metrics

        final, metrics = jax.lax.scan(iteration, ts, None, cfg.total_updates)
        return final.nets.actor, metrics

    return train


def make_policy(env, config: MADDPGConfig, policy_params, noise_std: float = 0.0):
    """Deterministic ``policy(key, obs, state, params) -> action`` from trained actors
    (Gaussian noise of std ``noise_std`` on u if > 0)."""
    cls = _agent_class(env)
    codec = ActionCodec(env, cls)
    actor = Actor(codec.dim, tuple(config.hidden))

    def policy(key, obs, state, params):
        del state
        u = jax.vmap(actor.apply, in_axes=(0, 0))(policy_params, obs[cls])
        if noise_std > 0:
            u = jnp.clip(u + noise_std * jax.random.normal(key, u.shape), -1.0, 1.0)
        return {cls: codec.decode(u, params)}

    return policy
