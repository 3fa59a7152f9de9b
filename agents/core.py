"""Building blocks shared by every learner, scenario-free (the list: docs/extending.md,
"Building blocks")."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from typing import Any, Callable, Mapping

import flax.serialization
import jax
import jax.numpy as jnp
import optax
from flax import struct

from agents.adapters import for_env
from jaxsg.env import INVALID_ACTION
from jaxsg.validation import Bound

PyTree = Any

#: Bounds used by most configs (``FINITE``: any finite number).
FINITE = Bound(-math.inf, math.inf, low_inclusive=False, high_inclusive=False)
COUNT = Bound(1, math.inf, integer=True)
COUNT0 = Bound(0, math.inf, integer=True)
UNIT = Bound(0.0, 1.0)
POSITIVE = Bound(0.0, math.inf, low_inclusive=False, high_inclusive=False)
NON_NEGATIVE = Bound(0.0, math.inf, high_inclusive=False)
#: Bounds of fields many configs share (a config's ``BOUNDS`` adds to or overrides them).
COMMON_BOUNDS = dict(num_envs=COUNT, num_updates=COUNT, buffer_size=COUNT, batch_size=COUNT,
                     warmup_updates=COUNT0, gamma=UNIT, lr=POSITIVE, max_grad_norm=POSITIVE,
                     reward_scale=POSITIVE, eps_start=UNIT, eps_end=UNIT,
                     eps_decay_fraction=UNIT)


def check_config(config: Any) -> None:
    """Validate a frozen dataclass ``config`` (``ValueError`` naming the field and its range,
    as for env params): numeric fields against :data:`COMMON_BOUNDS` and the class's
    ``BOUNDS`` (``None`` skipped), ``bool`` fields' type, ``CHOICES`` options."""
    where = type(config).__name__
    fields = dataclasses.fields(config)
    names = {f.name for f in fields}
    bounds = {k: b for k, b in COMMON_BOUNDS.items() if k in names}
    bounds.update(type(config).BOUNDS)
    for f in fields:
        value = getattr(config, f.name)
        if f.type in ("bool", bool) and not isinstance(value, (bool, jnp.bool_)):
            raise ValueError(f"{where}: field '{f.name}' must be a bool, got {value!r}")
    for name, allowed in getattr(type(config), "CHOICES", {}).items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{where}: field '{name}' = {getattr(config, name)!r}; "
                             f"allowed values: {allowed}")
    for name, b in bounds.items():
        if name not in names:
            raise ValueError(f"{where}: BOUNDS names unknown field '{name}'")
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: field '{name}' must be a number, got {value!r}")
        if (b.integer and not isinstance(value, int)) or math.isnan(value) or not b.holds(value):
            raise ValueError(f"{where}: field '{name}' = {value!r} is outside {b.describe()}")


def config_json(config: Any) -> str:
    """The config as JSON (nested dataclasses as dicts, tuples as lists)."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)


def reward_scale(config: Any, env, params) -> Any:
    """``config.reward_scale``, or the scenario adapter's when it is None."""
    value = config.reward_scale
    return for_env(env).reward_scale(env, params) if value is None else value


def vec_env(env, num_envs: int) -> tuple[Callable, Callable]:
    """``reset(key, params)`` and ``step(key, states, actions, params)`` of ``num_envs``
    envs (vmapped); each call splits its key into one per env."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    return (lambda key, params: reset(jax.random.split(key, num_envs), params),
            lambda key, states, actions, params: step(jax.random.split(key, num_envs), states,
                                                      actions, params))


def with_agent_id(x: jnp.ndarray) -> jnp.ndarray:
    """``(..., n, d) -> (..., n, d + n)``: append a one-hot agent id."""
    n = x.shape[-2]
    ids = jnp.broadcast_to(jnp.eye(n, dtype=x.dtype), x.shape[:-2] + (n, n))
    return jnp.concatenate([x, ids], axis=-1)


def stacked_init(init: Callable, key: jax.Array, n: int, *example) -> PyTree:
    """``n`` independent inits of ``init(key, *example)`` stacked on a leading axis."""
    in_axes = (0,) + (None,) * len(example)
    return jax.vmap(init, in_axes=in_axes)(jax.random.split(key, n), *example)


def stacked_apply(apply: Callable, params: PyTree, *xs, out_axis: int = -2):
    """Apply agent i's parameters (leading axis of ``params``) to slice i of every
    input along its agent axis ``-2``; outputs carry the agent axis at ``out_axis``."""
    in_axes = (0,) + (-2,) * len(xs)
    return jax.vmap(apply, in_axes=in_axes, out_axes=out_axis)(params, *xs)


def broadcast_agents(tree: PyTree, n: int) -> PyTree:
    """One agent's parameters copied to ``n`` agents (leading axis)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree)


def linear(start: float, end: float, steps) -> optax.Schedule:
    """Linear from ``start`` to ``end`` over ``steps`` counts (at least 1), then constant;
    ``steps`` may be traced (a swept ε-decay fraction)."""
    if isinstance(steps, (int, float)):
        return optax.linear_schedule(start, end, max(int(steps), 1))
    return lambda count: start + (end - start) * jnp.clip(count / jnp.maximum(steps, 1.0),
                                                          0.0, 1.0)


def soft_update(online: PyTree, target: PyTree, tau: float) -> PyTree:
    """θ_T ← τ·θ + (1 − τ)·θ_T (``optax.incremental_update``)."""
    return optax.incremental_update(online, target, tau)


def hard_update(online: PyTree, target: PyTree, step: jnp.ndarray, period: int) -> PyTree:
    """θ_T ← θ when ``step % period == 0`` (``optax.periodic_update``)."""
    return optax.periodic_update(online, target, step, int(period))


def gate(pred: jnp.ndarray, new: PyTree, old: PyTree) -> PyTree:
    """``new`` where ``pred`` else ``old``, leaf by leaf; a ``pred`` of shape ``(C,)`` selects
    along the leading axis (``old`` may be stacked or broadcast)."""
    pred = jnp.asarray(pred)
    return jax.tree.map(lambda a, b: jnp.where(
        pred.reshape(pred.shape + (1,) * (jnp.ndim(a) - pred.ndim)), a, b), new, old)


def opt_step(tx: optax.GradientTransformation, params: PyTree, opt: PyTree, grads: PyTree):
    """One optimiser step: ``(params, opt)`` after ``grads``."""
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt


def stacked_step(tx: optax.GradientTransformation, params: PyTree, opt: PyTree, grads: PyTree):
    """:func:`opt_step` per agent (leading axis)."""
    return jax.vmap(lambda p, o, g: opt_step(tx, p, o, g))(params, opt, grads)


@struct.dataclass
class ActorCritic:
    """Stacked per-agent actors, critics, their targets and optimiser states."""

    actor: PyTree
    critic: PyTree
    target_actor: PyTree
    target_critic: PyTree
    actor_opt: PyTree
    critic_opt: PyTree

    @classmethod
    def create(cls, actor, critic, actor_tx, critic_tx) -> "ActorCritic":
        return cls(actor, critic, actor, critic, jax.vmap(actor_tx.init)(actor),
                   jax.vmap(critic_tx.init)(critic))


def actor_critic_step(ac: ActorCritic, critic_loss: Callable, actor_loss: Callable, actor_tx,
                      critic_tx, tau: float):
    """Critic step on ``critic_loss(critic) -> (loss, aux)``, actor step on ``actor_loss(actor,
    new critic)``, soft targets: ``(ActorCritic, critic loss, actor loss, aux)``."""
    (c_loss, aux), grads = jax.value_and_grad(critic_loss, has_aux=True)(ac.critic)
    critic, c_opt = stacked_step(critic_tx, ac.critic, ac.critic_opt, grads)
    a_loss, grads = jax.value_and_grad(actor_loss)(ac.actor, critic)
    actor, a_opt = stacked_step(actor_tx, ac.actor, ac.actor_opt, grads)
    new = ActorCritic(actor, critic, soft_update(actor, ac.target_actor, tau),
                      soft_update(critic, ac.target_critic, tau), a_opt, c_opt)
    return new, c_loss, a_loss, aux


def epsilon_greedy(key: jax.Array, eps, greedy_action: jnp.ndarray, random_action):
    """``random_action`` with probability ``eps``, else ``greedy_action`` (int32)."""
    explore = jax.random.uniform(key, greedy_action.shape) < eps
    return jnp.where(explore, random_action, greedy_action).astype(jnp.int32)


def adam(lr, max_grad_norm: float, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam after global-norm clipping (every learner's optimiser)."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(lr, eps=eps))


def gae(rewards, values, next_values, terminated, done, gamma, lam):
    """Advantages and returns over a leading time axis: ``δ_t = r_t + γ(1 − terminated_t)
    V(final obs_t) − V_t``, ``A_t = δ_t + γλ(1 − done_t)A_{t+1}``; ``terminated``/``done``
    broadcast against ``rewards`` (e.g. ``(T, E, 1)``)."""
    term = jnp.asarray(terminated, jnp.float32)
    done = jnp.asarray(done, jnp.float32)

    def body(next_adv, t):
        r, v, nv, te, d = t
        delta = r + gamma * (1.0 - te) * nv - v
        adv = delta + gamma * lam * (1.0 - d) * next_adv
        return adv, adv

    term, done = jnp.broadcast_arrays(term, done)
    _, adv = jax.lax.scan(body, jnp.zeros_like(rewards[0]),
                          (rewards, values, next_values, term, done), reverse=True)
    return adv, adv + values


def double_q_target(reward, q_next_online, q_next_target, continuation, mask=None,
                    double: bool = True):
    """``r + c·Q_T(s', argmax_a Q(s', a))`` (``double=False``: argmax of Q_T), no gradient;
    actions on the last axis, ``mask`` (bool, same shape) restricts the argmax."""
    chooser = q_next_online if double else q_next_target
    if mask is not None:
        mask = mask | ~jnp.any(mask, axis=-1, keepdims=True)
        chooser = jnp.where(mask, chooser, -jnp.inf)
    best = jnp.argmax(chooser, axis=-1)
    boot = jnp.take_along_axis(q_next_target, best[..., None], axis=-1)[..., 0]
    return jax.lax.stop_gradient(reward + continuation * boot)


def greedy(values: jnp.ndarray) -> jnp.ndarray:
    """``argmax`` over the last axis (int32), or ``jaxsg.INVALID_ACTION`` where the row
    cannot be trusted (a NaN or +inf, or no finite entry): the env flags it instead of
    reading a diverged network's output as option 0. ``−inf`` marks masked options."""
    bad = (jnp.any(jnp.isnan(values) | (values == jnp.inf), axis=-1)
           | ~jnp.any(jnp.isfinite(values), axis=-1))
    return jnp.where(bad, INVALID_ACTION, jnp.argmax(values, axis=-1)).astype(jnp.int32)


def ou_step(noise: jnp.ndarray, key: jax.Array, theta: float, sigma) -> jnp.ndarray:
    """Ornstein-Uhlenbeck, dt = 1: x ← x − θx + σ·N(0, 1)."""
    return noise - theta * noise + sigma * jax.random.normal(key, noise.shape)


def env_metrics(info: Mapping[str, Any]) -> dict:
    """Every array entry of a batched ``info`` averaged over the leading env axis
    (scalar metrics become scalars, per-agent arrays stay per agent)."""
    return {k: jnp.mean(v, axis=0) for k, v in info.items()
            if hasattr(v, "shape") and not isinstance(v, Mapping) and v.ndim >= 1}


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | os.PathLike, params: PyTree, config: Any = None) -> None:
    """Write ``params`` (msgpack, ``flax.serialization``) to ``path`` and, when given,
    ``config`` as JSON to ``path + ".json"``; each file is written atomically."""
    path = os.fspath(path)
    _atomic_write(path, flax.serialization.to_bytes(jax.device_get(params)))
    if config is not None:
        _atomic_write(path + ".json", config_json(config).encode())


def load_checkpoint(path: str | os.PathLike, template: PyTree) -> PyTree:
    """Read params written by :func:`save_checkpoint` into ``template``'s structure
    (arrays take the stored shapes, so stacked seed axes restore too)."""
    with open(os.fspath(path), "rb") as f:
        restored = flax.serialization.from_bytes(template, f.read())
    return jax.tree.map(jnp.asarray, restored)


def load_config_json(path: str | os.PathLike) -> dict:
    """The config dict stored beside a checkpoint."""
    with open(os.fspath(path) + ".json") as f:
        return json.load(f)
