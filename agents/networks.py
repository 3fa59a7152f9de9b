"""Flax (linen) networks shared by the learners: :class:`MLP` torsos (orthogonal init,
gain √2, zero biases, as in PPO implementations), :func:`mlp_head` (a torso and one linear
output: Q-networks, deterministic actors, :class:`ValueCritic`, :class:`QCritic`) and the
hybrid-action policy :class:`HybridActor` → :class:`HybridDistribution` (a
``distrax.Joint`` over a dict action: one ``Categorical`` per discrete component, with
``avail_actions`` masks, and one bounded head per continuous one; output gain 0.01 so the
initial policy is close to uniform). :func:`hybrid_heads` and :func:`box_bounds` read head
sizes and bounds from an env's ``spaces.Dict`` action space.

Continuous heads (a decision; ``continuous_dist``):

* ``"tanh_normal"`` (default): ``Normal(loc(x), exp(log_std))`` with a state-independent
  learned ``log_std`` (init 0), squashed by ``tanh`` and mapped affinely onto ``[low,
  high]`` (a ``Chain([ScalarAffine, Tanh])`` bijector, so ``log_prob`` includes the exact
  log-Jacobian). ``entropy()`` is the standard approximation, the base Normal's entropy
  plus ``log((high − low)/2)`` (it omits ``E[log(1 − tanh²z)] ≤ 0``: an upper bound).
  ``mode()`` is ``affine(tanh(loc))``.
* ``"beta"``: ``Beta(α, β)``, ``α, β = 1 + softplus(·)`` (unimodal), mapped affinely;
  exact entropy ``H_Beta + log(high − low)``, mode ``(α − 1)/(α + β − 2)``. Sampling uses
  ``jax.random.gamma`` (a rejection loop, seconds of XLA compile time per call on CPU),
  hence not the default.

Sampling draws *one* flat block of uniforms for the whole hybrid action (Gumbel-max for the
categoricals, the inverse normal CDF for the tanh-normal heads): every separate
``jax.random`` call adds XLA compile time on CPU. The optimum of a bounded action often
sits on a bound (sgin: f = f_min, S_B = S_min), so continuous samples are clipped to
``[low + ε·w, high − ε·w]`` (``w = high − low``, ε = ``BOUND_EPS``) and ``log_prob``
applies the same clip: every sample's (and the mode's) log-probability is finite. Bounds
are passed at call time because they come from the env ``params``, which may be traced.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from agents.core import greedy
from jaxsg import spaces

#: Logit given to unavailable discrete options (finite, so entropies stay finite).
MASKED_LOGIT = -1e9
#: Relative margin kept from the continuous bounds (see the module docstring).
BOUND_EPS = 1e-6

CONTINUOUS_DISTS = ("tanh_normal", "beta")

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu}


def _activation(act: str | Callable) -> Callable:
    if callable(act):
        return act
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{act}'; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[act]


def orthogonal_dense(features: int, scale: float, name: str | None = None) -> nn.Dense:
    return nn.Dense(
        features,
        kernel_init=nn.initializers.orthogonal(scale),
        bias_init=nn.initializers.zeros,
        name=name,
    )


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
    """Inside a compact ``__call__``: an :class:`MLP` torso named ``"torso"`` on ``x``, then a
    linear layer of ``features`` units, orthogonal ``gain``, named ``out`` (the parameter
    names every critic, Q-network and deterministic actor here has)."""
    h = MLP(hidden, activation, name="torso")(x)
    return orthogonal_dense(features, gain, name=out)(h)


class HybridDistribution(distrax.Joint):
    """Joint distribution over a dict hybrid action (see the module docstring); every
    component shares one batch shape (e.g. ``(num_envs, n_agents)``) and ``log_prob`` /
    ``entropy`` sum over them. ``continuous`` maps a name to ``(loc, scale)``
    (``kind="tanh_normal"``) or ``(α, β)`` (``kind="beta"``). A pytree: it crosses
    ``jit``/``vmap`` boundaries."""

    def __init__(
        self,
        logits: Mapping[str, jnp.ndarray],
        continuous: Mapping[str, tuple[jnp.ndarray, jnp.ndarray]],
        low: Mapping[str, Any],
        high: Mapping[str, Any],
        kind: str = "tanh_normal",
    ):
        if kind not in CONTINUOUS_DISTS:
            raise ValueError(f"unknown continuous_dist '{kind}'; choose from {CONTINUOUS_DISTS}")
        batch = None
        for v in logits.values():
            batch = v.shape[:-1]
        for a, b in continuous.values():
            batch = jnp.broadcast_shapes(a.shape, b.shape)
        if batch is None:
            raise ValueError("HybridDistribution needs at least one component")
        self._kind = kind
        self._discrete_names = tuple(logits)
        self._continuous_names = tuple(continuous)
        self._num_options = tuple(int(v.shape[-1]) for v in logits.values())
        bcast = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), batch)
        self._low = {k: bcast(low[k]) for k in continuous}
        self._high = {k: bcast(high[k]) for k in continuous}
        self._params = {k: (bcast(a), bcast(b)) for k, (a, b) in continuous.items()}
        components = {k: distrax.Categorical(logits=v) for k, v in logits.items()}
        for k, (a, b) in self._params.items():
            lo, hi = self._low[k], self._high[k]
            if kind == "tanh_normal":
                affine = distrax.ScalarAffine(shift=0.5 * (lo + hi), scale=0.5 * (hi - lo))
                bijector = distrax.Chain([affine, distrax.Tanh()])
                components[k] = distrax.Transformed(distrax.Normal(a, b), bijector)
            else:
                components[k] = distrax.Transformed(
                    distrax.Beta(a, b), distrax.ScalarAffine(shift=lo, scale=hi - lo)
                )
        super().__init__(components)

    def _clip(self, value: Mapping[str, jnp.ndarray]) -> dict:
        out = dict(value)
        for k in self._continuous_names:
            lo, hi = self._low[k], self._high[k]
            margin = BOUND_EPS * (hi - lo)
            out[k] = jnp.clip(value[k], lo + margin, hi - margin)
        return out

    def _to_bounds(self, name: str, u: jnp.ndarray) -> jnp.ndarray:
        """Map ``u`` in [0, 1] (Beta) or [-1, 1] (tanh) onto ``[low, high]``."""
        lo, hi = self._low[name], self._high[name]
        if self._kind == "tanh_normal":
            return 0.5 * (lo + hi) + 0.5 * (hi - lo) * u
        return lo + (hi - lo) * u

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
                out[name] = self._to_bounds(name, jnp.tanh(a + b * z))
                col += 1
            else:
                x = jax.random.beta(jax.random.fold_in(key_beta, i), a, b, (n,) + tuple(batch))
                out[name] = self._to_bounds(name, x)
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
        """Per-component entropies (tanh-normal heads: the approximation above)."""
        out = {k: self.distributions[k].entropy() for k in self._discrete_names}
        for k in self._continuous_names:
            a, b = self._params[k]
            log_width = jnp.log(self._high[k] - self._low[k])
            if self._kind == "tanh_normal":
                out[k] = distrax.Normal(a, b).entropy() + log_width - jnp.log(2.0)
            else:
                out[k] = distrax.Beta(a, b).entropy() + log_width
        return out

    def entropy(self) -> jnp.ndarray:
        return sum(self.component_entropies().values())

    def mode(self) -> dict:
        out = {k: greedy(self.distributions[k].logits) for k in self._discrete_names}
        for k in self._continuous_names:
            a, b = self._params[k]
            if self._kind == "tanh_normal":
                u = jnp.tanh(a)
            else:
                denom = a + b - 2.0
                u = jnp.where(denom > 1e-6, (a - 1.0) / jnp.maximum(denom, 1e-6), a / (a + b))
            out[k] = self._to_bounds(k, u)
        return self._clip(out)


def mask_logits(logits: jnp.ndarray, mask: jnp.ndarray | None) -> jnp.ndarray:
    """Set unavailable options to ``MASKED_LOGIT``; all-False rows fall back to all options."""
    if mask is None:
        return logits
    mask = jnp.asarray(mask, bool)
    mask = mask | ~jnp.any(mask, axis=-1, keepdims=True)
    return jnp.where(mask, logits, MASKED_LOGIT)


class HybridActor(nn.Module):
    """Hybrid-action policy on an :class:`MLP` torso: ``discrete`` ``((name, options),
    ...)``, ``continuous`` ``(name, ...)``. ``__call__(x, masks=None, low=None, high=None)``:
    ``x`` ``batch + (features,)``, ``masks[name]`` boolean ``batch + (options,)`` (missing:
    all available), bounds broadcastable to ``batch`` (default [0, 1]) →
    :class:`HybridDistribution` of batch shape ``batch``."""

    discrete: Sequence[tuple[str, int]]
    continuous: Sequence[str] = ()
    hidden: Sequence[int] = (64, 64)
    activation: str | Callable = "tanh"
    continuous_dist: str = "tanh_normal"

    @nn.compact
    def __call__(self, x, masks=None, low=None, high=None) -> HybridDistribution:
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
        low = low if low is not None else {k: 0.0 for k in self.continuous}
        high = high if high is not None else {k: 1.0 for k in self.continuous}
        return HybridDistribution(logits, continuous, low, high, self.continuous_dist)


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


def hybrid_heads(space: spaces.Space) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    """``(discrete, continuous)`` head specs of a ``spaces.Dict`` (or single) action space."""
    comps = space.spaces if isinstance(space, spaces.Dict) else {"action": space}
    discrete = tuple((k, s.n) for k, s in comps.items() if isinstance(s, spaces.Discrete))
    continuous = tuple(k for k, s in comps.items() if isinstance(s, spaces.Box))
    if len(discrete) + len(continuous) != len(comps):
        raise ValueError(f"unsupported action components in {space!r}")
    return discrete, continuous


def box_bounds(space: spaces.Space) -> tuple[dict, dict]:
    """``(low, high)`` dicts of the Box components (arrays with the space's shape)."""
    comps = space.spaces if isinstance(space, spaces.Dict) else {"action": space}
    low = {k: s.low for k, s in comps.items() if isinstance(s, spaces.Box)}
    high = {k: s.high for k, s in comps.items() if isinstance(s, spaces.Box)}
    return low, high

