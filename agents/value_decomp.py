"""Recurrent value-decomposition MARL: IQL, VDN (the paper's "proposed" sum mixing) and QMIX.

Tao et al. (arXiv 2409.05480) Sec. 5.2, eq. (21)-(23): GRU Q-networks (:class:`AgentQNet`)
summed (VDN, eq. 22), mixed monotonically (QMIX, :class:`QMixer`) or trained independently
(IQL). Decisions: docs/learners.md §Value decomposition.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, ClassVar, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from agents import core, replay
from agents.adapters import for_env
from agents.networks import mask_logits
from jaxsg.policy import RecurrentPolicy
from jaxsg.wrappers import scalar_metrics

MIXERS = ("none", "vdn", "qmix")


@dataclasses.dataclass(frozen=True)
class Config:
    """Static hyperparameters; ``lr``, ``eps_decay_fraction``, ``target_update_interval``:
    the defaults of the traced :data:`HPARAMS`."""

    mixer: str = "vdn"
    num_envs: int = 8
    num_eval_envs: int = 4
    num_updates: int = 200  # iterations: one episode per env, then updates_per_iter steps
    updates_per_iter: int = 1
    batch_episodes: int = 32
    buffer_episodes: int = 1000
    warmup_episodes: int = 32
    gamma: float = 0.9
    lr: float = 5e-4
    max_grad_norm: float = 10.0
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_fraction: float = 0.5
    target_update_interval: int = 10
    hidden: int = 64
    fc: int = 64
    mixer_embed: int = 32
    hyper_hidden: int = 64
    reward_scale: float | None = None  # None: the scenario adapter's scale
    double_q: bool = True
    own_reward: bool = True  # IQL: each agent's own reward (the adapter's agent_rewards)
    keep_best: bool = True  # return the iterate of best greedy eval return (else the last)
    huber_delta: float | None = 0.3  # None: ½·TD² (eq. 23); else Huber of this width
    agent_class: str | None = None  # None: the scenario adapter's learning class

    BOUNDS: ClassVar = dict(
        num_eval_envs=core.COUNT0, updates_per_iter=core.COUNT, batch_episodes=core.COUNT,
        buffer_episodes=core.COUNT, warmup_episodes=core.COUNT0,
        target_update_interval=core.COUNT, hidden=core.COUNT, fc=core.COUNT,
        mixer_embed=core.COUNT, hyper_hidden=core.COUNT, huber_delta=core.POSITIVE)
    CHOICES: ClassVar = dict(mixer=MIXERS)

    def __post_init__(self):
        core.check_config(self)


#: The hyperparameters ``train`` also takes traced (``hparams``), with their dtypes.
HPARAMS = {"lr": jnp.float32, "eps_decay_fraction": jnp.float32,
           "target_update_interval": jnp.int32}


def hparams_grid(config: Config | None = None, **axes) -> tuple[dict, list[dict]]:
    """Cartesian grid ``{name: (G,) array}`` of :data:`HPARAMS` and its rows as dicts; an
    axis left out or empty takes the config's value. Bad values raise ``ValueError`` here."""
    config = Config() if config is None else config
    if set(axes) - set(HPARAMS):
        raise ValueError(f"hparams_grid: unknown axes {sorted(set(axes) - set(HPARAMS))}; "
                         f"allowed: {tuple(HPARAMS)}")
    axes = {f: tuple(axes.get(f, ())) or (getattr(config, f),) for f in HPARAMS}
    rows = [dict(zip(axes, vals)) for vals in itertools.product(*axes.values())]
    for row in rows:  # the same bounds as the static config
        dataclasses.replace(config, **row)
    return {f: jnp.asarray([r[f] for r in rows], d) for f, d in HPARAMS.items()}, rows


class AgentQNet(nn.Module):
    """One recurrent step ``(h, x, reset) -> (h', q)``: Dense(fc) + ReLU → ``GRUCell`` →
    Dense(|A|); ``reset`` zeroes h first."""

    num_actions: int
    hidden: int = 64
    fc: int = 64

    @nn.compact
    def __call__(self, h, x, reset):
        h = jnp.where(reset[..., None], jnp.zeros_like(h), h)
        z = nn.relu(nn.Dense(self.fc, name="fc_in")(x))
        h, _ = nn.GRUCell(self.hidden, name="gru")(h, z)
        return h, nn.Dense(self.num_actions, name="q")(h)


class QMixer(nn.Module):
    """Monotone mixer: ``Q_tot = ELU(q·|W1(s)| + b1(s))·|W2(s)| + V(s)``."""

    embed: int = 32
    hyper_hidden: int = 64

    @nn.compact
    def __call__(self, qs, state):
        n = qs.shape[-1]
        w1 = nn.Dense(self.hyper_hidden, name="hw1_0")(state)
        w1 = jnp.abs(nn.Dense(n * self.embed, name="hw1_1")(nn.relu(w1)))
        w1 = w1.reshape(state.shape[:-1] + (n, self.embed))
        b1 = nn.Dense(self.embed, name="hb1")(state)
        hidden = nn.elu(jnp.einsum("...n,...ne->...e", qs, w1) + b1)
        w2 = nn.Dense(self.hyper_hidden, name="hw2_0")(state)
        w2 = jnp.abs(nn.Dense(self.embed, name="hw2_1")(nn.relu(w2)))
        v = nn.Dense(1, name="v_1")(nn.relu(nn.Dense(self.embed, name="v_0")(state)))[..., 0]
        return jnp.sum(hidden * w2, axis=-1) + v


def unroll(net: AgentQNet, agent_params, h0, inputs, resets):
    """``(hs, qs)`` over a leading time axis (``inputs (T, ..., d)``, ``resets (T, ...)``):
    ``hs[t]`` the hidden state after step t, ``resets[t]`` zeroing it before step t."""

    def body(h, xr):
        x, r = xr
        h, q = net.apply(agent_params, h, x, r)
        return h, (h, q)

    _, (hs, qs) = jax.lax.scan(body, h0, (inputs, resets))
    return hs, qs


class Episode(NamedTuple):
    """One stored episode (time-major, T = env.horizon)."""

    inputs: jnp.ndarray  # (T, n, d + |A|) observation ‖ last action one-hot
    masks: jnp.ndarray  # (T, n, |A|)
    actions: jnp.ndarray  # (T, n)
    final_inputs: jnp.ndarray  # (T, n, d + |A|) final observation ‖ one-hot(action)
    final_masks: jnp.ndarray  # (T, n, |A|)
    reward: jnp.ndarray  # (T, n) per-agent reward (raw; mixers learn on the mean)
    terminated: jnp.ndarray  # (T,)
    resets: jnp.ndarray  # (T,) step t starts an episode (= done of step t − 1)


class _Spec(NamedTuple):
    n: int
    obs_dim: int  # the adapter's observation features (e.g. dt_deploy's per-node delays)
    num_actions: int
    cls: str
    net: AgentQNet
    features: Callable  # (obs (..., n, d_env), params) -> (..., n, obs_dim)


def _spec(env, config: Config) -> _Spec:
    ad = for_env(env)
    cls = ad.learning_class(env, config.agent_class, only="value_decomp")
    space = env.action_space(cls)
    if not hasattr(space, "n"):
        raise ValueError(f"value_decomp needs a Discrete action space, got {space!r}")
    return _Spec(env.num_agents(cls), ad.num_observation_features(env), space.n, cls,
                 AgentQNet(space.n, config.hidden, config.fc),
                 lambda obs, params: ad.observation_features(env, obs, params))


def init_agent_params(env, config: Config, key: chex.PRNGKey):
    sp = _spec(env, config)
    d = sp.obs_dim + sp.num_actions + sp.n
    return sp.net.init(key, jnp.zeros((sp.n, config.hidden)), jnp.zeros((sp.n, d)),
                       jnp.zeros((sp.n,), bool))


class ActState(NamedTuple):
    env_state: Any
    obs: dict
    h: jnp.ndarray  # (n, H)
    last_action: jnp.ndarray  # (n, |A|) one-hot, zeros at an episode start
    reset: jnp.ndarray  # () bool: the *next* step starts an episode


def _action_mask(masks: dict, sp: _Spec) -> jnp.ndarray:
    """The learning class's ``"action"`` mask in an avail-actions dict (all True if none)."""
    mask = masks.get(sp.cls, {}).get("action")
    return jnp.ones((sp.n, sp.num_actions), bool) if mask is None else mask


def _make_act(env, sp: _Spec):
    """One ε-greedy step of the recurrent agents (shared by training and the policy)."""

    def act(agent_params, h, last_action, reset, obs, state, params, k_explore, k_random, eps):
        mask = _action_mask(env.avail_actions(state, params), sp)
        x = jnp.concatenate([sp.features(obs[sp.cls], params), last_action], axis=-1)
        # the reset flag of THIS step (= done of the previous step) zeroes h before x_t
        h, q = sp.net.apply(agent_params, h, core.with_agent_id(x),
                            jnp.broadcast_to(reset, (sp.n,)))
        greedy = core.greedy(mask_logits(q, mask))  # NaN Q-values → INVALID_ACTION
        random = env.action_space(sp.cls, params).sample(k_random, mask)
        return h, q, x, mask, core.epsilon_greedy(k_explore, eps, greedy, random)

    return act


def make_actor(env, config: Config):
    """``(reset_fn, step_fn)`` acting in one env (vmap outside): ``step_fn(agent_params,
    act_state, key, eps, params) -> (act_state, record)``, ``record`` = this step's Episode
    fields, ``q``, ``done`` and the env's scalar metrics."""
    sp, ad = _spec(env, config), for_env(env)
    n, a_n, cls = sp.n, sp.num_actions, sp.cls
    own = config.mixer == "none" and config.own_reward and hasattr(ad, "agent_rewards")
    act = _make_act(env, sp)

    def reset_fn(key, params):
        obs, state = env.reset(key, params)
        return ActState(state, obs, jnp.zeros((n, config.hidden)), jnp.zeros((n, a_n)),
                        jnp.ones((), bool))

    def step_fn(agent_params, s: ActState, key, eps, params):
        k_explore, k_random, k_env = jax.random.split(key, 3)
        h, q, x, mask, action = act(agent_params, s.h, s.last_action, s.reset, s.obs,
                                    s.env_state, params, k_explore, k_random, eps)
        obs, state, reward, terminated, truncated, info = env.step(
            k_env, s.env_state, {cls: action}, params)
        reward = reward[cls]
        if own:  # a flagged (NaN) env reward stays NaN
            own_r = ad.agent_rewards(env, s.env_state, action, params)
            reward = jnp.where(jnp.isfinite(reward), own_r, reward)
        done = terminated | truncated
        onehot = jax.nn.one_hot(action, a_n, dtype=jnp.float32)
        final = sp.features(info["final_observation"][cls], params)
        record = dict(inputs=x, masks=mask, actions=action,
                      final_inputs=jnp.concatenate([final, onehot], -1),
                      final_masks=_action_mask(info.get("final_avail_actions", {}), sp),
                      reward=reward, terminated=terminated, resets=s.reset, q=q, done=done,
                      metrics=scalar_metrics(info))
        last = jnp.where(done, jnp.zeros_like(onehot), onehot)
        return ActState(state, obs, h, last, done), record

    return reset_fn, step_fn


def make_train(env, config: Config):
    """``train(key, params, hparams=None) -> (agent_params, metrics)``; ``hparams``: traced
    :data:`HPARAMS` overrides. Per-iteration ``metrics``: ``return_mean`` (team return per
    episode), env metrics (episode means), their ``eval_`` versions on the greedy envs,
    ``td_loss``, ``epsilon``, ``q_taken_mean``."""
    spec = _spec(env, config)
    net, mixer = spec.net, QMixer(config.mixer_embed, config.hyper_hidden)
    n, horizon = spec.n, env.horizon
    n_train, n_eval = config.num_envs, config.num_eval_envs
    n_all = n_train + n_eval
    reset_fn, step_fn = make_actor(env, config)

    def td_loss(td):
        if config.huber_delta is None:
            return 0.5 * td**2
        return optax.huber_loss(td, delta=config.huber_delta)

    def q_values(agent_params, ep: Episode):
        """Online/target-style Q over one batch: (T, B, n, |A|) now and at next."""
        b = ep.inputs.shape[1]
        h0 = jnp.zeros((b, n, config.hidden))
        resets = jnp.broadcast_to(ep.resets[..., None], ep.resets.shape + (n,))
        hs, qs = unroll(net, agent_params, h0, core.with_agent_id(ep.inputs), resets)
        _, q_next = net.apply(agent_params, hs, core.with_agent_id(ep.final_inputs),
                              jnp.zeros(hs.shape[:-1], bool))
        return qs, q_next

    def mix(mixer_params, q, inputs):
        """Joint value from per-agent chosen values q (..., n)."""
        if config.mixer == "vdn":
            return jnp.sum(q, axis=-1)
        state = inputs[..., : spec.obs_dim].reshape(inputs.shape[:-2] + (n * spec.obs_dim,))
        return mixer.apply(mixer_params, q, state)

    def loss_fn(net_params, target_params, ep: Episode, scale):
        qs, q_next = q_values(net_params["agent"], ep)
        _, q_next_tgt = q_values(target_params["agent"], ep)
        q_taken = jnp.take_along_axis(qs, ep.actions[..., None], axis=-1)[..., 0]
        q_boot = core.double_q_target(0.0, q_next, q_next_tgt, 1.0, ep.final_masks,
                                      config.double_q)
        r = ep.reward * scale
        cont = config.gamma * (1.0 - ep.terminated.astype(jnp.float32))
        if config.mixer == "none":
            td = q_taken - (r + cont[..., None] * q_boot)
        else:
            q_tot = mix(net_params.get("mixer"), q_taken, ep.inputs)
            q_tot_next = mix(target_params.get("mixer"), q_boot, ep.final_inputs)
            td = q_tot - jax.lax.stop_gradient(jnp.mean(r, -1) + cont * q_tot_next)
        return jnp.mean(td_loss(td)), jnp.mean(q_taken)

    def train(key: chex.PRNGKey, params: Any, hparams: dict | None = None):
        hp = {f: jnp.asarray(getattr(config, f), d) for f, d in HPARAMS.items()}
        hp.update(hparams or {})  # a traced override of any of them
        epsilon = core.linear(config.eps_start, config.eps_end,
                              hp["eps_decay_fraction"] * config.num_updates)
        scale = core.reward_scale(config, env, params)
        key, k_agent, k_mixer, k_reset = jax.random.split(key, 4)
        net_params = {"agent": init_agent_params(env, config, k_agent)}
        if config.mixer == "qmix":
            g = n * spec.obs_dim
            net_params["mixer"] = mixer.init(k_mixer, jnp.zeros((n,)), jnp.zeros((g,)))
        target_params = net_params
        tx = core.adam(hp["lr"], config.max_grad_norm, eps=1e-5)  # hp["lr"] may be traced
        opt_state = tx.init(net_params)
        act = jax.vmap(reset_fn, in_axes=(0, None))(jax.random.split(k_reset, n_all), params)
        rec = jax.eval_shape(step_fn, net_params["agent"], jax.tree.map(lambda x: x[0], act),
                             k_reset, 0.0, params)[1]  # shapes only
        example = Episode(**{f: jnp.zeros((horizon,) + rec[f].shape, rec[f].dtype)
                             for f in Episode._fields})
        buf = replay.init(example, config.buffer_episodes)
        eps_eval = jnp.zeros((n_eval,))

        def env_step(carry, key):
            agent_params, act, eps = carry
            keys = jax.random.split(key, n_all)
            eps_all = jnp.concatenate([jnp.full((n_train,), eps), eps_eval])
            act, rec = jax.vmap(step_fn, in_axes=(None, 0, 0, 0, None))(
                agent_params, act, keys, eps_all, params)
            return (agent_params, act, eps), rec

        def update(carry, key):
            net_params, target_params, opt_state, buf = carry
            batch = replay.sample(buf, key, config.batch_episodes)
            batch = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch)  # time-major
            (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                net_params, target_params, batch, scale)
            ready = replay.size(buf) >= config.warmup_episodes
            net_params, opt_state = core.gate(
                ready, core.opt_step(tx, net_params, opt_state, grads), (net_params, opt_state))
            return (net_params, target_params, opt_state, buf), (loss, q_mean)

        def iteration(carry, it_key):
            net_params, target_params, opt_state, buf, act, it, best = carry
            acting = net_params["agent"]
            k_roll, k_upd = jax.random.split(it_key)
            eps = epsilon(it)
            (_, act, _), rec = jax.lax.scan(
                env_step, (net_params["agent"], act, eps), jax.random.split(k_roll, horizon))
            # rec leaves: (T, n_all, ...) -> episodes of the exploring envs, batch-major
            fields = {f: jnp.swapaxes(rec[f][:, :n_train], 0, 1) for f in Episode._fields}
            buf = replay.add_batch(buf, Episode(**fields))
            (net_params, target_params, opt_state, buf), (loss, q_mean) = jax.lax.scan(
                update, (net_params, target_params, opt_state, buf),
                jax.random.split(k_upd, config.updates_per_iter))
            it = it + 1
            target_params = core.gate(it % hp["target_update_interval"] == 0, net_params,
                                      target_params)
            ret = jnp.sum(jnp.mean(rec["reward"], -1), 0)  # (n_all,) return per episode
            metrics = {"return_mean": jnp.mean(ret[:n_train]), "td_loss": jnp.mean(loss),
                       "q_taken_mean": jnp.mean(q_mean), "epsilon": eps}
            for k, v in rec["metrics"].items():
                metrics[k] = jnp.mean(v[:, :n_train])
                if n_eval:
                    metrics[f"eval_{k}"] = jnp.mean(v[:, n_train:])
            if n_eval:
                metrics["eval_return_mean"] = jnp.mean(ret[n_train:])
                best = core.gate(metrics["eval_return_mean"] > best[0],
                                 (metrics["eval_return_mean"], acting), best)
            carry = (net_params, target_params, opt_state, buf, act, it, best)
            return carry, metrics

        best = (jnp.float32(-jnp.inf), net_params["agent"])
        carry = (net_params, target_params, opt_state, buf, act, jnp.zeros((), jnp.int32), best)
        (net_params, *_, best), metrics = jax.lax.scan(
            iteration, carry, jax.random.split(key, config.num_updates))
        keep = config.keep_best and n_eval > 0
        return (best[1] if keep else net_params["agent"]), metrics

    return train


def make_sweep(env, config: Config):
    """``sweep(seed_keys (S, 2), params, grid (G,)) -> (agent_params, metrics)``, leading axes
    (G, S), one compiled call; ``grid`` from :func:`hparams_grid`."""
    train = make_train(env, config)
    over_seeds = jax.vmap(train, in_axes=(0, None, None))
    return jax.jit(jax.vmap(over_seeds, in_axes=(None, None, 0)))


def make_policy(env, config: Config, policy_params, eps: float = 0.0) -> RecurrentPolicy:
    """The trained agents as a :class:`jaxsg.policy.RecurrentPolicy` (greedy by default,
    ε-greedy if ``eps`` > 0); the carry (GRU state, last action) restarts per episode."""
    spec = _spec(env, config)
    act = _make_act(env, spec)
    n, a_n, cls = spec.n, spec.num_actions, spec.cls

    def init_carry(params):
        del params
        return jnp.zeros((n, config.hidden)), jnp.zeros((n, a_n))

    def apply(carry, key, obs, state, params, reset):
        h, last = carry
        k_explore, k_random = jax.random.split(key)
        h, _, _, _, action = act(policy_params, h, jnp.where(reset, 0.0, last), reset, obs,
                                 state, params, k_explore, k_random, eps)
        return (h, jax.nn.one_hot(action, a_n, dtype=jnp.float32)), {cls: action}

    return RecurrentPolicy(init_carry, apply)

