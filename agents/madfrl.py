"""MADFRL — multi-agent deep federated RL (SGIN paper Alg. 3, Sec. IV-B/C).

One actor-critic per follower (digital twin), parameters stacked on the agent
axis and vmapped — no Python loop over agents. Followers observe only their
own state (privacy: no information exchange between followers); their critics
``Q_i(s_i, a_i)`` see their own observation and action only.

* Critic: ``(r·κ + γ·Q'_i(s'_i, π'_i(s'_i)) − Q_i(s_i, a_i))²`` with target
  networks (soft updates, rate τ) and a pure-JAX replay buffer carried in the
  training scan. κ = ``reward_scale`` (the literal eq. 33 reward Q·D + V·F is
  O(10²–10⁴); we scale it by a fixed constant rather than a running statistic
  so that returns stay comparable across runs). Truncated episodes bootstrap
  from ``info["final_observation"]``; only ``terminated`` stops bootstrapping.
* Actor: ``−Q_i(s_i, π_i(s_i))`` through straight-through Gumbel-softmax
  discrete heads (offload, LEO, channel; forward one-hot, backward relaxed)
  and reparameterised tanh continuous heads (cpu_ghz, block_mbit: the
  deterministic tanh(μ) mapped to the action bounds, DDPG style).
* Exploration: discrete heads sample from the masked softmax, with
  probability ε a uniform available option (ε decays linearly); continuous
  heads add Gaussian noise before the tanh.
* Action representation (ours; the paper does not say how its actor encodes
  the channel and LEO): the channel head is an offset from the follower's index
  (``relative_heads``, see ``to_env_action``), and the LEO head picks the k-th
  best of the follower's own links by observed path loss (``ranked_heads``,
  see ``head_orders``). Both keep the FL-shared actor from sending every DT to
  one channel or one satellite label. Set both to ``()`` for plain labels.
* Leader: a DDPG actor-critic on S_L = {f, c} with reward Σ(λ − c)·f (eq. 11),
  setting the price of every DT (``learn_leader``; otherwise the leader posts
  ``params.price``). Open item: in 400 updates its price stays near the middle
  of its range (mean λ 5.1 over 8 seeds on default sgin, paper-scale budget),
  while the Stackelberg price is λ_max because followers buy f_min. Tried
  without effect: crediting each price with the next slot's profit (with
  ``price_mode="leader"`` a price applies from the next slot, and S_L does not
  show it) and a 10× leader learning rate (λ 4.8 and 6.3). On the 2×3-DT
  config, with next-slot crediting and γ = 0, the leader's critic fits (loss
  0.003) and the price in force during training (metric ``price_mean``) rises
  to 7.6, then falls back to 5.1 as the followers learn to buy f_min: the
  followers' demand moves under the leader.
* Federated learning (eq. 34-36): every ``federated.period`` updates the
  follower *actors* are aggregated with ``agents.federated.aggregate`` (task
  size and LEO distance weights for the ``"sgin"`` rule, read from the
  followers' own observations) and the global model is issued to every
  follower; critics stay local.

``make_train(env, config) -> train(key, env_params, init=None) -> (policy_params,
metrics)`` runs the whole loop in one ``lax.scan``, so ``jax.jit(jax.vmap(train))`` trains
many seeds or swept env params at once. ``init`` (optional) is one follower
actor-critic ``{"actor", "critic"}`` (single-agent params, e.g. a MAML
meta-initialisation from ``agents.maml_madfrl``) copied to every follower
instead of a random initialisation. ``make_policy`` turns trained params
into a ``policy(key, obs, state, params)`` with the heuristics' signature.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from agents.federated import FederatedConfig, aggregate
from agents.networks import MASKED_LOGIT, MLP, QCritic, box_bounds, hybrid_heads, orthogonal_dense


@dataclasses.dataclass(frozen=True)
class MADFRLConfig:
    num_envs: int = 8
    total_updates: int = 400
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
    noise_std: float = 0.3
    hidden: Sequence[int] = (64, 64)
    #: append a one-hot follower index to each follower's observation (its own, not
    #: private, information). Alone it did not stop the channel collapse at 4×12 DTs
    #: (29 Mbit/slot with and without it, MADFRLConfig(), 2 seeds): FL averaging dilutes
    #: each follower's id row. ``relative_heads`` does (see ``to_env_action``).
    agent_id: bool = True
    #: discrete heads read relative to the follower's index i: the head outputs k and the
    #: env receives (k + i) mod n. See ``to_env_action``.
    relative_heads: tuple[str, ...] = ("channel",)
    #: (head, observation feature): the head picks the k-th smallest entry of the
    #: feature instead of an option by label. See ``head_orders``.
    ranked_heads: tuple[tuple[str, str], ...] = (("leo", "path_loss"),)
    learn_leader: bool = True
    federated: FederatedConfig | None = FederatedConfig(rule="sgin", period=10)

    def __post_init__(self):
        for name in ("num_envs", "total_updates", "buffer_size", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MADFRLConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gamma", "tau", "eps_start", "eps_end"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                value = getattr(self, name)
                raise ValueError(f"MADFRLConfig.{name} must be in [0, 1], got {value}")


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


@struct.dataclass
class Group:
    """Static description of one agent class's action for the actor and critic."""

    discrete: tuple = struct.field(pytree_node=False)
    continuous: tuple = struct.field(pytree_node=False)  # (name, size)


def _group(space) -> Group:
    discrete, cont_names = hybrid_heads(space)
    comps = space.spaces if hasattr(space, "spaces") else {"action": space}
    sizes = tuple((k, int(np.prod(comps[k].shape[1:])) or 1) for k in cont_names)
    return Group(discrete, sizes)


def follower_obs(obs: jnp.ndarray, agent_id: bool) -> jnp.ndarray:
    """The follower network input: its observation (…, n, d), plus a one-hot index."""
    if not agent_id:
        return obs
    n = obs.shape[-2]
    ids = jnp.broadcast_to(jnp.eye(n, dtype=obs.dtype), obs.shape[:-2] + (n, n))
    return jnp.concatenate([obs, ids], axis=-1)


def features_from(logits_onehot: dict, unit: dict, group: Group) -> jnp.ndarray:
    """Critic input: one-hots (or relaxed one-hots) and continuous values in [−1, 1]."""
    parts = [logits_onehot[k] for k, _ in group.discrete]
    parts += [unit[k] for k, _ in group.continuous]
    return jnp.concatenate(parts, axis=-1)


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
        unit[k] = jnp.tanh(pre[k] + noise_std * jax.random.normal(kk, pre[k].shape))
    return onehots, unit


def greedy(logits, pre, masks, group):
    onehots = {
        k: jax.nn.one_hot(jnp.argmax(_masked(logits[k], None if masks is None else masks.get(k)),
                                     -1), n)
        for k, n in group.discrete
    }
    return onehots, {k: jnp.tanh(pre[k]) for k, _ in group.continuous}


def relaxed(key, logits, pre, masks, group, temperature):
    """Straight-through Gumbel-softmax one-hots and reparameterised tanh means."""
    onehots = {}
    keys = jax.random.split(key, max(len(group.discrete), 1))
    for i, (k, n) in enumerate(group.discrete):
        lg = _masked(logits[k], None if masks is None else masks.get(k))
        g = jax.random.gumbel(keys[i], lg.shape)
        soft = jax.nn.softmax((lg + g) / temperature, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(soft, -1), n)
        onehots[k] = hard + soft - jax.lax.stop_gradient(soft)
    return onehots, {k: jnp.tanh(pre[k]) for k, _ in group.continuous}


def head_orders(env, obs, ranked_heads) -> dict:
    """{head: option indices sorted by the named feature of ``obs``}, shape (..., n, options).

    With ``("leo", "path_loss")`` a follower's LEO head chooses "my k-th best link"
    rather than "satellite number k". Satellite labels carry no information (every
    LEO's geometry is drawn alike), and a shared (federated) actor must otherwise learn
    argmin over the path-loss features through its critic. Measured at the sgin
    defaults with FL and channel offsets: 336 Mbit/slot after 400 or 1500 updates, the
    same as a fixed LEO, vs 521 for the best-link LEO with MAMCC's channels. The
    ranking is the follower's own measurement, so no information is exchanged.
    """
    if not ranked_heads:
        return {}
    where = env.observation_slices("follower")
    return {head: jnp.argsort(obs[..., where[feature]], axis=-1) for head, feature in ranked_heads}


def masks_in_rank_order(masks: dict, orders: dict) -> dict:
    """Permute availability masks into the actor's (ranked) option order."""
    return {k: jnp.take_along_axis(m, orders[k], -1) if k in orders else m
            for k, m in masks.items()}


def to_env_action(onehots, unit, group, low, high, relative=(), orders=None):
    """One-hots → ints; unit values in [−1, 1] → the action bounds.

    Heads named in ``relative`` are offsets from the agent's index: agent i (last
    axis) choosing k sends (k + i) mod n to the env. After an FL round every
    follower holds the same actor, and a shared actor maps similar states to the same
    channel, so all 48 DTs pile onto one channel (measured at the sgin defaults:
    28.8 Mbit/slot vs 325 for uniformly random channels). Read as offsets, "everyone
    picks k" spreads the DTs over the channels instead (the assignment MAMCC uses).
    The one-hot agent id did not fix this: with FL, each agent trains only its own
    id row, and averaging dilutes that row 48-fold. Only for heads whose options are
    all available (sgin's channels are), since masks are not rotated.
    """
    action = {k: jnp.argmax(onehots[k], -1).astype(jnp.int32) for k, _ in group.discrete}
    sizes = dict(group.discrete)
    for k in relative:
        index = jnp.arange(action[k].shape[-1], dtype=jnp.int32)
        action[k] = (action[k] + index) % sizes[k]
    for k, order in (orders or {}).items():  # rank k → the option it stands for
        action[k] = jnp.take_along_axis(order, action[k][..., None], -1)[..., 0].astype(jnp.int32)
    for k, size in group.continuous:
        u = 0.5 * (unit[k] + 1.0)
        u = u if size > 1 else u[..., 0]
        action[k] = low[k] + u * (high[k] - low[k])
    return action


# -------------------------------------------------------------- training
@struct.dataclass
class AgentGroupState:
    actor: Any
    critic: Any
    target_actor: Any
    target_critic: Any
    actor_opt: Any
    critic_opt: Any


@struct.dataclass
class TrainState:
    follower: AgentGroupState
    leader: AgentGroupState
    global_actor: Any
    buffer: dict
    buffer_count: jnp.ndarray
    env_state: Any
    obs: dict
    key: jnp.ndarray
    update: jnp.ndarray


def make_train(env, config: MADFRLConfig):
    """Build ``train(key, env_params) -> (policy_params, metrics)`` (pure, jit-able)."""
    cfg = config
    n_f = env.num_agents("follower")
    f_space = env.action_space("follower")
    f_group = _group(f_space)
    l_group = Group((), (("price", n_f),))
    f_actor = DeterministicHybridActor(f_group.discrete, f_group.continuous, tuple(cfg.hidden))
    l_actor = DeterministicHybridActor((), l_group.continuous, tuple(cfg.hidden))
    critic = QCritic(tuple(cfg.hidden), "relu")
    f_feat_dim = sum(n for _, n in f_group.discrete) + len(f_group.continuous)
    env_obs_dim_f = env.observation_space("follower").shape[-1]
    obs_dim_f = env_obs_dim_f + (n_f if cfg.agent_id else 0)
    f_in = lambda o: follower_obs(o, cfg.agent_id)  # noqa: E731
    obs_dim_l = env.observation_space("leader").shape[-1]
    actor_tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.actor_lr))
    critic_tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.critic_lr))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    vreset = jax.vmap(env.reset, in_axes=(0, None))
    fed = cfg.federated

    def init_group(key, actor, obs_dim, feat_dim, n_agents, init=None):
        if init is None:
            k_a, k_c = jax.random.split(key)
            a_keys = jax.random.split(k_a, n_agents)
            c_keys = jax.random.split(k_c, n_agents)
            actor_p = jax.vmap(actor.init, in_axes=(0, None))(a_keys, jnp.zeros((obs_dim,)))
            critic_p = jax.vmap(critic.init, in_axes=(0, None, None))(
                c_keys, jnp.zeros((obs_dim,)), jnp.zeros((feat_dim,)))
        else:  # one given actor-critic copied to every agent of the group
            stack = lambda tree: jax.tree.map(  # noqa: E731
                lambda x: jnp.broadcast_to(x, (n_agents,) + jnp.shape(x)), tree)
            actor_p, critic_p = stack(init["actor"]), stack(init["critic"])
        return AgentGroupState(actor_p, critic_p, actor_p, critic_p,
                               jax.vmap(actor_tx.init)(actor_p), jax.vmap(critic_tx.init)(critic_p))

    def apply_actor(actor, params, obs):
        # params stacked on agents (A, ...); obs (..., A, d) -> outputs (..., A, ·)
        return jax.vmap(actor.apply, in_axes=(0, -2), out_axes=-2)(params, obs)

    def apply_critic(params, obs, feat):
        return jax.vmap(critic.apply, in_axes=(0, -2, -2), out_axes=-1)(params, obs, feat)

    def group_update(gs: AgentGroupState, actor, group, batch, key, masks_fn):
        """One critic and one actor step for every agent of a group (vmapped)."""
        obs, feat, rew, nobs, term = batch["obs"], batch["feat"], batch["rew"], batch["nobs"], \
            batch["term"]
        # target: a' from the target actor at s' (greedy), bootstrapped unless terminated
        lg_n, pre_n = apply_actor(actor, gs.target_actor, nobs)
        oh_n, un_n = greedy(lg_n, pre_n, None, group)
        q_next = apply_critic(gs.target_critic, nobs, features_from(oh_n, un_n, group))
        target = rew * cfg.reward_scale + cfg.gamma * (1.0 - term[:, None]) * q_next
        target = jax.lax.stop_gradient(target)

        def critic_loss(p):
            q = apply_critic(p, obs, feat)
            return jnp.mean((q - target) ** 2, axis=0).sum(), q

        (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(gs.critic)
        # per-agent optimiser (the loss is a sum of independent per-agent losses)
        c_upd, c_opt = jax.vmap(critic_tx.update)(c_grads, gs.critic_opt, gs.critic)
        critic_p = optax.apply_updates(gs.critic, c_upd)

        def actor_loss(p):
            lg, pre = apply_actor(actor, p, obs)
            oh, un = relaxed(key, lg, pre, masks_fn(batch), group, cfg.gumbel_temperature)
            return -jnp.mean(apply_critic(critic_p, obs, features_from(oh, un, group)), 0).sum()

        a_loss, a_grads = jax.value_and_grad(actor_loss)(gs.actor)
        a_upd, a_opt = jax.vmap(actor_tx.update)(a_grads, gs.actor_opt, gs.actor)
        actor_p = optax.apply_updates(gs.actor, a_upd)
        soft = lambda t, s: (1.0 - cfg.tau) * t + cfg.tau * s  # noqa: E731
        new = AgentGroupState(actor_p, critic_p, jax.tree.map(soft, gs.target_actor, actor_p),
                              jax.tree.map(soft, gs.target_critic, critic_p), a_opt, c_opt)
        return new, {"critic_loss": c_loss, "actor_loss": a_loss, "q_mean": q.mean()}

    def train(key, env_params, init=None):
        k_f, k_l, k_env, k_run = jax.random.split(key, 4)
        follower = init_group(k_f, f_actor, obs_dim_f, f_feat_dim, n_f, init)
        leader = init_group(k_l, l_actor, obs_dim_l, n_f, 1)
        obs, env_state = vreset(jax.random.split(k_env, cfg.num_envs), env_params)
        cap, e = cfg.buffer_size, cfg.num_envs
        buffer = {
            "f_obs": jnp.zeros((cap, e, n_f, obs_dim_f)),
            "f_feat": jnp.zeros((cap, e, n_f, f_feat_dim)),
            "f_rew": jnp.zeros((cap, e, n_f)),
            "f_nobs": jnp.zeros((cap, e, n_f, obs_dim_f)),
            "f_masks": {k: jnp.zeros((cap, e, n_f, n), bool) for k, n in f_group.discrete},
            "l_obs": jnp.zeros((cap, e, 1, obs_dim_l)),
            "l_feat": jnp.zeros((cap, e, 1, n_f)),
            "l_rew": jnp.zeros((cap, e, 1)),
            "l_nobs": jnp.zeros((cap, e, 1, obs_dim_l)),
            "term": jnp.zeros((cap, e)),
        }
        global_actor = jax.tree.map(lambda x: x[0], follower.actor)
        state = TrainState(follower, leader, global_actor, buffer, jnp.zeros((), jnp.int32),
                           env_state, obs, k_run, jnp.zeros((), jnp.int32))
        f_low, f_high = box_bounds(env.action_space("follower", env_params))
        l_low, l_high = box_bounds(env.action_space("leader", env_params))

        def update_step(ts: TrainState, _):
            key, k_act_f, k_act_l, k_env, k_sample, k_fu, k_lu = jax.random.split(ts.key, 7)
            frac = jnp.minimum(ts.update / jnp.maximum(cfg.total_updates - 1, 1), 1.0)
            eps = cfg.eps_start + (cfg.eps_end - cfg.eps_start) * frac
            masks = jax.vmap(env.avail_actions, in_axes=(0, None))(ts.env_state, env_params)
            orders = head_orders(env, ts.obs["follower"], cfg.ranked_heads)
            f_masks = masks_in_rank_order(masks["follower"], orders)
            lg, pre = apply_actor(f_actor, ts.follower.actor, f_in(ts.obs["follower"]))
            oh, un = explore(k_act_f, lg, pre, f_masks, f_group, eps, cfg.noise_std)
            f_action = to_env_action(oh, un, f_group, f_low, f_high, cfg.relative_heads, orders)
            f_feat = features_from(oh, un, f_group)
            lg_l, pre_l = apply_actor(l_actor, ts.leader.actor, ts.obs["leader"])
            oh_l, un_l = explore(k_act_l, lg_l, pre_l, None, l_group, eps, cfg.noise_std)
            if cfg.learn_leader:
                l_price = to_env_action(oh_l, un_l, l_group, {"price": l_low["action"]},
                                        {"price": l_high["action"]})["price"]
            else:
                l_price = jnp.full((cfg.num_envs, 1, n_f), env_params.price, jnp.float32)
            action = {"follower": f_action, "leader": l_price}
            obs2, env_state, reward, term, trunc, info = vstep(
                jax.random.split(k_env, cfg.num_envs), ts.env_state, action, env_params)
            final = info["final_observation"]
            i = ts.buffer_count % cap
            put = lambda buf, x: buf.at[i].set(x)  # noqa: E731
            buf = dict(ts.buffer)
            buf.update(
                f_obs=put(buf["f_obs"], f_in(ts.obs["follower"])),
                f_feat=put(buf["f_feat"], f_feat),
                f_rew=put(buf["f_rew"], reward["follower"]),
                f_nobs=put(buf["f_nobs"], f_in(final["follower"])),
                f_masks={k: put(buf["f_masks"][k], f_masks[k]) for k in buf["f_masks"]},
                l_obs=put(buf["l_obs"], ts.obs["leader"]),
                l_feat=put(buf["l_feat"], features_from(oh_l, un_l, l_group)),
                l_rew=put(buf["l_rew"], reward["leader"]),
                l_nobs=put(buf["l_nobs"], final["leader"]),
                term=put(buf["term"], term.astype(jnp.float32)),
            )
            count = ts.buffer_count + 1
            size = jnp.minimum(count, cap)
            k_t, k_e = jax.random.split(k_sample)
            t_idx = jax.random.randint(k_t, (cfg.batch_size,), 0, size)
            e_idx = jax.random.randint(k_e, (cfg.batch_size,), 0, e)
            take = lambda x: x[t_idx, e_idx]  # noqa: E731
            f_batch = {"obs": take(buf["f_obs"]), "feat": take(buf["f_feat"]),
                       "rew": take(buf["f_rew"]), "nobs": take(buf["f_nobs"]),
                       "term": take(buf["term"]),
                       "masks": {k: take(v) for k, v in buf["f_masks"].items()}}
            l_batch = {"obs": take(buf["l_obs"]), "feat": take(buf["l_feat"]),
                       "rew": take(buf["l_rew"]), "nobs": take(buf["l_nobs"]),
                       "term": take(buf["term"])}
            new_f, f_stats = group_update(ts.follower, f_actor, f_group, f_batch, k_fu,
                                          lambda b: b["masks"])
            new_l, l_stats = group_update(ts.leader, l_actor, l_group, l_batch, k_lu,
                                          lambda b: None)
            learn = ts.update >= cfg.warmup_updates
            pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(learn, a, b), new, old)  # noqa: E731
            follower = pick(new_f, ts.follower)
            leader = pick(new_l, ts.leader) if cfg.learn_leader else ts.leader
            global_actor = ts.global_actor
            if fed is not None:
                # eq. 34-36 weights from the followers' own observations (task size, distance)
                where = env.observation_slices("follower")
                f_obs = ts.obs["follower"]
                task = jnp.mean(f_obs[..., where["arrivals"]][..., 0], axis=0)
                dist = jnp.mean(jnp.min(jnp.hypot(f_obs[..., where["x"]],
                                                  f_obs[..., where["y"]]), -1), 0)
                agg = aggregate(fed, global_actor, follower.actor, task, dist)
                due = (ts.update + 1) % fed.period == 0
                global_actor = jax.tree.map(lambda a, b: jnp.where(due, a, b), agg, global_actor)
                issued = jax.tree.map(lambda g: jnp.broadcast_to(g, (n_f,) + g.shape), agg)
                actor = jax.tree.map(lambda a, b: jnp.where(due, a, b), issued, follower.actor)
                follower = follower.replace(actor=actor)
            metrics = {
                "follower_reward": reward["follower"].mean(),
                "leader_reward": reward["leader"].mean(),
                "throughput_mbit": info["throughput_mbit"].mean(),
                "queue_mean_mbit": info["queue_mean_mbit"].mean(),
                "leader_profit": info["leader_profit"].mean(),
                "price_mean": info["price_mean"].mean(),
                "offload_fraction": info["offload_fraction"].mean(),
                "critic_loss": f_stats["critic_loss"], "actor_loss": f_stats["actor_loss"],
                "leader_critic_loss": l_stats["critic_loss"],
            }
            new_ts = TrainState(follower, leader, global_actor, buf, count, env_state, obs2, key,
                                ts.update + 1)
            return new_ts, metrics

        final_ts, metrics = jax.lax.scan(update_step, state, None, cfg.total_updates)
        policy_params = {"follower": final_ts.follower.actor, "leader": final_ts.leader.actor}
        return policy_params, metrics

    return train


def make_policy(env, config: MADFRLConfig, policy_params, deterministic: bool = True,
                eps: float = 0.0):
    """``policy(key, obs, state, params) -> action`` from trained MADFRL actors."""
    n_f = env.num_agents("follower")
    f_group = _group(env.action_space("follower"))
    l_group = Group((), (("price", n_f),))
    f_actor = DeterministicHybridActor(f_group.discrete, f_group.continuous, tuple(config.hidden))
    l_actor = DeterministicHybridActor((), l_group.continuous, tuple(config.hidden))

    def policy(key, obs, state, params):
        f_low, f_high = box_bounds(env.action_space("follower", params))
        l_low, l_high = box_bounds(env.action_space("leader", params))
        orders = head_orders(env, obs["follower"], config.ranked_heads)
        masks = masks_in_rank_order(env.avail_actions(state, params)["follower"], orders)
        lg, pre = jax.vmap(f_actor.apply, in_axes=(0, 0))(
            policy_params["follower"], follower_obs(obs["follower"], config.agent_id))
        if deterministic:
            oh, un = greedy(lg, pre, masks, f_group)
        else:
            oh, un = explore(key, lg, pre, masks, f_group, eps, config.noise_std)
        follower = to_env_action(oh, un, f_group, f_low, f_high, config.relative_heads, orders)
        if config.learn_leader:
            lg_l, pre_l = jax.vmap(l_actor.apply)(policy_params["leader"], obs["leader"])
            _, un_l = greedy(lg_l, pre_l, None, l_group)
            price = to_env_action({}, un_l, l_group, {"price": l_low["action"]},
                                  {"price": l_high["action"]})["price"]
        else:
            price = jnp.full((1, n_f), params.price, jnp.float32)
        return {"follower": follower, "leader": price}

    return policy
