"""MADFRL — multi-agent deep federated RL (SGIN paper Alg. 3, Sec. IV-B/C): a deterministic
actor-critic per follower (stacked, vmapped; each critic Q_i(s_i, a_i) local), a DDPG leader
that sets the price (``learn_leader``), FedAvg of the follower actors (eq. 34-36).

``train(key, env_params, init=None)``: ``init``, one follower ``{"actor"[, "critic"]}``
copied to every follower (``agents.maml_madfrl``'s θ), the rest random. Decisions:
docs/learners.md §MADFRL.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from agents import core, replay
from agents.adapters import for_env
from agents.federated import FederatedConfig, maybe_aggregate
from agents.networks import (
    MASKED_LOGIT,
    MLP,
    Group,
    QCritic,
    action_group,
    box_bounds,
    encoding,
    head_orders,
    masks_in_rank_order,
    orthogonal_dense,
    select_modes,
    to_env_action,
)
from jaxsg.policy import RecurrentPolicy


@dataclasses.dataclass(frozen=True)
class Config:
    num_envs: int = 8
    num_updates: int = 400
    buffer_size: int = 1024  # time steps kept (each holds every env and agent)
    batch_size: int = 64
    warmup_updates: int = 16
    gamma: float = 0.9
    tau: float = 0.02
    actor_lr: float = 1e-3
    critic_lr: float = 2e-3
    max_grad_norm: float = 10.0
    reward_scale: float = 0.01
    gumbel_temperature: float = 1.0
    eps_start: float = 0.3
    eps_end: float = 0.02
    eps_decay_fraction: float = 1.0
    noise_std: float = 0.3
    hidden: Sequence[int] = (64, 64)
    agent_id: bool = True  #: append a one-hot follower index to each observation
    #: None: the adapter's (``to_env_action``, ``head_orders``, ``select_modes``)
    relative_heads: tuple[str, ...] | None = None
    ranked_heads: tuple[tuple[str, str], ...] | None = None
    mode_heads: tuple[tuple[str, str], ...] | None = None
    learn_leader: bool = True
    leader_commit: bool = True  #: one price per episode; False: per slot (docs/learners.md)
    leader_shared: bool | None = None  #: one value per Box head (None: the adapter's)
    leader_gamma: float | None = None  #: the per-slot leader's discount (None: ``gamma``)
    leader_eps: float | None = 1.0  #: constant ε-uniform rate (None: the followers' schedule)
    #: greedy mode heads: "critic", argmax_k Q_i(s, k, x_k(s)) (params carry
    #: ``follower_critic``), or "actor", the mode logits' argmax
    mode_choice: str = "critic"
    #: actor aggregation; "fedavg" weights come from the adapter's ``federated_weights``
    federated: FederatedConfig | None = FederatedConfig(rule="fedavg", period=10)

    BOUNDS: ClassVar = dict(  # besides core.COMMON_BOUNDS
        tau=core.UNIT, actor_lr=core.POSITIVE, critic_lr=core.POSITIVE,
        gumbel_temperature=core.POSITIVE, noise_std=core.NON_NEGATIVE,
        leader_gamma=core.UNIT, leader_eps=core.UNIT)
    CHOICES: ClassVar = dict(mode_choice=("critic", "actor"))

    def __post_init__(self):
        core.check_config(self)


class DeterministicHybridActor(nn.Module):
    """Logits per discrete head and pre-tanh means per continuous component."""

    discrete: tuple[tuple[str, int], ...]
    continuous: tuple[tuple[str, int], ...]  # (name, size)
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs):
        h = MLP(self.hidden, "relu", name="torso")(obs)
        logits = {k: orthogonal_dense(n, 0.01, name=f"logits_{k}")(h) for k, n in self.discrete}
        pre = {k: orthogonal_dense(size, 0.01, name=f"mean_{k}")(h) for k, size in self.continuous}
        return logits, pre


def follower_obs(obs: jnp.ndarray, agent_id: bool) -> jnp.ndarray:
    """The follower network input: its observation (…, n, d), plus a one-hot index."""
    return core.with_agent_id(obs) if agent_id else obs


def features_from(logits_onehot: dict, unit: dict, group: Group) -> jnp.ndarray:
    """Critic input: one-hots (or relaxed one-hots) and continuous values in [−1, 1]."""
    parts = [logits_onehot[k] for k, _ in group.discrete]
    parts += [unit[k] for k, _ in group.continuous]
    return jnp.concatenate(parts, axis=-1)


def feature_dim(group: Group) -> int:
    """Width of :func:`features_from`."""
    return sum(n for _, n in group.discrete) + sum(size for _, size in group.continuous)


def _masked(logits, mask):
    return logits if mask is None else jnp.where(mask, logits, MASKED_LOGIT)


def explore(key, logits, pre, masks, group, eps, noise_std):
    """Exploratory action: one-hots and unit continuous values (pre-bounds)."""
    onehots, unit = {}, {}
    k_disc, k_cont = jax.random.split(key)
    for (k, n), kk in zip(group.discrete, jax.random.split(k_disc, max(len(group.discrete), 1))):
        k_soft, k_uniform, k_coin = jax.random.split(kk, 3)
        mask = None if masks is None else masks.get(k)
        lg = _masked(logits[k], mask)
        sampled = jax.random.categorical(k_soft, lg)
        uniform_logits = jnp.zeros_like(lg) if mask is None else jnp.where(mask, 0.0, MASKED_LOGIT)
        uniform = jax.random.categorical(k_uniform, uniform_logits)
        coin = jax.random.uniform(k_coin, sampled.shape) < eps
        onehots[k] = jax.nn.one_hot(jnp.where(coin, uniform, sampled), n)
    cont_keys = jax.random.split(k_cont, max(len(group.continuous), 1))
    for (k, _), kk in zip(group.continuous, cont_keys):
        k_noise, k_uniform, k_coin = jax.random.split(kk, 3)
        noisy = jnp.tanh(pre[k] + noise_std * jax.random.normal(k_noise, pre[k].shape))
        uniform = jax.random.uniform(k_uniform, pre[k].shape, minval=-1.0, maxval=1.0)
        unit[k] = jnp.where(jax.random.uniform(k_coin, pre[k].shape) < eps, uniform, noisy)
    return onehots, select_modes(onehots, unit, group)


def greedy(logits, pre, masks, group, q_fn=None):
    """Greedy one-hots and unit values; with ``q_fn`` (features → Q) each mode head takes
    the critic's best option (:func:`critic_modes`) instead of its logits' argmax."""
    onehots = {
        # NaN logits → INVALID_ACTION → an all-zero row, which to_env_action keeps invalid
        k: jax.nn.one_hot(core.greedy(_masked(logits[k], None if masks is None
                                              else masks.get(k))), n)
        for k, n in group.discrete
    }
    unit = {k: jnp.tanh(pre[k]) for k, _ in group.continuous}
    if q_fn is not None:
        onehots = critic_modes(q_fn, onehots, unit, masks, group)
    return onehots, select_modes(onehots, unit, group)


def option_values(q_fn, onehots, unit, group: Group, d: str) -> jnp.ndarray:
    """Q_k = ``q_fn``(features with mode head ``d`` at option k and k's own continuous
    block x_k), for every option k: shape (..., n)."""
    n = dict(group.discrete)[d]

    def q_of(option):
        pick = dict(onehots, **{d: jnp.broadcast_to(jax.nn.one_hot(option, n),
                                                    onehots[d].shape)})
        return q_fn(features_from(pick, select_modes(pick, unit, group), group))

    return jnp.moveaxis(jax.vmap(q_of)(jnp.arange(n)), 0, -1)


def critic_modes(q_fn, onehots, unit, masks, group: Group) -> dict:
    """``onehots`` with each mode head's option replaced by argmax_k Q_k
    (:func:`option_values`, available options only; NaN Q → an invalid action)."""
    for d in sorted({d for _, d in group.modes}):
        q = option_values(q_fn, onehots, unit, group, d)
        mask = None if masks is None else masks.get(d)
        onehots = dict(onehots, **{d: jax.nn.one_hot(core.greedy(_masked(q, mask)),
                                                     q.shape[-1])})
    return onehots


def relaxed(key, logits, pre, masks, group, temperature):
    """Straight-through Gumbel-softmax one-hots and reparameterised tanh means (the
    per-mode continuous blocks not yet selected, see :func:`actor_objective`)."""
    onehots = {}
    keys = jax.random.split(key, max(len(group.discrete), 1))
    for i, (k, n) in enumerate(group.discrete):
        lg = _masked(logits[k], None if masks is None else masks.get(k))
        g = jax.random.gumbel(keys[i], lg.shape)
        soft = jax.nn.softmax((lg + g) / temperature, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(soft, -1), n)
        onehots[k] = hard + soft - jax.lax.stop_gradient(soft)
    return onehots, {k: jnp.tanh(pre[k]) for k, _ in group.continuous}


PRE_TANH_LIMIT = 3.0  #: tanh'(3) ≈ 0.01: a mean kept below it can still move


def actor_objective(q_fn, key, logits, pre, masks, group, temperature):
    """The actor's objective per sample: ``q_fn(features)`` at the relaxed action, less a
    hinge on pre-tanh means beyond ``PRE_TANH_LIMIT``; with mode heads Σ_k Q_k + log
    p(argmax_k Q_k) (P-DQN style; docs/learners.md §MADFRL)."""
    oh, unit = relaxed(key, logits, pre, masks, group, temperature)
    total = -sum(jnp.sum(jax.nn.relu(jnp.abs(v) - PRE_TANH_LIMIT) ** 2, -1) for v in pre.values())
    by = {d for _, d in group.modes}
    if not by:
        return total + q_fn(features_from(oh, select_modes(oh, unit, group), group))
    for d in sorted(by):  # a few static heads; their options are vmapped
        n = dict(group.discrete)[d]
        mask = None if masks is None else masks.get(d)
        q = option_values(q_fn, oh, unit, group, d)  # (..., n)
        best = jax.nn.one_hot(jnp.argmax(_masked(jax.lax.stop_gradient(q), mask), -1), n)
        log_p = jax.nn.log_softmax(_masked(logits[d], mask), -1)
        total = total + jnp.sum(q + best * log_p, -1)
    return total


def act_followers(env, cfg: Config, apply_actor, obs, masks, group: Group, low, high,
                  key=None, eps=0.0, apply_critic=None):
    """The followers' decision: :func:`explore` with ``key``, else :func:`greedy` (mode heads
    by ``apply_critic(input, features)`` if given). Returns ``(one-hots, unit values, env
    action, ranked masks, network input)``."""
    ad = for_env(env)
    relative, ranked, _ = encoding(cfg, ad)
    orders = head_orders(env, obs, ranked, ad.learning_class(env))
    masks = masks_in_rank_order(masks, orders)
    x = follower_obs(obs, cfg.agent_id)
    logits, pre = apply_actor(x)
    if key is None:
        q_fn = None if apply_critic is None else functools.partial(apply_critic, x)
        oh, un = greedy(logits, pre, masks, group, q_fn)
    else:
        oh, un = explore(key, logits, pre, masks, group, eps, cfg.noise_std)
    return oh, un, to_env_action(oh, un, group, low, high, relative, orders), masks, x


AgentGroupState = core.ActorCritic  # stacked actors, critics, targets, optimisers


@struct.dataclass
class TrainState:
    follower: AgentGroupState
    leader: AgentGroupState
    global_actor: Any
    buffer: replay.Replay
    env_state: Any
    obs: dict
    #: the leader's previous (observation, action features, valid) per env (docs/learners.md)
    prev_leader: dict
    key: jnp.ndarray
    update: jnp.ndarray


class _Spec(NamedTuple):
    f_cls: str
    l_cls: str
    n_f: int
    f_group: Group
    l_group: Group
    l_shared: bool
    f_actor: DeterministicHybridActor
    l_actor: DeterministicHybridActor
    critic: QCritic  # every agent's critic module (its own parameters)
    f_obs_dim: int  # follower network input: observation (+ one-hot index)


def _spec(env, cfg: Config) -> _Spec:
    ad = for_env(env)
    f_cls, l_cls = ad.learning_class(env), ad.leader_class
    if l_cls not in env.agent_classes:
        raise ValueError(f"MADFRL needs a leader class; the adapter of {env.name} names "
                         f"{l_cls!r}, env classes {env.agent_classes}")
    f_group = action_group(env.action_space(f_cls), encoding(cfg, ad)[2])
    l_group = action_group(env.action_space(l_cls))
    shared = getattr(ad, "leader_shared", False) if cfg.leader_shared is None \
        else cfg.leader_shared
    if shared:
        l_group = Group(l_group.discrete, tuple((k, 1) for k, _ in l_group.continuous), ())
    hidden = tuple(cfg.hidden)
    n_f = env.num_agents(f_cls)
    return _Spec(f_cls, l_cls, n_f, f_group, l_group, shared,
                 DeterministicHybridActor(f_group.discrete, f_group.actor_continuous(), hidden),
                 DeterministicHybridActor(l_group.discrete, l_group.actor_continuous(), hidden),
                 QCritic(hidden, "relu"),
                 env.observation_space(f_cls).shape[-1] + (n_f if cfg.agent_id else 0))


def uses_critic(env, config: Config) -> bool:
    """Whether greedy followers pick modes by their critics (``mode_choice="critic"`` and
    the follower group has mode heads): the policy params then carry ``follower_critic``."""
    return config.mode_choice == "critic" and bool(_spec(env, config).f_group.modes)


def critic_apply(sp: _Spec, critic_params):
    """``(input, features) -> Q`` of the stacked follower critics (agent axis −2 → −1)."""
    return lambda x, feat: core.stacked_apply(sp.critic.apply, critic_params, x, feat,
                                              out_axis=-1)


def leader_bounds(env, l_cls: str, params) -> tuple[dict, dict]:
    """The range the leader's actor maps its tanh output onto: the adapter's
    ``leader_bounds(env, params)`` if it has one, else the action space's."""
    ad = for_env(env)
    if hasattr(ad, "leader_bounds"):
        return ad.leader_bounds(env, params)
    return box_bounds(env.action_space(l_cls, params))


def leader_env_action(onehots, unit, sp: _Spec, low: dict, high: dict) -> dict:
    """The leader's env action; a shared leader's one value per Box head is broadcast to
    every component of it (the bounds' first component maps it)."""
    if not sp.l_shared:
        return to_env_action(onehots, unit, sp.l_group, low, high)
    first = lambda d: {k: v[..., 0] for k, v in d.items()}  # noqa: E731
    action = to_env_action(onehots, unit, sp.l_group, first(low), first(high))
    return {k: jnp.broadcast_to(v[..., None], v.shape + low[k].shape[-1:]) if k in low else v
            for k, v in action.items()}


def _unwrap(action: dict, space) -> Any:
    return action if hasattr(space, "spaces") else action["action"]


def make_train(env, config: Config):
    """Build ``train(key, env_params, init=None) -> (policy_params, metrics)`` (pure)."""
    cfg, ad = config, for_env(env)
    sp = _spec(env, cfg)
    f_cls, l_cls, n_f, f_group, l_group = sp.f_cls, sp.l_cls, sp.n_f, sp.f_group, sp.l_group
    critic, feat_dim, obs_dim_f = sp.critic, feature_dim, sp.f_obs_dim
    obs_dim_l = env.observation_space(l_cls).shape[-1]
    n_l = env.num_agents(l_cls)
    f_in = lambda o: follower_obs(o, cfg.agent_id)  # noqa: E731
    actor_tx = core.adam(cfg.actor_lr, cfg.max_grad_norm)
    critic_tx = core.adam(cfg.critic_lr, cfg.max_grad_norm)
    epsilon = core.linear(cfg.eps_start, cfg.eps_end,
                          cfg.eps_decay_fraction * (cfg.num_updates - 1))
    vreset, vstep = core.vec_env(env, cfg.num_envs)
    fed = cfg.federated
    l_gamma = cfg.gamma if cfg.leader_gamma is None else cfg.leader_gamma
    commit = cfg.learn_leader and cfg.leader_commit
    with_critic = uses_critic(env, cfg)

    def init_group(key, actor, obs_dim, n_feat, n_agents, init=None):
        init = {} if init is None else init  # a given network is copied to every agent
        k_a, k_c = jax.random.split(key)
        actor_p = core.broadcast_agents(init["actor"], n_agents) if "actor" in init else \
            core.stacked_init(actor.init, k_a, n_agents, jnp.zeros((obs_dim,)))
        critic_p = core.broadcast_agents(init["critic"], n_agents) if "critic" in init else \
            core.stacked_init(critic.init, k_c, n_agents, jnp.zeros((obs_dim,)),
                              jnp.zeros((n_feat,)))
        return core.ActorCritic.create(actor_p, critic_p, actor_tx, critic_tx)

    def group_update(gs: AgentGroupState, actor, group, batch, key, masks, gamma):
        """One critic and one actor step for every agent of a group (vmapped)."""
        obs, feat, nobs = batch["obs"], batch["feat"], batch["nobs"]
        # target: a' from the target actor at s' (greedy), bootstrapped unless terminated;
        # γ = 0 (a Python float) skips the target networks' forward passes
        target = batch["rew"] * cfg.reward_scale
        if gamma != 0.0:
            oh_n, un_n = greedy(*core.stacked_apply(actor.apply, gs.target_actor, nobs), None,
                                group)
            q_next = critic_apply(sp, gs.target_critic)(nobs, features_from(oh_n, un_n, group))
            target = target + gamma * (1.0 - batch["term"][:, None]) * q_next
        target = jax.lax.stop_gradient(target)
        weight = batch["valid"][:, None]  # 0: a transition that is not one (see prev_leader)
        norm = jnp.maximum(weight.sum(), 1.0)

        def critic_loss(p):
            q = critic_apply(sp, p)(obs, feat)
            return (jnp.sum(weight * (q - target) ** 2, axis=0) / norm).sum(), q

        def actor_loss(p, critic_p):
            lg, pre = core.stacked_apply(actor.apply, p, obs)
            value = actor_objective(functools.partial(critic_apply(sp, critic_p), obs), key, lg,
                                    pre, masks, group, cfg.gumbel_temperature)
            return -jnp.mean(value, 0).sum()

        new, c_loss, a_loss, q = core.actor_critic_step(gs, critic_loss, actor_loss, actor_tx,
                                                        critic_tx, cfg.tau)
        return new, {"critic_loss": c_loss, "actor_loss": a_loss, "q_mean": q.mean()}

    def train(key, env_params, init=None):
        k_f, k_l, k_env, k_run = jax.random.split(key, 4)
        follower = init_group(k_f, sp.f_actor, obs_dim_f, feat_dim(f_group), n_f, init)
        leader = init_group(k_l, sp.l_actor, obs_dim_l, feat_dim(l_group), n_l)
        obs, env_state = vreset(k_env, env_params)
        item = {  # one env step of every agent
            "f_obs": jnp.zeros((n_f, obs_dim_f)), "f_feat": jnp.zeros((n_f, feat_dim(f_group))),
            "f_rew": jnp.zeros((n_f,)), "f_nobs": jnp.zeros((n_f, obs_dim_f)),
            "f_masks": {k: jnp.zeros((n_f, n), bool) for k, n in f_group.discrete},
            "l_obs": jnp.zeros((n_l, obs_dim_l)), "l_feat": jnp.zeros((n_l, feat_dim(l_group))),
            "l_rew": jnp.zeros((n_l,)), "l_nobs": jnp.zeros((n_l, obs_dim_l)),
            "l_valid": jnp.zeros(()), "l_term": jnp.zeros(()), "term": jnp.zeros(())}
        buffer = replay.init(item, cfg.buffer_size * cfg.num_envs)
        global_actor = jax.tree.map(lambda x: x[0], follower.actor)
        prev_leader = {"obs": jnp.zeros((cfg.num_envs, n_l, obs_dim_l)),
                       "feat": jnp.zeros((cfg.num_envs, n_l, feat_dim(l_group))),
                       "valid": jnp.zeros((cfg.num_envs,))}
        if commit:  # every env starts an episode: the first step commits a price
            prev_leader = {
                "obs": prev_leader["obs"], "feat": prev_leader["feat"],
                "action": jax.tree.map(lambda a: jnp.zeros((cfg.num_envs,) + a.shape, a.dtype),
                                       ad.fixed_actions(env, env_params)[l_cls]),
                "fresh": jnp.ones((cfg.num_envs,), bool)}
        state = TrainState(follower, leader, global_actor, buffer, env_state, obs, prev_leader,
                           k_run, jnp.zeros((), jnp.int32))
        f_low, f_high = box_bounds(env.action_space(f_cls, env_params))
        l_low, l_high = leader_bounds(env, l_cls, env_params)
        posted = jax.tree.map(lambda a: jnp.broadcast_to(a, (cfg.num_envs,) + a.shape),
                              ad.fixed_actions(env, env_params))

        def update_step(ts: TrainState, _):
            key, k_act_f, k_act_l, k_env, k_sample, k_fu, k_lu = jax.random.split(ts.key, 7)
            eps = epsilon(ts.update)
            masks = jax.vmap(env.avail_actions, in_axes=(0, None))(ts.env_state, env_params)
            actor = functools.partial(core.stacked_apply, sp.f_actor.apply, ts.follower.actor)
            oh, un, f_action, f_masks, f_obs = act_followers(
                env, cfg, actor, ts.obs[f_cls], masks[f_cls], f_group, f_low, f_high, k_act_f, eps)
            lg_l, pre_l = core.stacked_apply(sp.l_actor.apply, ts.leader.actor, ts.obs[l_cls])
            eps_l = eps if cfg.leader_eps is None else cfg.leader_eps
            oh_l, un_l = explore(k_act_l, lg_l, pre_l, None, l_group, eps_l, cfg.noise_std)
            l_feat = features_from(oh_l, un_l, l_group)
            if cfg.learn_leader:
                l_action = leader_env_action(oh_l, un_l, sp, l_low, l_high)
                l_action = _unwrap(l_action, env.action_space(l_cls))
            else:
                l_action = posted[l_cls]
            prev = ts.prev_leader
            if commit:  # a new price at an episode's first step only, else the held one
                hold = lambda new, old: jax.tree.map(  # noqa: E731
                    lambda n, o: jnp.where(prev["fresh"].reshape((-1,) + (1,) * (n.ndim - 1)),
                                           n, o), new, old)
                l_action, l_feat = hold(l_action, prev["action"]), hold(l_feat, prev["feat"])
                l_obs0 = hold(ts.obs[l_cls], prev["obs"])
            action = {f_cls: _unwrap(f_action, env.action_space(f_cls)), l_cls: l_action}
            obs2, env_state, reward, term, trunc, info = vstep(k_env, ts.env_state, action,
                                                               env_params)
            final = info["final_observation"]
            done = (term | trunc).astype(jnp.float32)
            if commit:
                # (o_0, a_0) with this step's profit, no bootstrap (docs/learners.md)
                l_item = {"l_obs": l_obs0, "l_feat": l_feat, "l_rew": reward[l_cls],
                          "l_nobs": ts.obs[l_cls],
                          "l_valid": 1.0 - prev["fresh"].astype(jnp.float32),
                          "l_term": jnp.ones_like(done)}
                prev_leader = {"obs": l_obs0, "feat": l_feat, "action": l_action,
                               "fresh": done > 0}
            else:
                # (o_{t−1}, a_{t−1}) with this step's profit and o_t; invalid after a reset
                l_item = {"l_obs": prev["obs"], "l_feat": prev["feat"],
                          "l_rew": reward[l_cls], "l_nobs": ts.obs[l_cls],
                          "l_valid": prev["valid"], "l_term": term.astype(jnp.float32)}
                prev_leader = {"obs": ts.obs[l_cls], "feat": l_feat, "valid": 1.0 - done}
            buf = replay.add_batch(ts.buffer, {
                "f_obs": f_obs, "f_feat": features_from(oh, un, f_group),
                "f_rew": reward[f_cls], "f_nobs": f_in(final[f_cls]), "f_masks": f_masks,
                **l_item, "term": term.astype(jnp.float32)})
            b = replay.sample(buf, k_sample, cfg.batch_size)
            f_batch = {"obs": b["f_obs"], "feat": b["f_feat"], "rew": b["f_rew"],
                       "nobs": b["f_nobs"], "term": b["term"], "valid": jnp.ones_like(b["term"])}
            l_batch = {"obs": b["l_obs"], "feat": b["l_feat"], "rew": b["l_rew"],
                       "nobs": b["l_nobs"], "term": b["l_term"], "valid": b["l_valid"]}
            new_f, f_stats = group_update(ts.follower, sp.f_actor, f_group, f_batch, k_fu,
                                          b["f_masks"], cfg.gamma)
            new_l, l_stats = group_update(ts.leader, sp.l_actor, l_group, l_batch, k_lu, None,
                                          l_gamma)
            learn = ts.update >= cfg.warmup_updates
            follower = core.gate(learn, new_f, ts.follower)
            leader = core.gate(learn, new_l, ts.leader) if cfg.learn_leader else ts.leader
            global_actor = ts.global_actor
            if fed is not None:
                weights = ad.federated_weights(env, ts.obs[f_cls])
                global_actor, actor = maybe_aggregate(fed, ts.update, global_actor,
                                                      follower.actor, weights)
                follower = follower.replace(actor=actor)
            metrics = {k: v for k, v in core.env_metrics(info).items() if v.ndim == 0}
            metrics.update({
                "follower_reward": reward[f_cls].mean(), "leader_reward": reward[l_cls].mean(),
                "critic_loss": f_stats["critic_loss"], "actor_loss": f_stats["actor_loss"],
                "leader_critic_loss": l_stats["critic_loss"], "epsilon": eps})
            new_ts = TrainState(follower, leader, global_actor, buf, env_state, obs2,
                                prev_leader, key, ts.update + 1)
            return new_ts, metrics

        final_ts, metrics = jax.lax.scan(update_step, state, None, cfg.num_updates)
        policy_params = {"follower": final_ts.follower.actor, "leader": final_ts.leader.actor}
        if with_critic:
            policy_params["follower_critic"] = final_ts.follower.critic
        return policy_params, metrics

    return train


def make_policy(env, config: Config, policy_params, deterministic: bool = True,
                eps: float = 0.0):
    """``policy(key, obs, state, params) -> action`` from trained MADFRL actors (greedy
    by default; ``deterministic=False`` explores with ε and the training noise)."""
    ad = for_env(env)
    sp = _spec(env, config)
    critic = critic_apply(sp, policy_params["follower_critic"]) \
        if uses_critic(env, config) else None

    def policy(key, obs, state, params):
        f_low, f_high = box_bounds(env.action_space(sp.f_cls, params))
        l_low, l_high = leader_bounds(env, sp.l_cls, params)
        actor = functools.partial(core.stacked_apply, sp.f_actor.apply, policy_params["follower"])
        _, _, follower, _, _ = act_followers(
            env, config, actor, obs[sp.f_cls], env.avail_actions(state, params)[sp.f_cls],
            sp.f_group, f_low, f_high, None if deterministic else key, eps, critic)
        action = {sp.f_cls: _unwrap(follower, env.action_space(sp.f_cls))}
        if config.learn_leader:
            lg_l, pre_l = core.stacked_apply(sp.l_actor.apply, policy_params["leader"],
                                             obs[sp.l_cls])
            oh_l, un_l = greedy(lg_l, pre_l, None, sp.l_group)
            leader = leader_env_action(oh_l, un_l, sp, l_low, l_high)
            action[sp.l_cls] = _unwrap(leader, env.action_space(sp.l_cls))
        else:
            action[sp.l_cls] = ad.fixed_actions(env, params)[sp.l_cls]
        return action

    if not (config.learn_leader and config.leader_commit):
        return policy

    def apply(carry, key, obs, state, params, reset):
        """The leader's price of the episode's first step, held to its end."""
        action = policy(key, obs, state, params)
        held = jax.tree.map(lambda new, old: jnp.where(reset, new, old), action[sp.l_cls], carry)
        return held, {**action, sp.l_cls: held}

    return RecurrentPolicy(
        init_carry=lambda params: jax.tree.map(jnp.zeros_like,
                                               ad.fixed_actions(env, params)[sp.l_cls]),
        apply=apply)


def init_policy_params(env, config: Config, key):
    """Fresh actors ``{"follower", "leader"}`` (and ``follower_critic`` if
    :func:`uses_critic`): the template for ``core.load_checkpoint``."""
    sp = _spec(env, config)
    k_f, k_l = jax.random.split(key)
    out = {"follower": core.stacked_init(sp.f_actor.init, k_f, sp.n_f,
                                         jnp.zeros((sp.f_obs_dim,))),
           "leader": core.stacked_init(sp.l_actor.init, k_l, env.num_agents(sp.l_cls),
                                       jnp.zeros((env.observation_space(sp.l_cls).shape[-1],)))}
    if uses_critic(env, config):
        out["follower_critic"] = core.stacked_init(
            sp.critic.init, jax.random.fold_in(key, 1), sp.n_f, jnp.zeros((sp.f_obs_dim,)),
            jnp.zeros((feature_dim(sp.f_group),)))
    return out
