"""A pure-JAX uniform replay buffer (a pytree: it lives in ``lax.scan`` carries and vmaps)
over any pytree of items, written in a ring. ``sample`` before any ``add`` returns zero
items; callers gate learning on ``size(buf) >= warmup`` (:func:`agents.core.gate`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

PyTree = Any


class Replay(NamedTuple):
    data: PyTree  # every leaf shaped (capacity, *item_shape)
    count: jnp.ndarray  # int32 scalar: items ever added


def init(example_item: PyTree, capacity: int) -> Replay:
    """An empty buffer holding ``capacity`` items shaped like ``example_item``."""
    if int(capacity) < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    data = jax.tree.map(
        lambda x: jnp.zeros((int(capacity),) + jnp.shape(x), jnp.asarray(x).dtype), example_item
    )
    return Replay(data, jnp.zeros((), jnp.int32))


def capacity(buf: Replay) -> int:
    return jax.tree.leaves(buf.data)[0].shape[0]


def size(buf: Replay) -> jnp.ndarray:
    """Number of valid items, ``min(count, capacity)``."""
    return jnp.minimum(buf.count, capacity(buf))


def add_batch(buf: Replay, items: PyTree) -> Replay:
    """Write a batch of items (leading axis) into the ring, oldest first out."""
    cap = capacity(buf)
    n = jax.tree.leaves(items)[0].shape[0]
    chex.assert_tree_shape_prefix(items, (n,))
    idx = (buf.count + jnp.arange(n)) % cap
    data = jax.tree.map(lambda d, x: d.at[idx].set(x.astype(d.dtype)), buf.data, items)
    return Replay(data, buf.count + n)


def add(buf: Replay, item: PyTree) -> Replay:
    """Write one item."""
    return add_batch(buf, jax.tree.map(lambda x: jnp.asarray(x)[None], item))


def sample(buf: Replay, key: chex.PRNGKey, batch_size: int) -> PyTree:
    """``batch_size`` items drawn uniformly with replacement from the valid ones."""
    idx = jax.random.randint(key, (int(batch_size),), 0, jnp.maximum(size(buf), 1))
    return jax.tree.map(lambda d: d[idx], buf.data)
