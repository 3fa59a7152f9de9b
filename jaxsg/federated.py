"""Federated aggregation rules over parameters stacked along a client axis.

The averaging the simulated networks perform when their digital twins train a model
together: hierarchical FedAvg of ``edge_assoc`` (eq. 4-5, DT → BS → MBS) and the robust
rules of its poisoning study (:mod:`jaxsg.scenarios.edge_assoc_fl`). The learners'
federated training (SGIN eq. 34-35, the aggregation period) composes the same rules in
:mod:`agents.federated`.

Every function takes pytrees whose leaves carry a leading **client axis**
(``stacked``: leaf shape ``(C, ...)``). Everything is pure ``jnp`` over
``jax.tree.map`` — no Python loops over clients — so it jit-compiles, vmaps over seeds
and differentiates. Sizes (``C``, ``num_groups``) are static.

* :func:`weighted_average` — Σ_c w_c Z_c with w normalised to sum to 1.
* :func:`group_average` / :func:`hierarchical_average` — two-level averaging
  (e.g. DT → BS → MBS) via segment sums over integer group ids.
* :func:`coordinate_median`, :func:`trimmed_mean` — robust, unweighted rules
  for poisoning/attack experiments.

Aggregator election by reputation lives in :func:`jaxsg.consensus.select_aggregator`;
it only decides *who* aggregates, the rules here decide *what* comes out.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def num_clients(stacked: PyTree) -> int:
    leaves = jax.tree.leaves(stacked)
    if not leaves:
        raise ValueError("stacked parameters are empty (no leaves)")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"every leaf of stacked parameters needs the same leading client axis; got {sizes}"
        )
    return sizes.pop()


def normalise(weights: jnp.ndarray, valid: jnp.ndarray | None = None) -> jnp.ndarray:
    """Non-negative weights summing to 1 (uniform over ``valid`` if they sum to 0)."""
    w = jnp.maximum(jnp.asarray(weights, jnp.result_type(float)), 0.0)
    if valid is None:
        valid = jnp.ones(w.shape, bool)
    w = jnp.where(valid, w, 0.0)
    total = jnp.sum(w)
    uniform = valid / jnp.maximum(jnp.sum(valid), 1)
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), uniform)


def cast_like(value: jnp.ndarray, like: jnp.ndarray) -> jnp.ndarray:
    like_dtype = jnp.asarray(like).dtype
    if jnp.issubdtype(like_dtype, jnp.inexact):
        return value.astype(like_dtype)
    return value


def _expand(w: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Reshape a (C,) vector to broadcast against a (C, ...) leaf."""
    return w.reshape(w.shape + (1,) * (jnp.ndim(x) - 1))


# --------------------------------------------------------------------------
# averaging rules
# --------------------------------------------------------------------------


def weighted_average(stacked: PyTree, weights: jnp.ndarray) -> PyTree:
    """Σ_c w_c Z_c over the leading client axis.

    ``weights`` (C,) are clipped at 0 and normalised to sum to 1 (uniform if
    they sum to 0), so raw data sizes can be passed directly.
    """
    c = num_clients(stacked)
    w = normalise(jnp.broadcast_to(jnp.asarray(weights), (c,)))
    return jax.tree.map(
        lambda x: cast_like(jnp.tensordot(w, jnp.asarray(x), axes=(0, 0)), x), stacked
    )


def group_average(
    stacked: PyTree, weights: jnp.ndarray, group_ids: jnp.ndarray, num_groups: int
) -> tuple[PyTree, jnp.ndarray, jnp.ndarray]:
    """Per-group weighted averages (first level of hierarchical FL, e.g. DT → BS).

    Args:
      stacked: client parameters, leaves (C, ...).
      weights: (C,) non-negative client weights (clipped at 0); normalised
        *within* each group. A non-empty group whose weights are all 0 takes
        the plain mean of its members.
      group_ids: (C,) int in [0, num_groups); ids outside are dropped.
      num_groups: static number of groups G.

    Returns:
      ``(group_params, group_weight, group_count)``: leaves (G, ...), the sum of
      client weights per group (G,) and the member count per group (G,).
      Empty groups get all-zero parameters and count 0.
    """
    c = num_clients(stacked)
    w = jnp.maximum(jnp.broadcast_to(jnp.asarray(weights, jnp.result_type(float)), (c,)), 0.0)
    ids = jnp.asarray(group_ids, jnp.int32)
    seg = lambda v: jax.ops.segment_sum(v, ids, num_segments=num_groups)
    total = seg(w)
    count = seg(jnp.ones((c,), w.dtype))
    # Within-group normalised weight of each client (plain mean if the group's weights are 0).
    tot_c, cnt_c = total[ids], count[ids]
    w_in = jnp.where(tot_c > 0, w / jnp.where(tot_c > 0, tot_c, 1.0), 1.0 / jnp.maximum(cnt_c, 1))

    def leaf(x):
        x = jnp.asarray(x)
        return cast_like(seg(_expand(w_in, x) * x), x)

    return jax.tree.map(leaf, stacked), total, count


def hierarchical_average(
    stacked: PyTree,
    weights: jnp.ndarray,
    group_ids: jnp.ndarray,
    num_groups: int,
    group_weights: jnp.ndarray | None = None,
) -> PyTree:
    """Two-level average: clients → groups (:func:`group_average`) → global.

    The second level weights each non-empty group by ``group_weights`` (G,)
    (normalised over non-empty groups), or by default by the group's total
    client weight — in which case the result equals the flat
    :func:`weighted_average` (hierarchical FedAvg is exact). Empty groups never
    contribute.
    """
    group_params, total, count = group_average(stacked, weights, group_ids, num_groups)
    nonempty = count > 0
    if group_weights is None:
        gw = normalise(total, nonempty)
    else:
        gw = normalise(jnp.broadcast_to(jnp.asarray(group_weights), (num_groups,)), nonempty)
    return jax.tree.map(
        lambda x: cast_like(jnp.tensordot(gw, x, axes=(0, 0)), x), group_params
    )


def coordinate_median(stacked: PyTree) -> PyTree:
    """Coordinate-wise median over clients (unweighted; mean of the two middle values
    if C is even)."""
    num_clients(stacked)
    return jax.tree.map(lambda x: cast_like(jnp.median(jnp.asarray(x), axis=0), x), stacked)


def trimmed_mean(stacked: PyTree, trim_fraction: float) -> PyTree:
    """Coordinate-wise trimmed mean: drop the k = ⌊trim_fraction·C⌋ smallest and largest values.

    ``trim_fraction`` in [0, 0.5); it may be traced. k is capped at
    (C − 1) // 2 so at least one value per coordinate remains.
    """
    if isinstance(trim_fraction, (int, float)) and not 0.0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5); got {trim_fraction}")
    c = num_clients(stacked)
    k = jnp.clip(jnp.floor(jnp.asarray(trim_fraction) * c), 0, (c - 1) // 2).astype(jnp.int32)
    rank = jnp.arange(c)
    keep = ((rank >= k) & (rank < c - k)).astype(jnp.result_type(float))
    keep = keep / jnp.sum(keep)

    def leaf(x):
        x = jnp.asarray(x)
        s = jnp.sort(x, axis=0)
        return cast_like(jnp.tensordot(keep, s, axes=(0, 0)), x)

    return jax.tree.map(leaf, stacked)
