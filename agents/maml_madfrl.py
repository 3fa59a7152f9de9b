"""MAML-MADFRL — the SGIN paper's proposed method (Alg. 2 + Alg. 3, Sec. IV-B/C).

A meta-trained follower actor-critic θ (MAML, Alg. 2, eq. 31-32, over the adapter's
``sample_tasks``; :func:`make_meta_train`, task loss :func:`make_task_loss`), then MADFRL
training (Alg. 3) from θ's actor with fresh critics (:func:`fine_tune_init`) and federated
actor aggregation (eq. 34-36). :func:`make_train` chains both (``train(key, env_params) ->
(policy_params, metrics)``); :func:`make_adapt` and :func:`make_adaptation_eval` adapt θ
k inner steps per task. Decisions: docs/learners.md §MAML-MADFRL.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, Sequence

import jax
import jax.numpy as jnp

from agents import core, madfrl, maml
from agents.adapters import for_env
from jaxsg.validation import Bound
from jaxsg.wrappers import rollout


@dataclasses.dataclass(frozen=True)
class Config:
    """MAML over the adapter's task distribution; ``madfrl`` configures the MADFRL stage."""

    madfrl: madfrl.Config = madfrl.Config()
    meta_iterations: int = 40
    num_tasks: int = 4
    num_envs: int = 2  # parallel episodes per task per meta-iteration
    rollout_steps: int = 8  # steps per episode: first half support (θ), second query (θ')
    inner_steps: int = 1
    inner_lr: float = 0.01
    outer_lr: float = 1e-3
    #: second order by default (DESIGN.md; measured: docs/learners.md §MAML-MADFRL)
    first_order: bool = False
    eps: float = 0.2  # exploration while collecting task data
    warm_critic: bool = False  #: MADFRL also starts from θ's critic (:func:`fine_tune_init`)

    BOUNDS: ClassVar = dict(
        meta_iterations=core.COUNT, num_tasks=core.COUNT, num_envs=core.COUNT,
        rollout_steps=Bound(2, math.inf, integer=True), inner_steps=core.COUNT0,
        inner_lr=core.POSITIVE, outer_lr=core.POSITIVE, eps=core.UNIT)

    def __post_init__(self):
        core.check_config(self)
        if self.rollout_steps % 2:
            raise ValueError(f"Config: field 'rollout_steps' must be even, "
                             f"got {self.rollout_steps}")


def init_follower(env, cfg: madfrl.Config, key) -> dict:
    """A random single-follower actor-critic ``{"actor", "critic"}`` (MADFRL's networks)."""
    sp = madfrl._spec(env, cfg)
    k_a, k_c = jax.random.split(key)
    return {"actor": sp.f_actor.init(k_a, jnp.zeros((sp.f_obs_dim,))),
            "critic": sp.critic.init(k_c, jnp.zeros((sp.f_obs_dim,)),
                                     jnp.zeros((madfrl.feature_dim(sp.f_group),)))}


def make_collect(env, cfg: Config):
    """``collect(key, theta, env_params, eps, start=None) -> (batch, end)``: pooled
    follower transitions of ``cfg.rollout_steps // 2`` steps in ``cfg.num_envs`` episodes,
    the shared actor exploring and the other classes playing the adapter's
    ``fixed_actions``, from fresh resets or from ``start`` = a previous call's ``end``
    ``(obs, state)``. ``batch``: arrays with one leading axis over (steps · envs · followers).
    """
    sp, ad = madfrl._spec(env, cfg.madfrl), for_env(env)
    cls = sp.f_cls
    e, steps = int(cfg.num_envs), int(cfg.rollout_steps) // 2
    vreset, vstep = core.vec_env(env, e)

    def collect(key, theta, env_params, eps, start=None):
        theta = jax.lax.stop_gradient(theta)  # data, not a function of θ
        f_low, f_high = madfrl.box_bounds(env.action_space(cls, env_params))
        fixed = jax.tree.map(lambda a: jnp.broadcast_to(a, (e,) + a.shape),
                             ad.fixed_actions(env, env_params))
        k_reset, k_run = jax.random.split(key)
        if start is None:
            start = vreset(k_reset, env_params)

        def body(carry, k):
            obs, state = carry
            k_act, k_env = jax.random.split(k)
            masks = jax.vmap(env.avail_actions, in_axes=(0, None))(state, env_params)[cls]
            oh, unit, f_action, masks, f_obs = madfrl.act_followers(
                env, cfg.madfrl, functools.partial(sp.f_actor.apply, theta["actor"]), obs[cls],
                masks, sp.f_group, f_low, f_high, k_act, eps)
            action = {**fixed, cls: f_action}
            obs2, state, reward, term, _, info = vstep(k_env, state, action, env_params)
            n_f = reward[cls].shape[-1]
            tr = {"obs": f_obs, "feat": madfrl.features_from(oh, unit, sp.f_group),
                  "rew": reward[cls],
                  "nobs": madfrl.follower_obs(info["final_observation"][cls],
                                              cfg.madfrl.agent_id),
                  "term": jnp.broadcast_to(term[:, None], (e, n_f)).astype(jnp.float32),
                  "masks": masks}
            return (obs2, state), tr

        end, traj = jax.lax.scan(body, start, jax.random.split(k_run, steps))
        flat = lambda x: x.reshape((-1,) + x.shape[3:])  # noqa: E731  (T, E, n, ...) -> (T·E·n, ...)
        return jax.tree.map(flat, traj), end

    return collect


def make_task_loss(env, cfg: madfrl.Config):
    """``task_loss(theta, batch) -> scalar``: MADFRL's critic TD loss + actor loss.

    ``batch`` carries a PRNG key under ``"key"`` (the Gumbel noise), so the loss is
    a pure function of (params, task) as ``maml.adapt`` requires.
    """
    sp = madfrl._spec(env, cfg)

    def q(critic_p, obs, feat):
        return sp.critic.apply(critic_p, obs, feat)

    def task_loss(theta, batch):
        actor_p, critic_p = theta["actor"], theta["critic"]
        fixed_actor = jax.lax.stop_gradient(actor_p)
        fixed_critic = jax.lax.stop_gradient(critic_p)
        lg_n, pre_n = sp.f_actor.apply(fixed_actor, batch["nobs"])
        oh_n, un_n = madfrl.greedy(lg_n, pre_n, None, sp.f_group)
        q_next = q(fixed_critic, batch["nobs"], madfrl.features_from(oh_n, un_n, sp.f_group))
        target = batch["rew"] * cfg.reward_scale + cfg.gamma * (1.0 - batch["term"]) * q_next
        td = jnp.mean((q(critic_p, batch["obs"], batch["feat"]) - target) ** 2)
        lg, pre = sp.f_actor.apply(actor_p, batch["obs"])
        actor_loss = -jnp.mean(madfrl.actor_objective(
            functools.partial(q, fixed_critic, batch["obs"]), batch["key"], lg, pre,
            batch["masks"], sp.f_group, cfg.gumbel_temperature))
        return td + actor_loss

    return task_loss


def make_meta_train(env, config: Config, sample_tasks=None):
    """``meta_train(key, base_params) -> (theta, metrics)``: Alg. 2 in one ``lax.scan``.

    ``sample_tasks(key, base_params, n)``: the task distribution (a batch of env params);
    default the adapter's. ``metrics["meta_loss"]`` (per iteration) is the
    post-adaptation query loss, ``metrics["pre_loss"]`` the same loss before adaptation.
    """
    cfg = config
    collect = make_collect(env, cfg)
    task_loss = make_task_loss(env, cfg.madfrl)
    tx = core.adam(cfg.outer_lr, cfg.madfrl.max_grad_norm)
    sample = for_env(env).sample_tasks if sample_tasks is None else sample_tasks

    def one_task(theta, key, task_params):
        k_sup, k_qry, k_s, k_q = jax.random.split(key, 4)
        support, end = collect(k_sup, theta, task_params, cfg.eps)
        adapted = maml.adapt(theta, dict(support, key=k_s), task_loss, cfg.inner_steps,
                             cfg.inner_lr, cfg.first_order)
        # the query set is collected by the *adapted* policy (Alg. 2), continuing the
        # support episodes; the collection itself is data (no gradient through it)
        query, _ = collect(k_qry, adapted, task_params, cfg.eps, end)
        query = dict(query, key=k_q)
        return task_loss(adapted, query), task_loss(theta, query)

    def meta_train(key, base_params):
        k_init, k_run = jax.random.split(key)
        theta = init_follower(env, cfg.madfrl, k_init)
        opt = tx.init(theta)

        def iteration(carry, k):
            theta, opt = carry
            k_tasks, k_data = jax.random.split(k)
            tasks = sample(k_tasks, base_params, int(cfg.num_tasks))

            def outer(th):
                post, pre = jax.vmap(one_task, in_axes=(None, 0, 0))(
                    th, jax.random.split(k_data, cfg.num_tasks), tasks)
                return jnp.mean(post), jnp.mean(pre)

            (loss, pre), grads = jax.value_and_grad(outer, has_aux=True)(theta)
            return core.opt_step(tx, theta, opt, grads), {"meta_loss": loss, "pre_loss": pre}

        (theta, _), metrics = jax.lax.scan(iteration, (theta, opt),
                                           jax.random.split(k_run, cfg.meta_iterations))
        return theta, metrics

    return meta_train


def fine_tune_init(config: Config, theta: dict) -> dict:
    """MADFRL's ``init`` from θ: its actor (Alg. 3 line 3 initialises the critics afresh);
    with ``config.warm_critic`` its critic too (docs/learners.md §MAML-MADFRL)."""
    return theta if config.warm_critic else {"actor": theta["actor"]}


def make_pretrain(env, config: Config):
    """The non-meta baseline: :func:`make_meta_train` with ``inner_steps = 0`` (θ minimises
    the mean task loss directly, so the comparison isolates the inner loop)."""
    return make_meta_train(env, dataclasses.replace(config, inner_steps=0))


def make_train(env, config: Config):
    """``train(key, env_params) -> (policy_params, metrics)``: meta-train, then MADFRL + FL."""
    meta_train = make_meta_train(env, config)
    madfrl_train = madfrl.make_train(env, config.madfrl)

    def train(key, env_params):
        k_meta, k_rl = jax.random.split(key)
        theta, meta_metrics = meta_train(k_meta, env_params)
        policy_params, metrics = madfrl_train(k_rl, env_params, fine_tune_init(config, theta))
        return policy_params, dict(metrics, **meta_metrics)

    return train


def make_policy(env, config: Config, policy_params, **kwargs):
    """The trained MADFRL policy (``madfrl.make_policy`` with the MADFRL config)."""
    return madfrl.make_policy(env, config.madfrl, policy_params, **kwargs)


def make_adapt(env, config: Config, ks: Sequence[int]):
    """``adapt(key, theta, task_params) -> θ' = {"actor", "critic"} stacked over ks``: one
    support batch collected by θ's exploring policy in the task, then k SGD steps of the
    task loss (``config.inner_lr``), for each k in ``ks`` (static; k = 0 is θ)."""
    cfg, ks = config, tuple(int(k) for k in ks)
    collect, task_loss = make_collect(env, cfg), make_task_loss(env, cfg.madfrl)

    def adapt(key, theta, task_params):
        k_col, k_loss = jax.random.split(key)
        support, _ = collect(k_col, theta, task_params, cfg.eps)
        support = dict(support, key=k_loss)

        def step(th, _):
            th = maml.adapt(th, support, task_loss, 1, cfg.inner_lr)
            return th, th

        _, thetas = jax.lax.scan(step, theta, None, length=max(ks))
        # thetas[i] is θ after i+1 steps; prepend θ itself for k = 0
        thetas = jax.tree.map(lambda a0, a: jnp.concatenate([a0[None], a]), theta, thetas)
        return jax.tree.map(lambda a: a[jnp.asarray(ks)], thetas)

    return adapt


def follower_policy_params(env, config: Config, follower: dict) -> dict:
    """MADFRL policy params with one follower ``{"actor", "critic"}`` copied to every
    follower (the critic only where greedy modes use it, ``madfrl.uses_critic``)."""
    n = env.num_agents(madfrl._spec(env, config.madfrl).f_cls)
    out = {"follower": core.broadcast_agents(follower["actor"], n), "leader": None}
    if madfrl.uses_critic(env, config.madfrl):
        out["follower_critic"] = core.broadcast_agents(follower["critic"], n)
    return out


def make_adaptation_eval(env, config: Config, ks: Sequence[int], horizon: int):
    """``evaluate(key, theta, task_params) -> (len(ks),)``: for each k in ``ks``, the mean
    follower reward per DT per slot (eq. 33, unscaled) over one ``horizon``-slot rollout of
    :func:`make_adapt`'s θ' copied to every follower, greedy, the leader playing the
    adapter's ``fixed_actions``."""
    adapt, cls = make_adapt(env, config, ks), madfrl._spec(env, config.madfrl).f_cls
    posted = dataclasses.replace(config.madfrl, learn_leader=False)  # leader: adapter's action

    def greedy_return(key, follower, params):
        policy = madfrl.make_policy(env, posted, follower_policy_params(env, config, follower))
        return rollout(env, policy, key, params, horizon)["reward"][cls].mean()

    def evaluate(key, theta, task_params):
        k_adapt, k_eval = jax.random.split(key)
        chosen = adapt(k_adapt, theta, task_params)
        return jax.vmap(greedy_return, in_axes=(None, 0, None))(k_eval, chosen, task_params)

    return evaluate
