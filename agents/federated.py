"""Federated aggregation over pytrees whose leaves carry a leading client axis (``stacked``:
``(C, ...)``) and/or the global pytree, in pure ``jnp`` (jit, vmap, grad). SGIN decisions
(eq. 34-36, local critics, server step u): docs/sgin.md, "Federated aggregation".
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from agents import core
from jaxsg.validation import Bound

PyTree = Any

RULES = ("fedavg", "median", "trimmed_mean")


def _num_clients(stacked: PyTree) -> int:
    leaves = jax.tree.leaves(stacked)
    if not leaves:
        raise ValueError("stacked parameters are empty (no leaves)")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"every leaf of stacked parameters needs the same leading client "
                         f"axis; got {sizes}")
    return sizes.pop()


def normalise(weights: jnp.ndarray) -> jnp.ndarray:
    """Weights clipped at 0 and scaled to sum to 1 (uniform if they sum to 0)."""
    w = jnp.maximum(jnp.asarray(weights, jnp.result_type(float)), 0.0)
    total = jnp.sum(w)
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 1.0 / w.size)


def _cast_like(value: jnp.ndarray, like: jnp.ndarray) -> jnp.ndarray:
    dtype = jnp.asarray(like).dtype
    return value.astype(dtype) if jnp.issubdtype(dtype, jnp.inexact) else value


def weighted_average(stacked: PyTree, weights: jnp.ndarray) -> PyTree:
    """Σ_c w_c Z_c over the client axis, ``weights`` (C,) :func:`normalise`-d (raw data
    sizes can be passed directly)."""
    c = _num_clients(stacked)
    w = normalise(jnp.broadcast_to(jnp.asarray(weights), (c,)))
    return jax.tree.map(
        lambda x: _cast_like(jnp.tensordot(w, jnp.asarray(x), axes=(0, 0)), x), stacked
    )


def group_average(
    stacked: PyTree, weights: jnp.ndarray, group_ids: jnp.ndarray, num_groups: int
) -> tuple[PyTree, jnp.ndarray, jnp.ndarray]:
    """Per-group weighted averages (e.g. DT → BS): ``(params (G, ...), weight (G,), count
    (G,))``; ``weights`` (C,) clipped at 0, normalised per group (all 0: the plain mean);
    ``group_ids`` (C,) outside [0, num_groups) dropped; an empty group: zeros, count 0."""
    c = _num_clients(stacked)
    w = jnp.maximum(jnp.broadcast_to(jnp.asarray(weights, jnp.result_type(float)), (c,)), 0.0)
    ids = jnp.asarray(group_ids, jnp.int32)
    seg = lambda v: jax.ops.segment_sum(v, ids, num_segments=num_groups)
    total = seg(w)
    count = seg(jnp.ones((c,), w.dtype))
    tot_c, cnt_c = total[ids], count[ids]
    w_in = jnp.where(tot_c > 0, w / jnp.where(tot_c > 0, tot_c, 1.0), 1.0 / jnp.maximum(cnt_c, 1))

    leaf = lambda x: _cast_like(seg(w_in.reshape((c,) + (1,) * (jnp.ndim(x) - 1)) * x), x)
    return jax.tree.map(leaf, stacked), total, count


def coordinate_median(stacked: PyTree) -> PyTree:
    """Coordinate-wise median over clients (unweighted; mean of the two middle values
    if C is even)."""
    _num_clients(stacked)
    return jax.tree.map(lambda x: _cast_like(jnp.median(jnp.asarray(x), axis=0), x), stacked)


def trimmed_mean(stacked: PyTree, trim_fraction: float) -> PyTree:
    """Coordinate-wise mean without the k = ⌊trim_fraction·C⌋ smallest and largest values
    (``trim_fraction`` in [0, 0.5), may be traced; k ≤ (C − 1) // 2)."""
    if isinstance(trim_fraction, (int, float)) and not 0.0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5); got {trim_fraction}")
    c = _num_clients(stacked)
    k = jnp.clip(jnp.floor(jnp.asarray(trim_fraction) * c), 0, (c - 1) // 2).astype(jnp.int32)
    rank = jnp.arange(c)
    keep = ((rank >= k) & (rank < c - k)).astype(jnp.result_type(float))
    keep = keep / jnp.sum(keep)

    return jax.tree.map(
        lambda x: _cast_like(jnp.tensordot(keep, jnp.sort(jnp.asarray(x), axis=0), axes=(0, 0)), x),
        stacked)


#: issue the global model to every client: leaves (…) → (num_clients, …)
broadcast = core.broadcast_agents


@dataclasses.dataclass(frozen=True)
class FederatedConfig:
    """Aggregation rule, period (in local updates) and server step size u; ``trim_fraction``
    is used by "trimmed_mean" only. Frozen and hashable: a static argument of a jit."""

    rule: str = "fedavg"
    period: int = 10
    step_size: float = 1.0
    trim_fraction: float = 0.1

    BOUNDS: ClassVar = dict(period=core.COUNT, step_size=core.POSITIVE,
                            trim_fraction=Bound(0.0, 0.5, high_inclusive=False))
    CHOICES: ClassVar = dict(rule=RULES)

    def __post_init__(self):
        core.check_config(self)


def aggregate(config: FederatedConfig, global_params: PyTree, stacked: PyTree,
              weights: jnp.ndarray | None = None) -> PyTree:
    """New global model Z ← Z + u·(agg(stacked) − Z) (eq. 34-35): "fedavg" weighted by
    ``weights`` (C,) (None: uniform), unweighted "median" or "trimmed_mean"."""
    core.check_config(config)  # also a config whose fields were set after construction
    c = _num_clients(stacked)
    if config.rule == "fedavg":
        target = weighted_average(stacked, jnp.ones((c,)) if weights is None else weights)
    elif config.rule == "median":
        target = coordinate_median(stacked)
    else:
        target = trimmed_mean(stacked, config.trim_fraction)
    u = config.step_size
    return jax.tree.map(lambda z, a: _cast_like(z + u * (a - z), z), global_params, target)


def maybe_aggregate(config: FederatedConfig, step: jnp.ndarray, global_params: PyTree,
                    stacked: PyTree, weights: jnp.ndarray | None = None):
    """``(global_params, stacked)`` aggregated and issued when ``(step + 1) % period == 0``
    (``step`` traced, from 0), else the inputs (both computed, :func:`agents.core.gate`)."""
    new_global = aggregate(config, global_params, stacked, weights)
    do = (jnp.asarray(step) + 1) % config.period == 0
    return (core.gate(do, new_global, global_params),
            core.gate(do, broadcast(new_global, _num_clients(stacked)), stacked))
