"""MADDPG (Lowe et al. 2017) as the DTWN paper's Algorithm 1 (Lu et al., TII 2021, Sec. IV-B):
tanh actors π_i(o_i) → [−1, 1]^A on the Box components (:class:`ActionCodec`), OU noise
(eq. 21), centralised critics Q_i(s, u_1, …, u_M) (eq. 23), the actor step of eq. 22, soft
targets (eq. 24-25, β = ``tau``); metrics: reward, scalar env metrics, losses (docs/learners.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from agents import core, replay
from agents.adapters import for_env
from agents.networks import MLPHead, QCritic, box_bounds, components, hybrid_heads
from jaxsg import spaces

REWARD_TRANSFORMS = ("linear", "log_cost")


def shaped_reward(reward, transform: str, scale):
    """The reward the critic learns: ``r·scale`` or, for a negative cost r < 0,
    ``−log(−r)·scale`` (same per-state argmax; a cost's heavy tail is compressed)."""
    if transform == "log_cost":
        return -jnp.log(-reward) * scale
    return reward * scale


@dataclasses.dataclass(frozen=True)
class Config:
    num_envs: int = 8
    num_updates: int = 2000
    buffer_size: int = 20000  # transitions (one per env per iteration)
    batch_size: int = 128
    warmup_updates: int = 50
    updates_per_step: int = 1  # gradient updates per env step (of num_envs transitions)
    gamma: float = 0.9
    tau: float = 0.01  # β of eq. 24-25
    actor_lr: float = 3e-4
    critic_lr: float = 2e-3
    max_grad_norm: float = 10.0
    reward_scale: float | None = None  # None: the scenario adapter's scale (edge_assoc: 1)
    reward_transform: str = "linear"  # or "log_cost" (:func:`shaped_reward`)
    preact_l2: float = 0.0  # weight of the actor's penalty mean(z²) on its pre-tanh output z
    policy_from: str = "actor"  # the policy returned: the online or the "target" actors
    ou_theta: float = 0.15
    noise_start: float = 0.3
    noise_end: float = 0.05
    hidden: Sequence[int] = (128, 128)

    BOUNDS: ClassVar = dict(
        updates_per_step=core.COUNT, tau=core.UNIT, ou_theta=core.UNIT,
        actor_lr=core.POSITIVE, critic_lr=core.POSITIVE, preact_l2=core.NON_NEGATIVE,
        noise_start=core.NON_NEGATIVE, noise_end=core.NON_NEGATIVE)
    CHOICES: ClassVar = dict(policy_from=("actor", "target"), reward_transform=REWARD_TRANSFORMS)

    def __post_init__(self):
        core.check_config(self)
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"Config: field 'hidden' must be non-empty positive widths, "
                             f"got {self.hidden!r}")


def actor_network(action_dim: int, config: Config) -> MLPHead:
    """π_i(o_i) before the tanh: the pre-activation z (the policy is tanh(z))."""
    return MLPHead(action_dim, 0.01, "out", config.hidden)


class ActionCodec:
    """Flatten a Dict of Box components (leading agent axis) to u ∈ [−1, 1]^A per agent."""

    def __init__(self, env, agent_class: str):
        space = env.action_space(agent_class)
        discrete, self.names = hybrid_heads(space)
        if discrete:
            raise ValueError(f"MADDPG needs continuous (Box) actions; {discrete} are discrete")
        self.is_dict, comps = isinstance(space, spaces.Dict), components(space)
        self.shapes = {k: tuple(comps[k].shape[1:]) for k in self.names}
        self.sizes = {k: int(np.prod(self.shapes[k], dtype=np.int64)) for k in self.names}
        self.dim = sum(self.sizes.values())
        self.env, self.agent_class = env, agent_class

    def decode(self, u, params):
        """u (..., M, A) in [−1, 1] → env action dict with leaves (..., M, *shape)."""
        low, high = box_bounds(self.env.action_space(self.agent_class, params))
        out, col, lead = {}, 0, u.shape[:-1]
        for k in self.names:
            x = u[..., col:col + self.sizes[k]].reshape(lead + self.shapes[k])
            out[k] = low[k] + 0.5 * (x + 1.0) * (high[k] - low[k])
            col += self.sizes[k]
        return out if self.is_dict else out["action"]


class TrainState(NamedTuple):
    nets: core.ActorCritic
    buffer: replay.Replay
    env_state: Any
    obs: jnp.ndarray  # (E, M, d)
    noise: jnp.ndarray  # (E, M, A) OU state
    key: jnp.ndarray
    update: jnp.ndarray


def make_train(env, config: Config = Config()):
    """Build ``train(key, env_params) -> (policy_params, metrics)`` (pure, jit-able)."""
    cfg, ad = config, for_env(env)
    cls = ad.learning_class(env, only="MADDPG")
    m = env.num_agents(cls)
    obs_dim = env.observation_space(cls).shape[-1]
    codec = ActionCodec(env, cls)
    a_dim = codec.dim
    actor = actor_network(a_dim, cfg)
    critic = QCritic(tuple(cfg.hidden), "relu")
    actor_tx = core.adam(cfg.actor_lr, cfg.max_grad_norm)
    critic_tx = core.adam(cfg.critic_lr, cfg.max_grad_norm)
    sigma_at = core.linear(cfg.noise_start, cfg.noise_end, cfg.num_updates - 1)
    reset, step = core.vec_env(env, cfg.num_envs)

    def pi(params, obs):  # params stacked (M, ...), obs (..., M, d) -> (..., M, A)
        return jnp.tanh(core.stacked_apply(actor.apply, params, obs))

    def q_all(params, state, u):  # state (B, M·d), u (B, M, A) -> (B, M)
        flat = u.reshape(u.shape[:-2] + (-1,))
        return jax.vmap(critic.apply, in_axes=(0, None, None), out_axes=-1)(params, state, flat)

    def init_nets(key):
        k_a, k_c = jax.random.split(key)
        a = core.stacked_init(actor.init, k_a, m, jnp.zeros((obs_dim,)))
        c = core.stacked_init(critic.init, k_c, m, jnp.zeros((m * obs_dim,)),
                              jnp.zeros((m * a_dim,)))
        return core.ActorCritic.create(a, c, actor_tx, critic_tx)

    def learn(nets: core.ActorCritic, batch, gamma, scale):
        s = batch["obs"].reshape(batch["obs"].shape[0], -1)
        s2 = batch["nobs"].reshape(s.shape)
        u2 = pi(nets.target_actor, batch["nobs"])
        r = shaped_reward(batch["rew"], cfg.reward_transform, scale)
        y = r + gamma * (1.0 - batch["term"][:, None]) * q_all(nets.target_critic, s2, u2)
        y = jax.lax.stop_gradient(y)

        def critic_loss(p):  # Σ_i of the per-agent losses (independent parameters)
            return jnp.sum(jnp.mean((q_all(p, s, batch["u"]) - y) ** 2, axis=0)), None

        def actor_loss(p, critic_p):
            z = core.stacked_apply(actor.apply, p, batch["obs"])  # (B, M, A) pre-tanh
            mine = jnp.tanh(z)
            eye = jnp.eye(m, dtype=bool)[:, None, :, None]  # (i, 1, j, 1)
            # joint action for critic i: agent i's own from π_i, others from the buffer
            joint = jnp.where(eye, mine[None], batch["u"][None])  # (M, B, M, A)
            flat = joint.reshape(m, joint.shape[1], -1)
            q = jax.vmap(critic.apply, in_axes=(0, None, 0))(critic_p, s, flat)  # (M, B)
            penalty = cfg.preact_l2 * m * jnp.mean(z ** 2)  # summed over the M agents
            return -jnp.sum(jnp.mean(q, axis=1)) + penalty

        new, c_loss, a_loss, _ = core.actor_critic_step(nets, critic_loss, actor_loss, actor_tx,
                                                        critic_tx, cfg.tau)
        return new, {"critic_loss": c_loss, "actor_loss": a_loss}

    def train(key, env_params, gamma=None):
        """``gamma`` (optional, may be traced) overrides ``config.gamma``, so a γ sweep is
        one ``vmap`` of one compiled function."""
        gamma = jnp.asarray(cfg.gamma if gamma is None else gamma, jnp.float32)
        scale = core.reward_scale(cfg, env, env_params)
        k_net, k_env, k_run = jax.random.split(key, 3)
        nets = init_nets(k_net)
        obs, env_state = reset(k_env, env_params)
        example = {"obs": jnp.zeros((m, obs_dim)), "u": jnp.zeros((m, a_dim)),
                   "rew": jnp.zeros((m,)), "nobs": jnp.zeros((m, obs_dim)),
                   "term": jnp.zeros(())}
        buf = replay.init(example, cfg.buffer_size)
        noise = jnp.zeros((cfg.num_envs, m, a_dim))
        ts = TrainState(nets, buf, env_state, obs[cls], noise, k_run, jnp.zeros((), jnp.int32))

        def iteration(ts: TrainState, _):
            key, k_noise, k_env, k_sample = jax.random.split(ts.key, 4)
            sigma = sigma_at(ts.update)
            noise = core.ou_step(ts.noise, k_noise, cfg.ou_theta, sigma)
            u = jnp.clip(pi(ts.nets.actor, ts.obs) + noise, -1.0, 1.0)
            action = {cls: codec.decode(u, env_params)}
            obs2, env_state, reward, term, trunc, info = step(k_env, ts.env_state, action,
                                                              env_params)
            items = {"obs": ts.obs, "u": u, "rew": reward[cls],
                     "nobs": info["final_observation"][cls], "term": term.astype(jnp.float32)}
            buf = replay.add_batch(ts.buffer, items)
            def one_update(nets, k):
                return learn(nets, replay.sample(buf, k, cfg.batch_size), gamma, scale)

            new_nets, stats = jax.lax.scan(
                one_update, ts.nets, jax.random.split(k_sample, cfg.updates_per_step))
            stats = jax.tree.map(lambda x: x[-1], stats)
            nets = core.gate(ts.update >= cfg.warmup_updates, new_nets, ts.nets)
            done = (term | trunc)[:, None, None]
            noise = jnp.where(done, 0.0, noise)  # OU restarts with the episode
            metrics = {k: v for k, v in core.env_metrics(info).items() if v.ndim == 0}
            metrics.update(reward=jnp.mean(reward[cls]), critic_loss=stats["critic_loss"],
                           actor_loss=stats["actor_loss"], noise_sigma=sigma)
            return TrainState(nets, buf, env_state, obs2[cls], noise, key, ts.update + 1), metrics

        final, metrics = jax.lax.scan(iteration, ts, None, cfg.num_updates)
        nets = final.nets
        return (nets.target_actor if cfg.policy_from == "target" else nets.actor), metrics

    return train


def make_policy(env, config: Config, policy_params):
    """Deterministic ``policy(key, obs, state, params) -> action`` from trained actors."""
    cls = for_env(env).learning_class(env, only="MADDPG")
    codec = ActionCodec(env, cls)
    actor = actor_network(codec.dim, config)

    def policy(key, obs, state, params):
        del key, state
        u = jnp.tanh(core.stacked_apply(actor.apply, policy_params, obs[cls]))
        return {cls: codec.decode(u, params)}

    return policy
