"""Shard a sweep's batch axis over the local devices.

A sweep cell stacks its numeric axes and seeds along one leading *batch* axis
and maps one function over it. :func:`run_batched` does that as
``jit(vmap(fn))`` with the batch axis split over every local device
(a one-axis ``Mesh`` named ``"batch"`` and ``NamedSharding(mesh, P("batch"))``):

    keys = jax.random.split(jax.random.key(seed), n)      # split BEFORE sharding
    out = run_batched(lambda k: episode_return(k, params), keys)   # numpy, (n, ...)

The batch is padded to a multiple of the device count by repeating its last
element; the padded rows are computed and dropped. Each element is computed
independently of the others, so results do not depend on the device count
(up to floating-point reassociation inside XLA, ~1e-7 relative in float32).

Multi-host: call ``jax.distributed.initialize()`` before anything else (this
module never does). The mesh here spans ``jax.local_devices()`` only, so each
process computes its whole batch on its own devices; to split work across
hosts, give each process different cells.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

BATCH_AXIS = "batch"


def batch_mesh(devices: list | None = None) -> Mesh:
    """A one-axis mesh named ``"batch"`` over ``devices`` (default: all local devices)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (BATCH_AXIS,))


def batch_length(tree: Any) -> int:
    """The common leading-axis length of the leaves of ``tree`` (ValueError if
    there are no leaves, a leaf is a scalar, or the lengths differ)."""
    lengths = set()
    for leaf in jax.tree.leaves(tree):
        shape = np.shape(leaf)
        if not shape:
            raise ValueError("every leaf needs a leading batch axis; got a scalar leaf")
        lengths.add(shape[0])
    if not lengths:
        raise ValueError("the batch tree has no array leaves")
    if len(lengths) > 1:
        raise ValueError(f"leaves disagree on the batch length: {sorted(lengths)}")
    return lengths.pop()


def pad_leading_axis(tree: Any, multiple: int) -> tuple[Any, int]:
    """Pad every leaf's leading axis up to a multiple of ``multiple`` by
    repeating its last element; return ``(padded_tree, original_length)``."""
    n = batch_length(tree)
    if n == 0:
        raise ValueError("cannot run an empty batch")
    n_pad = -n % multiple

    def pad(x):
        if n_pad == 0:
            return x
        xp = jnp if isinstance(x, jax.Array) else np
        x = xp.asarray(x)
        return xp.concatenate([x, xp.repeat(x[-1:], n_pad, axis=0)], axis=0)

    return jax.tree.map(pad, tree), n


def shard_leading_axis(tree: Any, mesh: Mesh) -> tuple[Any, int]:
    """Pad the leading axis to a multiple of the mesh size and place each leaf
    with ``NamedSharding(mesh, P("batch"))``; return ``(sharded_tree, original_length)``."""
    padded, n = pad_leading_axis(tree, mesh.size)
    sharding = NamedSharding(mesh, P(BATCH_AXIS))
    return jax.device_put(padded, sharding), n


@functools.lru_cache(maxsize=64)
def _jit_vmap(fn: Callable) -> Callable:
    return jax.jit(jax.vmap(fn))


def run_batched(fn: Callable[[Any], Any], tree: Any, mesh: Mesh | None = None) -> Any:
    """``jit(vmap(fn))(tree)`` with the batch axis sharded over ``mesh``
    (default :func:`batch_mesh`); outputs un-padded and returned as numpy.

    ``fn`` takes one batch element (a tree shaped like ``tree`` without the
    leading axis) and returns a tree of numeric arrays. Bind shared,
    non-batched arguments with a closure or ``functools.partial``; reuse the
    same ``fn`` object across calls so its compilation is cached.
    """
    mesh = batch_mesh() if mesh is None else mesh
    sharded, n = shard_leading_axis(tree, mesh)
    out = _jit_vmap(fn)(sharded)
    return jax.tree.map(lambda y: np.asarray(y)[:n], out)
