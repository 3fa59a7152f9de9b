"""Action and observation spaces with a leading agent axis.

jaxsg holds agents as arrays, so a space describes the *whole agent class* at
once: ``Discrete(4, shape=(48,))`` is 48 agents each choosing one of 4 options,
``Box(0.5e9, 6e9, shape=(48,))`` is 48 bounded scalars. ``Dict`` groups the
components of a hybrid action (``{"offload": Discrete(2, (n,)), ...}``).

Every space offers ``sample(key, mask=None)`` (jit-able, uniform; a boolean
``mask`` of shape ``shape + (n,)`` restricts ``Discrete`` draws to available
options) and ``contains(x)`` (a boolean JAX scalar, jit-able).
"""

from __future__ import annotations

from typing import Any, Mapping

import chex
import jax
import jax.numpy as jnp

from jaxsg.rng import uniform_01


class Space:
    """Base class: a set of arrays with one shape and dtype."""

    shape: tuple[int, ...]
    dtype: Any

    def sample(self, key: chex.PRNGKey, mask: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def contains(self, x: Any) -> jnp.ndarray:  # pragma: no cover
        raise NotImplementedError


class Discrete(Space):
    """Integers in ``{0, …, n-1}``, one per element of ``shape``."""

    def __init__(self, n: int, shape: tuple[int, ...] = (), dtype=jnp.int32):
        if int(n) < 1:
            raise ValueError(f"Discrete: n must be >= 1, got {n}")
        self.n = int(n)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype

    def sample(self, key: chex.PRNGKey, mask: Any = None) -> jnp.ndarray:
        """Uniform draw; with ``mask`` (shape ``shape + (n,)``), uniform over True entries.

        Rows whose mask is all False fall back to uniform over all options, so a
        sample always exists; callers that care check ``avail_actions`` first.
        One uniform draw per element (the k-th available option, k uniform), not
        one Gumbel per option, from :func:`jaxsg.rng.uniform_01` (the fused
        counter-mode draw): random bits dominate the cost of batched steps.
        """
        u = uniform_01(key, self.shape)
        if mask is None:
            return jnp.minimum(jnp.floor(u * self.n), self.n - 1).astype(self.dtype)
        mask = jnp.asarray(mask, bool)
        chex.assert_shape(mask, self.shape + (self.n,))
        mask = mask | ~jnp.any(mask, axis=-1, keepdims=True)
        rank = jnp.cumsum(mask, axis=-1)  # 1-based rank of each available option
        count = rank[..., -1]
        k = jnp.floor(u * count).astype(rank.dtype)
        k = jnp.minimum(k, count - 1)
        return jnp.argmax(mask & (rank == (k + 1)[..., None]), axis=-1).astype(self.dtype)

    def contains(self, x: Any) -> jnp.ndarray:
        x = jnp.asarray(x)
        if x.shape != self.shape or not jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.array(False)
        return jnp.all((x >= 0) & (x < self.n))

    def __repr__(self) -> str:
        return f"Discrete({self.n}, shape={self.shape})"


class Box(Space):
    """Real arrays in ``[low, high]`` (bounds broadcast to ``shape``; may be ±inf)."""

    def __init__(self, low: Any, high: Any, shape: tuple[int, ...], dtype=jnp.float32):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        # Bounds may be traced (they come from params inside jit), so keep them as jnp.
        self.low = jnp.broadcast_to(jnp.asarray(low, dtype), self.shape)
        self.high = jnp.broadcast_to(jnp.asarray(high, dtype), self.shape)
        concrete = not isinstance(self.low, jax.core.Tracer) and not isinstance(
            self.high, jax.core.Tracer
        )
        if concrete and bool(jnp.any(self.low > self.high)):
            raise ValueError(f"Box: low must be <= high elementwise, got low={low}, high={high}")

    def sample(self, key: chex.PRNGKey, mask: Any = None) -> jnp.ndarray:
        """Uniform on the box; where a side is unbounded, a unit normal (from the same
        uniform, by inverse CDF) clipped to the finite side. One draw per element."""
        del mask
        finite = jnp.isfinite(self.low) & jnp.isfinite(self.high)
        u = (1e-6 + (1.0 - 2e-6) * uniform_01(key, self.shape)).astype(self.dtype)
        low = jnp.where(finite, self.low, 0.0)
        high = jnp.where(finite, self.high, 1.0)
        bounded = low + u * (high - low)
        free = jnp.clip(jax.scipy.special.ndtri(u), self.low, self.high)
        return jnp.where(finite, bounded, free)

    def contains(self, x: Any) -> jnp.ndarray:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.array(False)
        return jnp.all((x >= self.low) & (x <= self.high) & ~jnp.isnan(x))

    def __repr__(self) -> str:
        return f"Box(low={self.low.min()}, high={self.high.max()}, shape={self.shape})"


class Dict(Space):
    """A named group of spaces (hybrid actions, structured observations)."""

    def __init__(self, spaces: Mapping[str, Space]):
        self.spaces = dict(spaces)
        self.shape = ()
        self.dtype = None

    def sample(self, key: chex.PRNGKey, mask: Mapping[str, Any] | None = None) -> dict:
        keys = jax.random.split(key, len(self.spaces))
        mask = mask or {}
        return {
            name: space.sample(k, mask.get(name))
            for k, (name, space) in zip(keys, self.spaces.items())
        }

    def contains(self, x: Any) -> jnp.ndarray:
        if not isinstance(x, Mapping) or set(x) != set(self.spaces):
            return jnp.array(False)
        return jnp.all(jnp.stack([self.spaces[k].contains(x[k]) for k in self.spaces]))

    def __getitem__(self, name: str) -> Space:
        return self.spaces[name]

    def __repr__(self) -> str:
        return f"Dict({self.spaces})"
