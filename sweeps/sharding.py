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


# ------------------------------------------------------------ axis batches
def episode_keys(seed: int, seeds: int, episodes: int) -> np.ndarray:
    """Common random numbers: the rollout key of (seed s, episode e) is
    ``split(fold_in(key(seed), s), episodes)[e]``; shape ``(seeds, episodes, 2)``.
    Every method and every axis value uses the same keys."""
    base = jax.random.PRNGKey(seed)
    return np.stack([np.asarray(jax.random.split(jax.random.fold_in(base, s), episodes))
                     for s in range(seeds)])


def axis_batch(params: Any, points: list[dict], *, seeds: int, episodes: int = 1,
               seed: int = 0, extra: dict | None = None,
               per_seed: dict | None = None) -> tuple[dict, list[tuple]]:
    """The batch of a sweep cell: every (point, seed, episode) as one leading axis.

    ``points`` are env-param overrides (one numeric axis: ``[{field: v} for v in values]``;
    several fields per point are allowed); ``extra`` maps names to per-point values
    (e.g. a hyperparameter) added to each element; ``per_seed`` maps names to trees
    with a leading seeds axis (e.g. the policy parameters of each training seed),
    row i getting the slice of its seed. Returns ``({"key", "params",
    **extra}, index)`` with ``index[i] = (point, seed, episode)`` of row i. Keys follow
    :func:`episode_keys` (the same at every point).
    """
    if seeds < 1 or episodes < 1:
        raise ValueError(f"seeds and episodes must be >= 1, got {seeds} and {episodes}")
    if not points:
        raise ValueError("points must name at least one param point ({} for the defaults)")
    index = [(p, s, e) for p in range(len(points)) for s in range(seeds)
             for e in range(episodes)]
    n = len(index)
    batch_params = jax.tree.map(lambda x: np.full((n,) + np.shape(x), x, np.asarray(x).dtype),
                                params)
    fields = sorted({k for pt in points for k in pt})
    for f in fields:
        base = np.asarray(getattr(params, f))
        col = np.stack([np.asarray(points[p].get(f, base), base.dtype) for p, _, _ in index])
        batch_params = batch_params.replace(**{f: col})
    keys = episode_keys(seed, seeds, episodes)
    batch = {"key": np.stack([keys[s, e] for _, s, e in index]), "params": batch_params}
    for name, values in (extra or {}).items():
        if len(values) != len(points):
            raise ValueError(f"extra[{name!r}] has {len(values)} values for {len(points)} points")
        batch[name] = np.stack([np.asarray(values[p]) for p, _, _ in index])
    rows = np.asarray([s for _, s, _ in index])
    for name, tree in (per_seed or {}).items():
        if batch_length(tree) != seeds:
            raise ValueError(f"per_seed[{name!r}] has {batch_length(tree)} seeds, not {seeds}")
        batch[name] = jax.tree.map(lambda x: np.asarray(x)[rows], tree)
    return batch, index


def run_axis(fn: Callable[[Any], Any], params: Any, points: list[dict], *, seeds: int,
             episodes: int = 1, seed: int = 0, extra: dict | None = None,
             per_seed: dict | None = None, validate: Callable[[Any], Any] | None = None,
             mesh: Mesh | None = None) -> tuple[Any, list[tuple]]:
    """:func:`axis_batch` then :func:`run_batched` (always sharded); ``validate`` (e.g.
    ``env.validate_params``) checks every point before tracing. Returns ``(out, index)``."""
    batch, index = axis_batch(params, points, seeds=seeds, episodes=episodes, seed=seed,
                              extra=extra, per_seed=per_seed)
    if validate is not None:
        validate(batch["params"])
    return run_batched(fn, batch, mesh), index
