"""Flax (linen) networks shared by the learners (:class:`MLP` torsos, heads, critics, the
:class:`HybridActor` → :class:`HybridDistribution` over dict actions) and the action
encoding MADFRL and MAPPO share (:class:`Group`, :func:`encoding`, :func:`to_env_action`).
Decisions: docs/learners.md §Networks and the shared action encoding.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from agents.core import greedy
from jaxsg import spaces
from jaxsg.env import INVALID_ACTION

#: Logit given to unavailable discrete options (finite, so entropies stay finite).
MASKED_LOGIT = -1e9
#: Relative margin kept from the continuous bounds (docs/learners.md).
BOUND_EPS = 1e-6

CONTINUOUS_DISTS = ("tanh_normal", "beta")

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu}


def _activation(act: str | Callable) -> Callable:
    if not callable(act) and act not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{act}'; choose from {sorted(ACTIVATIONS)}")
    return act if callable(act) else ACTIVATIONS[act]


def orthogonal_dense(features: int, scale: float, name: str | None = None) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale),
                    bias_init=nn.initializers.zeros, name=name)


class MLP(nn.Module):
    """Dense torso: ``len(hidden)`` layers, orthogonal(√2) init, activation after each."""

    hidden: Sequence[int] = (64, 64)
    activation: str | Callable = "tanh"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = _activation(self.activation)
        for i, width in enumerate(self.hidden):
            x = act(orthogonal_dense(width, float(np.sqrt(2.0)), name=f"dense_{i}")(x))
        return x


def mlp_head(x, features: int, gain: float, out: str, hidden, activation) -> jnp.ndarray:
    """Inside a compact ``__call__``: an :class:`MLP` ``"torso"`` on ``x``, then a linear
    layer of ``features`` units, orthogonal ``gain``, named ``out``."""
    h = MLP(hidden, activation, name="torso")(x)
    return orthogonal_dense(features, gain, name=out)(h)


class MLPHead(nn.Module):
    """:func:`mlp_head` as a module (Q-networks, deterministic actors)."""

    features: int
    gain: float
    out: str
    hidden: Sequence[int] = (64, 64)
    activation: str | Callable = "relu"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return mlp_head(x, self.features, self.gain, self.out, tuple(self.hidden),
                        self.activation)


class HybridDistribution(distrax.Joint):
    """``distrax.Joint`` over a dict hybrid action: a ``Categorical`` per name of ``logits``,
    a bounded head in [−1, 1] per name of ``continuous``, ``(loc, scale)`` (``kind=
    "tanh_normal"``) or ``(α, β)`` (``"beta"``); one batch shape; a pytree."""

    def __init__(self, logits: Mapping[str, jnp.ndarray],
                 continuous: Mapping[str, tuple[jnp.ndarray, jnp.ndarray]], kind="tanh_normal"):
        if kind not in CONTINUOUS_DISTS:
            raise ValueError(f"unknown continuous_dist '{kind}'; choose from {CONTINUOUS_DISTS}")
        shapes = [v.shape[:-1] for v in logits.values()]
        shapes += [jnp.broadcast_shapes(a.shape, b.shape) for a, b in continuous.values()]
        if not shapes:
            raise ValueError("HybridDistribution needs at least one component")
        batch = shapes[-1]
        self._kind, self._continuous_names = kind, tuple(continuous)
        self._discrete_names = tuple(logits)
        self._num_options = tuple(int(v.shape[-1]) for v in logits.values())
        bcast = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), batch)  # noqa: E731
        self._params = {k: (bcast(a), bcast(b)) for k, (a, b) in continuous.items()}
        components = {k: distrax.Categorical(logits=v) for k, v in logits.items()}
        for k, (a, b) in self._params.items():
            base, bij = ((distrax.Normal(a, b), distrax.Tanh()) if kind == "tanh_normal"
                         else (distrax.Beta(a, b), distrax.ScalarAffine(-1.0, 2.0)))
            components[k] = distrax.Transformed(base, bij)
        super().__init__(components)

    def _clip(self, value: Mapping[str, jnp.ndarray]) -> dict:
        edge = 1.0 - 2.0 * BOUND_EPS
        return {k: jnp.clip(v, -edge, edge) if k in self._params else v for k, v in value.items()}

    def _sample_n(self, key, n: int) -> dict:
        batch = self.batch_shape
        size = int(np.prod(batch, dtype=np.int64))
        width = sum(self._num_options)
        if self._kind == "tanh_normal":
            width += len(self._continuous_names)
        key, key_beta = jax.random.split(key)
        # one flat draw in (0, 1) for every categorical option and tanh-normal head
        u = jax.random.uniform(
            key, (n * size * width,), jnp.float32, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0
        ).reshape((n,) + tuple(batch) + (width,))
        out, col = {}, 0
        for name, k in zip(self._discrete_names, self._num_options):
            gumbel = -jnp.log(-jnp.log(u[..., col : col + k]))
            logits = self.distributions[name].logits
            out[name] = greedy(logits + gumbel)  # NaN logits → INVALID_ACTION
            col += k
        for i, name in enumerate(self._continuous_names):
            a, b = self._params[name]
            if self._kind == "tanh_normal":
                z = jax.scipy.special.ndtri(jnp.clip(u[..., col], 1e-7, 1.0 - 1e-7))
                out[name] = jnp.tanh(a + b * z)
                col += 1
            else:
                x = jax.random.beta(jax.random.fold_in(key_beta, i), a, b, (n,) + tuple(batch))
                out[name] = 2.0 * x - 1.0
        return self._clip(out)

    def _sample_n_and_log_prob(self, key, n: int):
        sample = self._sample_n(key, n)
        return sample, self.log_prob(sample)

    def component_log_probs(self, value: Mapping[str, jnp.ndarray]) -> dict:
        """Per-component log-probabilities (continuous values clipped as in ``log_prob``)."""
        value = self._clip(value)
        return {k: d.log_prob(value[k]) for k, d in self.distributions.items()}

    def log_prob(self, value: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
        return sum(self.component_log_probs(value).values())

    def component_entropies(self) -> dict:
        """Per-component entropies (tanh-normal heads: the base Normal's, docs/learners.md)."""
        out = {k: self.distributions[k].entropy() for k in self._discrete_names}
        for k, (a, b) in self._params.items():
            out[k] = (distrax.Normal(a, b).entropy() if self._kind == "tanh_normal"
                      else distrax.Beta(a, b).entropy() + jnp.log(2.0))
        return out

    def entropy(self) -> jnp.ndarray:
        return sum(self.component_entropies().values())

    def mode(self) -> dict:
        out = {k: greedy(self.distributions[k].logits) for k in self._discrete_names}
        for k, (a, b) in self._params.items():
            denom = a + b - 2.0
            beta_mode = jnp.where(denom > 1e-6, (a - 1.0) / jnp.maximum(denom, 1e-6), a / (a + b))
            out[k] = jnp.tanh(a) if self._kind == "tanh_normal" else 2.0 * beta_mode - 1.0
        return self._clip(out)


def mask_logits(logits: jnp.ndarray, mask: jnp.ndarray | None) -> jnp.ndarray:
    """Set unavailable options to ``MASKED_LOGIT``; all-False rows fall back to all options."""
    if mask is None:
        return logits
    mask = jnp.asarray(mask, bool)
    mask = mask | ~jnp.any(mask, axis=-1, keepdims=True)
    return jnp.where(mask, logits, MASKED_LOGIT)


class HybridActor(nn.Module):
    """Hybrid-action policy on an :class:`MLP` torso (``discrete`` ``((name, options), ...)``,
    ``continuous`` ``(name, ...)``): ``__call__(x (batch, features), masks=None)`` →
    :class:`HybridDistribution` of batch shape ``batch``; ``masks[name]`` bool (missing: all)."""

    discrete: Sequence[tuple[str, int]]
    continuous: Sequence[str] = ()
    hidden: Sequence[int] = (64, 64)
    activation: str | Callable = "tanh"
    continuous_dist: str = "tanh_normal"

    @nn.compact
    def __call__(self, x, masks=None) -> HybridDistribution:
        masks = masks or {}
        h = MLP(self.hidden, self.activation, name="torso")(x)
        logits = {
            name: mask_logits(orthogonal_dense(n, 0.01, name=f"logits_{name}")(h), masks.get(name))
            for name, n in self.discrete
        }
        continuous = {}
        for name in self.continuous:
            if self.continuous_dist == "tanh_normal":
                loc = orthogonal_dense(1, 0.01, name=f"loc_{name}")(h)[..., 0]
                log_std = self.param(f"log_std_{name}", nn.initializers.zeros, ())
                continuous[name] = (loc, jnp.broadcast_to(jnp.exp(log_std), loc.shape))
            else:
                ab = orthogonal_dense(2, 0.01, name=f"beta_{name}")(h)
                continuous[name] = (1.0 + nn.softplus(ab[..., 0]), 1.0 + nn.softplus(ab[..., 1]))
        return HybridDistribution(logits, continuous, self.continuous_dist)


class ValueCritic(nn.Module):
    """State value ``V(x)`` (gain-1.0 linear output); returns the ``batch`` shape."""

    hidden: Sequence[int] = (64, 64)
    activation: str | Callable = "tanh"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return mlp_head(x, 1, 1.0, "value", self.hidden, self.activation)[..., 0]


class QCritic(ValueCritic):
    """Action value ``Q(obs, action_features)`` (inputs concatenated); returns ``batch``."""

    @nn.compact
    def __call__(self, obs: jnp.ndarray, action_features: jnp.ndarray) -> jnp.ndarray:
        x = jnp.concatenate([obs, action_features], axis=-1)
        return mlp_head(x, 1, 1.0, "q", self.hidden, self.activation)[..., 0]


def components(space: spaces.Space) -> dict:
    """``{name: space}`` of a ``spaces.Dict``; a single space is ``{"action": space}``."""
    return space.spaces if isinstance(space, spaces.Dict) else {"action": space}


def hybrid_heads(space: spaces.Space) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    """``(discrete, continuous)`` head specs of a ``spaces.Dict`` (or single) action space."""
    comps = components(space)
    discrete = tuple((k, s.n) for k, s in comps.items() if isinstance(s, spaces.Discrete))
    continuous = tuple(k for k, s in comps.items() if isinstance(s, spaces.Box))
    if len(discrete) + len(continuous) != len(comps):
        raise ValueError(f"unsupported action components in {space!r}")
    return discrete, continuous


def box_bounds(space: spaces.Space) -> tuple[dict, dict]:
    """``(low, high)`` dicts of the Box components (arrays with the space's shape)."""
    boxes = {k: s for k, s in components(space).items() if isinstance(s, spaces.Box)}
    return {k: s.low for k, s in boxes.items()}, {k: s.high for k, s in boxes.items()}


@struct.dataclass
class Group:
    """One agent class's encoded hybrid action: ``discrete`` ((name, options), ...),
    ``continuous`` ((name, size), ...), ``modes`` ((continuous, discrete head), ...), whose
    continuous head has one block per option (:func:`select_modes`)."""

    discrete: tuple = struct.field(pytree_node=False)
    continuous: tuple = struct.field(pytree_node=False)  # (name, size)
    modes: tuple = struct.field(pytree_node=False, default=())

    def actor_continuous(self) -> tuple:
        """Actor output sizes: a mode head has one block per option of its discrete head."""
        options, by = dict(self.discrete), dict(self.modes)
        return tuple((k, size * options[by[k]] if k in by else size)
                     for k, size in self.continuous)


def action_group(space, modes=()) -> Group:
    """The :class:`Group` of an action space; ``modes`` naming absent heads are dropped
    (sgin's ``("cpu", "offload")`` under ``payoff="paper"``, whose head is ``cpu_ghz``)."""
    discrete, cont_names = hybrid_heads(space)
    comps = components(space)
    sizes = tuple((k, int(np.prod(comps[k].shape[1:])) or 1) for k in cont_names)
    modes = tuple((c, d) for c, d in modes if c in dict(sizes) and d in dict(discrete))
    return Group(discrete, sizes, modes)


def encoding(config, ad) -> tuple[tuple, tuple, tuple]:
    """``(relative_heads, ranked_heads, mode_heads)`` of a learner ``config`` (its fields of
    those names); a field left None takes the scenario adapter ``ad``'s (``()`` if none)."""
    def pick(name):
        value = getattr(config, name)
        return getattr(ad, name, ()) if value is None else value

    return (tuple(pick("relative_heads")), tuple(tuple(h) for h in pick("ranked_heads")),
            tuple(tuple(m) for m in pick("mode_heads")))


def select_modes(onehots: dict, unit: dict, group: Group) -> dict:
    """Per-mode continuous heads: ``unit[k]`` (…, options·size) → the chosen option's
    block (…, size)."""
    unit, sizes = dict(unit), dict(group.continuous)
    for k, d in group.modes:
        oh = onehots[d]
        blocks = unit[k].reshape(unit[k].shape[:-1] + (oh.shape[-1], sizes[k]))
        unit[k] = jnp.sum(oh[..., None] * blocks, axis=-2)
    return unit


def head_orders(env, obs, ranked_heads, agent_class: str) -> dict:
    """{head: option indices sorted by the named feature of ``obs``}, shape (..., n, options)
    (positions from ``env.observation_slices``): rank r means "my r-th best option"."""
    where = env.observation_slices(agent_class) if ranked_heads else {}
    return {head: jnp.argsort(obs[..., where[feature]], axis=-1) for head, feature in ranked_heads}


def masks_in_rank_order(masks: dict, orders: dict) -> dict:
    """Permute availability masks into the actor's (ranked) option order."""
    return {k: jnp.take_along_axis(m, orders[k], -1) if k in orders else m
            for k, m in masks.items()}


def to_env_action(onehots, unit, group, low, high, relative=(), orders=None):
    """One-hots → ints (an all-zero row → ``INVALID_ACTION``), unit values in [−1, 1] → the
    bounds; ``relative`` heads are offsets (agent i choosing k sends (k + i) mod n),
    ``orders`` heads ranks (rank r → option ``orders[k][..., r]``)."""
    action = {k: jnp.argmax(onehots[k], -1).astype(jnp.int32) for k, _ in group.discrete}
    invalid = {k: ~jnp.any(onehots[k] > 0, -1) for k, _ in group.discrete}
    sizes = dict(group.discrete)
    for k in relative:
        index = jnp.arange(action[k].shape[-1], dtype=jnp.int32)
        action[k] = (action[k] + index) % sizes[k]
    for k, order in (orders or {}).items():
        action[k] = jnp.take_along_axis(order, action[k][..., None], -1)[..., 0].astype(jnp.int32)
    action = {k: jnp.where(invalid[k], INVALID_ACTION, a) for k, a in action.items()}
    for k, size in group.continuous:
        u = 0.5 * (unit[k] + 1.0)
        action[k] = low[k] + (u if size > 1 else u[..., 0]) * (high[k] - low[k])
    return action
